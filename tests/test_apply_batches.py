"""A poll batch applied at once leaves the picture that its messages applied
one batch each leave: every row of every table the apply writes, rowids and
sequence numbers included, and the audit log but for its times and hashes.

The apply reads a slice's digests and subject heads in one query per table and
decides duplicates, replays and revision order in memory, then writes each
table with one ``executemany`` (node.aggregator.apply, node.store.picture_writes);
one message per batch reads back everything the message before it wrote.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.aggregator.apply import SLICE, Aggregator
from node.config import Home
from node.crypto.signing import SigningKey
from node.demo.federation import sample_files
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.event_factory import EventFactory
from node.member.intake import ingest
from node.member.member_home import home_policy
from node.model.events import RESTRICTED_KINDS
from node.store.picture import VIEW_COLUMNS, PictureStore
from node.store.reference import ReferenceStore
from node.transport.base import Message
from node.transport.memory import MemoryTopic
from tests.factories import aggregator_for, member_with_data, publish_flows_to

#: Columns holding the writer's clock: they differ from one run to the next.
CLOCK_COLUMNS = {"received_at", "created_at", "relayed_at", "published_at", "dead_lettered_at"}
TABLES = (
    "received_event",
    "event_time",
    "event_use",
    "event_revision",
    "subject_head",
    "flow_cell",
    *VIEW_COLUMNS,
    "relay_outbox",
    "picture_outbox",
    "rejected_message",
    "sqlite_sequence",
)


@dataclass
class Source:
    """A member's signer and a pool of subjects with real bodies to vary."""

    agg: Home
    factory: EventFactory
    key: SigningKey
    subjects: list[tuple[str, str, dict[str, Any]]]  # (kind, subject, body)
    recipients: dict[str, Any]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    base = tmp_path_factory.mktemp("batches")
    home, _, _ = member_with_data(base, "PAN", 300, detail_only=True)
    for sample in sample_files("PAN"):
        ingest(home, sample)
    agg = aggregator_for(base, [home])
    codec = event_codec()
    topic = MemoryTopic()
    publish_flows_to(home, topic)
    flows = []
    for msg in topic.records[:6]:
        envelope = codec.decode_envelope(codec.split_signed(msg.value or b"")[0])
        flows.append(("FlowStatistic", envelope.subject, codec.decode_event(envelope).body or {}))
    references = []
    with ReferenceStore(home.store_path) as refs:
        for kind in ("LegislationEntry", "FocalPoint", "IntelligenceReport"):
            references += [(kind, i.subject, i.item.to_avro()) for i in refs.items(kind)[:2]]
    assert {k for k, _, _ in references} == {"LegislationEntry", "FocalPoint", "IntelligenceReport"}
    key = SigningKey.load("PAN", home.signing_key_path)
    factory = EventFactory("PAN", home_policy(home), key, codec)
    recipients = {"GTM:test": X25519PrivateKey.generate().public_key()}
    return Source(agg, factory, key, flows + references, recipients)


def _event(
    src: Source, kind: str, subject: str, body: dict[str, Any], revision: int, withdrawn: bool
) -> bytes:
    """A signed event of ``subject`` at ``revision``, its body told apart by
    the revision (a withdrawal has none)."""
    if withdrawn:
        content = None
    elif kind == "FlowStatistic":
        content = {**body, "count": int(body["count"]) + revision}
    else:
        content = body
    staged = src.factory.build(
        kind,
        subject,
        revision,
        content,
        None,
        datetime.now(UTC),
        seal_to=src.recipients if kind in RESTRICTED_KINDS else None,
    )
    return staged.value


def _conflicting(src: Source, value: bytes) -> bytes:
    """Another event under ``value``'s event id: a replay with other content."""
    codec = src.factory.codec
    envelope = codec.decode_envelope(codec.split_signed(value)[0])
    env_bytes = codec.encode_envelope(replace(envelope, revision=envelope.revision + 10))
    return codec.encode_signed(env_bytes, src.key.sign(env_bytes))


#: One step of a delivery: a new event (subject, revision, withdrawn), an earlier
#: message again (a duplicate), a replay of an earlier event id with other
#: content, or bytes that do not decode.
step = st.one_of(
    st.tuples(st.just("event"), st.integers(0, 11), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("again"), st.integers(0, 10**6)),
    st.tuples(st.just("replay"), st.integers(0, 10**6)),
    st.just(("garbage",)),
)


def _messages(src: Source, steps: list[tuple[Any, ...]]) -> list[Message]:
    topic = MemoryTopic("shared")
    values: list[bytes] = []
    for s in steps:
        if s[0] == "event":
            kind, subject, body = src.subjects[s[1] % len(src.subjects)]
            value = _event(src, kind, subject, body, s[2], withdrawn=s[3])
            values.append(value)
        elif s[0] == "again" and values:
            value = values[s[1] % len(values)]
        elif s[0] == "replay" and values:
            value = _conflicting(src, values[s[1] % len(values)])
        else:
            value = b"\x03 not an event"
        topic.append(b"PAN", value)
    return topic.records


def _apply(src: Source, path: Path, batches: list[list[Message]]) -> None:
    with PictureStore(path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(src.agg), floor=regional_floor()
        )
        for batch in batches:
            aggregator.apply_batch(batch)


def _picture(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the apply writes (but the clock's columns),
    with its rowid; the audit log without its times and the hashes they feed."""
    conn = sqlite3.connect(path)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in TABLES:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            kept = [f'"{c}"' for c in columns if c not in CLOCK_COLUMNS]
            rowid = "" if table == "sqlite_sequence" else "rowid, "
            out[table] = conn.execute(
                f"SELECT {rowid}{', '.join(kept)} FROM {table} ORDER BY {rowid}1"
            ).fetchall()
        out["audit_log"] = conn.execute(
            "SELECT seq, entry, event_id, producer, subject, revision, policy_version, digest, "
            "reason FROM audit_log ORDER BY seq"
        ).fetchall()
        return out
    finally:
        conn.close()


def _cut(messages: list[Message], cuts: list[int]) -> list[list[Message]]:
    bounds = sorted({c % (len(messages) + 1) for c in cuts} | {0, len(messages)})
    return [messages[a:b] for a, b in pairwise(bounds) if b > a]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(step, min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 10**6), max_size=4),
)
def test_a_batch_applied_at_once_equals_its_messages_one_batch_each(
    source: Source, steps: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    messages = _messages(source, steps)
    with tempfile.TemporaryDirectory(prefix="batches-") as tmp:
        at_once, one_each = Path(tmp) / "at-once.db", Path(tmp) / "one-each.db"
        _apply(source, at_once, _cut(messages, cuts))
        _apply(source, one_each, [[m] for m in messages])
        picture = _picture(at_once)
        assert picture == _picture(one_each)
        # A redelivered poll changes nothing but the quarantine and the log.
        _apply(source, at_once, [messages])
        again = _picture(at_once)
        for table in ("rejected_message", "sqlite_sequence", "audit_log"):
            again.pop(table), picture.pop(table)
        assert again == picture


def test_revisions_of_one_subject_across_slices_of_one_batch(source: Source) -> None:
    """Several revisions of a subject, out of order, withdrawn and back, with
    duplicates and a replay, in one batch longer than a slice: equal to one
    message per batch (and the newest revision wins)."""
    steps: list[tuple[Any, ...]] = []
    for i in range(SLICE + 40):
        # Subject i % 12 gets revisions 1, 6, 5, 4, 3, 2, 1, 6, ...: out of
        # order, and 6 again (stale: not newer than itself).
        steps.append(("event", i % 12, 1 + (i // 12 * 5) % 6, i % 9 == 0))
        if i % 5 == 0:
            steps.append(("again", i))
        if i % 37 == 0:
            steps.append(("replay", i))
    messages = _messages(source, steps)
    assert len(messages) > SLICE + 40
    with tempfile.TemporaryDirectory(prefix="batches-") as tmp:
        at_once, one_each = Path(tmp) / "at-once.db", Path(tmp) / "one-each.db"
        _apply(source, at_once, [messages])
        _apply(source, one_each, [[m] for m in messages])
        assert _picture(at_once) == _picture(one_each)
        conn = sqlite3.connect(at_once)
        try:
            assert {r for (r,) in conn.execute("SELECT revision FROM subject_head")} == {6}
            outcomes = dict(conn.execute("SELECT entry, count(*) FROM audit_log GROUP BY entry"))
            withdrawn = conn.execute("SELECT count(*) FROM event_revision WHERE withdrawn = 1")
            relayed = conn.execute("SELECT count(*) FROM relay_outbox")
            assert withdrawn.fetchone()[0] > 0 and relayed.fetchone()[0] > 0
        finally:
            conn.close()
    assert set(outcomes) == {"applied", "stale", "duplicate", "quarantined"}
