"""The aggregator checking in worker processes (``aggregator_workers``).

A parallel run must leave exactly the picture a serial run leaves from the
same topic: the same events applied at the same positions, the same
quarantine with the same reasons, the same views, the same audit log. A check
worker killed mid-batch must lose nothing and apply nothing twice. The topic
is real (the session's broker); the expected picture is the serial run's,
compared table by table from the SQLite files directly.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from node.aggregator.apply import Aggregator
from node.aggregator.checks import Checked, MessageRejected, append_time
from node.aggregator.parallel import CheckPool, KeySnapshot, Rejection
from node.aggregator.run import aggregate_once, build_aggregator
from node.codec.events import EventCodec
from node.config import Home
from node.crypto.batch_seal import SealVerifier
from node.demo.synth import generate_encounters, write_csv
from node.federation import drafts, trust
from node.federation.manifest import KeyDirectory
from node.home import event_codec, regional_floor
from node.loops import wait_until
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.policy.floor import RegionalFloor
from node.store.picture import PictureStore
from node.transport.base import Message
from node.transport.kafka_consumer import read_all
from tests.factories import START, aggregator_for, records_only_policy

#: Table -> the columns that must agree (times of receipt differ by nature).
TABLES: dict[str, str] = {
    "received_event": "event_id, producer, kind, subject, revision, digest, key_id, applied, "
    'topic, partition, "offset"',
    "rejected_message": 'reason, detail, event_id, producer, topic, partition, "offset", raw',
    "subject_head": "subject, kind, producer, revision, event_id, withdrawn",
    "flow_cell": "subject, reporting_country, period, nationality, sex, age_band, "
    "previous_country, count, revision, event_id",
    "encounter_view": "*",
    "event_revision": "event_id, subject, revision, body, schema_version, produced_at, applied",
    "event_use": "event_id, audiences, purposes, retain_until, embargo_until",
    "event_time": "event_id, appended_at",
    "picture_outbox": "event_id, subject, msg_value",
    "audit_log": "seq, entry, event_id, producer, subject, revision, digest, reason",
}


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: sorted(conn.execute(f"SELECT {cols} FROM {t}").fetchall(), key=repr)
            for t, cols in TABLES.items()
        }
    finally:
        conn.close()


@pytest.fixture
def published(tmp_path: Path, kafka_bootstrap: str, topic: str) -> tuple[Home, list[Message]]:
    """A USA member's records and flows on the real topic, then garbage, a
    tampered copy and an exact duplicate; returns (aggregator home, messages)."""
    home = init_member(
        tmp_path / "usa",
        "USA",
        topic=topic,
        bootstrap=kafka_bootstrap,
        policy=records_only_policy(tmp_path),
    )
    rows = generate_encounters("USA", 700, seed=33, start=START, weeks=6)
    write_csv(rows, tmp_path / "usa.csv")
    ingest(home, tmp_path / "usa.csv", stage=False)
    agg = aggregator_for(tmp_path, [home], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.save()
    result = publish(home, bootstrap=kafka_bootstrap, overlap=False)
    staged = result.plan.staged
    assert result.drain.acknowledged == staged > 700
    good = read_all(kafka_bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        sample = good[len(good) // 2].value or b""
        tampered = bytearray(sample)
        tampered[-40] ^= 0xFF  # inside the seal's proof or signature
        producer.send(topic, key=b"USA", value=b"not an event at all")
        producer.send(topic, key=b"USA", value=bytes(tampered))
        producer.send(topic, key=b"USA", value=sample)  # the same event again
        producer.flush()
    finally:
        producer.close()
    assert wait_until(lambda: len(read_all(kafka_bootstrap, topic)) == staged + 3, 60)
    return agg, read_all(kafka_bootstrap, topic)


def _apply(agg: Home, path: Path, messages: list[Message], workers: int, batch: int) -> Aggregator:
    with PictureStore(path) as store:
        aggregator = build_aggregator(
            agg, store, event_codec(), floor=regional_floor(), workers=workers
        )
        try:
            for i in range(0, len(messages), batch):
                aggregator.apply_batch(messages[i : i + batch])
        finally:
            aggregator.close()
    return aggregator


@pytest.mark.kafka
def test_parallel_picture_equals_the_serial_one(
    tmp_path: Path, published: tuple[Home, list[Message]]
) -> None:
    agg, messages = published
    _apply(agg, tmp_path / "serial.db", messages, workers=0, batch=500)
    _apply(agg, tmp_path / "parallel.db", messages, workers=2, batch=500)
    serial, parallel = _dump(tmp_path / "serial.db"), _dump(tmp_path / "parallel.db")
    for table in TABLES:
        assert parallel[table] == serial[table], table
    reasons = sorted(r[0] for r in serial["rejected_message"])
    assert reasons == ["bad-signature", "undecodable"] or reasons == ["undecodable"] * 2
    applied = [r for r in serial["received_event"] if r[7] == 1]
    assert len(applied) == len(messages) - 3
    assert len(serial["encounter_view"]) == 700
    # The exact duplicate is in the audit log as such, in both.
    assert [r[1] for r in parallel["audit_log"]].count("duplicate") == 1


@pytest.mark.kafka
def test_aggregate_once_with_workers_from_the_group(
    tmp_path: Path, published: tuple[Home, list[Message]]
) -> None:
    """The whole path (group consumer, commit after the transaction) with the
    home's aggregator_workers; a second run finds nothing left to apply."""
    agg, messages = published
    _apply(agg, tmp_path / "serial.db", messages, workers=0, batch=2000)
    agg.config.aggregator_workers = 2
    agg.save()
    stats = aggregate_once(agg, max_records=400)
    assert stats.messages == len(messages)
    assert stats.applied == len(messages) - 3
    again = aggregate_once(agg)
    assert again.messages == 0
    live, serial = _dump(agg.store_path), _dump(tmp_path / "serial.db")
    # The group reads partitions interleaved otherwise than read_all: which copy
    # of the duplicate came first, and the audit log's order, may differ.
    for table in set(TABLES) - {"received_event", "audit_log", "rejected_message"}:
        assert live[table] == serial[table], table
    assert [r[:8] for r in live["received_event"]] == [r[:8] for r in serial["received_event"]]
    assert sorted(r[0] for r in live["rejected_message"]) == sorted(
        r[0] for r in serial["rejected_message"]
    )

    def entries(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return sorted((r[1:] for r in rows if r[1] != "published"), key=repr)

    assert entries(live["audit_log"]) == entries(serial["audit_log"])


def _serial_results(agg: Home, messages: list[Message]) -> list[object]:
    codec, floor, keys = event_codec(), regional_floor(), trust.key_directory(agg)
    seals = SealVerifier()
    out: list[object] = []
    for m in messages:
        try:
            out.append(check_result(check_message_here(codec, keys, floor, m, seals)))
        except MessageRejected as rej:
            out.append(("rejected", rej.reason, rej.detail))
    return out


def check_message_here(
    codec: EventCodec, keys: KeyDirectory, floor: RegionalFloor, m: Message, seals: SealVerifier
) -> Checked:
    from node.aggregator.checks import check_message

    return check_message(codec, keys, floor, append_time, m, seals)


def check_result(r: object) -> object:
    """A check result as comparable data."""
    if isinstance(r, Rejection):
        return ("rejected", r.reason, r.detail)
    assert isinstance(r, Checked)
    return (r.envelope, r.event.body, r.digest, r.appended_at, r.restricted, r.recipients)


@pytest.mark.kafka
@pytest.mark.faults
def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path, published: tuple[Home, list[Message]]
) -> None:
    agg, messages = published
    expected = _serial_results(agg, messages)
    keys = trust.key_directory(agg)
    codec, floor = event_codec(), regional_floor()
    seals = SealVerifier()

    def here(m: Message) -> object:
        try:
            return check_message_here(codec, keys, floor, m, seals)
        except MessageRejected as rej:
            return Rejection(rej.reason, rej.detail, rej.envelope)

    pool = CheckPool(2, codec, floor, append_time, check_here=here)
    try:
        results = pool.check(messages, KeySnapshot.of(keys, 0))
        first = next(results)  # chunk 0 is back; the others are in the workers
        pids = pool.pids()
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        got = [first, *results]
        assert pool.restarts >= 1
    finally:
        pool.close()
    assert [check_result(r) for r in got] == expected

    # And through the aggregator: kill its workers between batches and mid-run;
    # the picture is the serial one, each event applied once.
    _apply(agg, tmp_path / "serial.db", messages, workers=0, batch=300)
    with PictureStore(tmp_path / "killed.db") as store:
        aggregator = build_aggregator(agg, store, event_codec(), floor=regional_floor(), workers=2)
        try:
            for n, i in enumerate(range(0, len(messages), 300)):
                aggregator.apply_batch(messages[i : i + 300])
                if n in (0, 2):
                    assert aggregator.pool is not None
                    for pid in aggregator.pool.pids():
                        os.kill(pid, signal.SIGKILL)
            assert aggregator.pool is not None and aggregator.pool.restarts >= 1
        finally:
            aggregator.close()
    killed, serial = _dump(tmp_path / "killed.db"), _dump(tmp_path / "serial.db")
    for table in TABLES:
        assert killed[table] == serial[table], table


@pytest.mark.kafka
def test_a_new_manifest_reaches_the_workers_at_the_next_batch(
    tmp_path: Path, published: tuple[Home, list[Message]]
) -> None:
    """A key revoked mid-run (compromised an hour ago) is refused by the
    workers from the next batch on, exactly as a serial aggregator refuses it;
    stale workers holding the old manifest would apply them."""
    agg, messages = published
    first, rest = messages[:300], messages[300:]
    with (
        PictureStore(tmp_path / "parallel.db") as p_store,
        PictureStore(tmp_path / "serial.db") as s_store,
    ):
        both = [
            build_aggregator(agg, store, event_codec(), floor=regional_floor(), workers=w)
            for store, w in ((p_store, 2), (s_store, 0))
        ]
        try:
            for aggregator in both:
                aggregator.apply_batch(first)
            drafts.revoke(agg, "USA", compromised_at=datetime.now(UTC) - timedelta(hours=1))
            drafts.sign_draft(agg)
            for aggregator in both:
                aggregator.use_keys(trust.key_directory(agg))
                stats = aggregator.apply_batch(rest)
                assert stats.rejected.get("revoked-key", 0) >= len(rest) - 3, stats.as_dict()
        finally:
            for aggregator in both:
                aggregator.close()
    parallel, serial = _dump(tmp_path / "parallel.db"), _dump(tmp_path / "serial.db")
    for table in TABLES:
        assert parallel[table] == serial[table], table
