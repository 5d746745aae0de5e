"""The hash-chained audit logs: what they record, and that tampering is found."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from node.aggregator.apply import Aggregator
from node.aggregator.stats import ApplyStats
from node.cli import main
from node.config import Home
from node.demo.synth import plant_values
from node.federation import trust
from node.home import event_codec, regional_floor
from node.store import audit, audit_check
from node.store.picture import PictureStore
from node.transport.memory import MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data, publish_flows_to

#: The member, the aggregator, the member's rows, the events sent, and the topic.
Logs = tuple[Home, Home, list[dict[str, str]], int, MemoryTopic]


def _apply(agg_home: Home, topic: MemoryTopic) -> ApplyStats:
    with PictureStore(agg_home.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg_home), floor=regional_floor()
        )
        return aggregator.apply_batch(MemorySource(topic).poll_batch(0, 10**9))


@pytest.fixture
def logs(tmp_path: Path) -> Logs:
    """A member that sent events and an aggregator that received them plus junk."""
    topic = MemoryTopic()
    pan, rows, _ = member_with_data(tmp_path, "PAN", 400)
    agg = aggregator_for(tmp_path, [pan])
    sent = publish_flows_to(pan, topic, batch_size=7)
    topic.append(b"PAN", b"\xc3\x01 not an event")
    topic.append(topic.records[0].key, topic.records[0].value)  # redelivery
    _apply(agg, topic)
    return pan, agg, rows, sent, topic


def _db(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


def test_member_logs_every_acknowledged_event(logs: Logs) -> None:
    pan, _agg, _rows, sent, topic = logs
    entries = audit_check.read_entries(pan.store_path)
    assert sent > 7  # several drain batches, one chain
    assert [e.seq for e in entries] == list(range(1, sent + 1))
    assert {e.entry for e in entries} == {"sent"}
    assert {e.producer for e in entries} == {"PAN"}
    # Each entry's digest is that of the exact bytes the broker acknowledged.
    on_topic = [hashlib.sha256(m.value or b"").hexdigest() for m in topic.records[:sent]]
    assert [e.digest for e in entries] == on_topic
    assert all(e.event_id and e.subject and e.revision and e.policy_version for e in entries)
    report = audit_check.verify(pan.store_path)
    assert report.ok and report.entries == sent and not report.notes
    # Draining again sends nothing and logs nothing.
    assert publish_flows_to(pan, topic, batch_size=7) == 0
    assert len(audit_check.read_entries(pan.store_path)) == sent


def test_aggregator_logs_every_message_with_its_outcome(logs: Logs) -> None:
    _pan, agg, _rows, sent, topic = logs
    entries = audit_check.read_entries(agg.store_path)
    assert len(entries) == len(topic.records) == sent + 2
    kinds = [e.entry for e in entries]
    assert kinds.count("applied") == sent
    assert kinds[-2:] == ["quarantined", "duplicate"]
    assert entries[-2].reason == "undecodable" and entries[-2].event_id is None
    assert entries[-1].event_id == entries[0].event_id
    assert audit_check.verify(agg.store_path).ok


def test_member_and_aggregator_logs_match_message_for_message(logs: Logs) -> None:
    pan, agg, _rows, _sent, _topic = logs
    sent = {(e.event_id, e.digest) for e in audit_check.read_entries(pan.store_path)}
    applied = {
        (e.event_id, e.digest)
        for e in audit_check.read_entries(agg.store_path)
        if e.entry == "applied"
    }
    assert sent == applied


def test_no_raw_identifying_value_in_the_logs(logs: Logs) -> None:
    pan, agg, rows, _sent, _topic = logs
    planted = {v for values in plant_values(rows).values() for v in values if len(v) >= 4}
    assert planted
    for home in (pan, agg):
        out = io.StringIO()
        audit_check.export(home.store_path, out, "jsonl")
        text = out.getvalue()
        assert "PAN" in text  # the scan sees what is there
        assert [v for v in planted if v in text] == []


def test_editing_one_byte_is_detected(logs: Logs) -> None:
    pan, *_ = logs
    entry = audit_check.read_entries(pan.store_path)[4]
    assert entry.subject is not None
    # One byte of the subject: a single character replaced.
    changed = entry.subject[:-1] + ("X" if entry.subject[-1] != "X" else "Y")
    _db(pan.store_path, "UPDATE audit_log SET subject=? WHERE seq=?", changed, entry.seq)
    report = audit_check.verify(pan.store_path)
    assert not report.ok
    assert report.first_bad_seq == entry.seq
    assert "altered" in (report.problem or "")


@pytest.mark.parametrize("column", ["revision", "digest", "at", "entry", "reason"])
def test_editing_any_column_is_detected(logs: Logs, column: str) -> None:
    _pan, agg, *_ = logs
    value = {"revision": 77, "digest": "0" * 64, "at": "2020-01-01", "entry": "stale"}
    _db(agg.store_path, f"UPDATE audit_log SET {column}=? WHERE seq=3", value.get(column, "x"))
    report = audit_check.verify(agg.store_path)
    assert (report.ok, report.first_bad_seq) == (False, 3)


def test_a_deleted_entry_is_detected(logs: Logs) -> None:
    pan, *_ = logs
    _db(pan.store_path, "DELETE FROM audit_log WHERE seq=5")
    report = audit_check.verify(pan.store_path)
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert "missing" in (report.problem or "")


def test_swapped_entries_are_detected(logs: Logs) -> None:
    pan, *_ = logs
    _db(pan.store_path, "UPDATE audit_log SET seq=-1 WHERE seq=3")
    _db(pan.store_path, "UPDATE audit_log SET seq=3 WHERE seq=4")
    _db(pan.store_path, "UPDATE audit_log SET seq=4 WHERE seq=-1")
    report = audit_check.verify(pan.store_path)
    assert (report.ok, report.first_bad_seq) == (False, 3)


def test_a_recomputed_suffix_is_caught_by_the_head_file(logs: Logs) -> None:
    """Rewriting an entry and re-hashing everything after it passes the chain
    check; the head file outside the table still exposes it."""
    pan, *_ = logs
    entries = audit_check.read_entries(pan.store_path)
    prev = entries[1].entry_hash
    conn = sqlite3.connect(pan.store_path)
    for e in entries[2:]:
        subject = e.subject
        if e.seq == 3:
            assert subject is not None
            subject += "!"
        record = audit.AuditRecord(
            e.entry, e.digest, e.event_id, e.producer, subject, e.revision, e.policy_version
        )
        digest = audit.entry_hash(prev, e.seq, e.at, record)
        conn.execute(
            "UPDATE audit_log SET subject=?, prev_hash=?, entry_hash=? WHERE seq=?",
            (subject, prev, digest, e.seq),
        )
        prev = digest
    conn.commit()
    conn.close()
    report = audit_check.verify(pan.store_path)
    assert (report.ok, report.first_bad_seq) == (False, len(entries))
    assert "head file" in (report.problem or "")


def test_truncation_at_the_end_is_detected(logs: Logs) -> None:
    pan, *_ = logs
    last = audit_check.read_entries(pan.store_path)[-1].seq
    _db(pan.store_path, "DELETE FROM audit_log WHERE seq=?", last)
    report = audit_check.verify(pan.store_path)
    assert (report.ok, report.first_bad_seq) == (False, last)
    assert "truncated" in (report.problem or "")


def test_anchors_pin_history(logs: Logs) -> None:
    pan, *_ = logs
    entries = audit_check.read_entries(pan.store_path)
    good = f"{entries[2].seq}:{entries[2].entry_hash}"
    assert audit_check.verify(pan.store_path, [good]).ok
    bad = f"{entries[2].seq}:{'ab' * 32}"
    report = audit_check.verify(pan.store_path, [bad])
    assert (report.ok, report.first_bad_seq) == (False, entries[2].seq)


def test_cli_verify_and_export(logs: Logs, tmp_path: Path) -> None:
    pan, agg, _rows, sent, _topic = logs
    runner = CliRunner()
    ok = runner.invoke(main, ["--home", str(pan.path), "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert f"{sent} entries" in ok.output
    as_json = runner.invoke(main, ["--home", str(agg.path), "audit", "verify", "--format", "json"])
    assert json.loads(as_json.output)["ok"] is True
    out = tmp_path / "pan.csv"
    done = runner.invoke(
        main, ["--home", str(pan.path), "audit", "export", "-o", str(out), "--format", "csv"]
    )
    assert done.exit_code == 0, done.output
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(table) == sent and list(table[0]) == list(audit.FIELDS)
    lines = runner.invoke(main, ["--home", str(agg.path), "audit", "export"]).output.splitlines()
    assert len(lines) == sent + 2 and json.loads(lines[0])["seq"] == 1
    _db(pan.store_path, "UPDATE audit_log SET producer='GTM' WHERE seq=2")
    broken = runner.invoke(main, ["--home", str(pan.path), "audit", "verify"])
    assert broken.exit_code == 1
    assert "entry 2" in broken.output


def test_the_aggregator_logs_each_sealed_event_it_relays_once(tmp_path: Path) -> None:
    with PictureStore(tmp_path / "aggregator.db") as store:
        with store.transaction() as conn:
            store.queue_relay(
                conn, "ev-1", "PAN", "IntelligenceReport|PAN|r1", 1, ["GTM:ab"], b"PAN", b"sealed"
            )
        (seq, _key, value), *_ = store.pending_relay()
        store.mark_relayed([seq])
        store.mark_relayed([seq])  # a repeated acknowledgement logs nothing
    (entry,) = audit_check.read_entries(tmp_path / "aggregator.db")
    assert (entry.entry, entry.event_id, entry.producer, entry.revision) == (
        "relayed",
        "ev-1",
        "PAN",
        1,
    )
    assert entry.digest == hashlib.sha256(value).hexdigest()
    assert audit_check.verify(tmp_path / "aggregator.db").ok


_text = st.one_of(st.none(), st.text(max_size=40))


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    at=st.text(max_size=40),
    entry=st.sampled_from(audit.ENTRY_KINDS),
    digest=st.text(max_size=70),
    event_id=_text,
    producer=_text,
    subject=_text,
    revision=st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**62)),
    policy_version=_text,
    reason=_text,
)
def test_canonical_entry_is_exactly_sorted_compact_ascii_json(
    seq: int, at: str, entry: str, digest: str, revision: int | None, **texts: str | None
) -> None:
    """The chain's hashes cover these bytes: the fast template must never drift
    from json.dumps, or logs written before would stop verifying."""
    record = audit.AuditRecord(entry=entry, digest=digest, revision=revision, **texts)
    body = {"seq": seq, "at": at, **dataclasses.asdict(record)}
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert audit.canonical(seq, at, record) == expected.encode()


def _forge_append(db: Path) -> int:
    """Append one entry that chains correctly, as someone who can write the
    database but not the head file would: hashed here with hashlib and
    json.dumps, not with node.store.audit. Returns its seq."""
    conn = sqlite3.connect(db)
    try:
        seq, prev = conn.execute(
            "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        fields = {
            "seq": seq + 1,
            "at": "2026-01-01T00:00:00.000000+00:00",
            "entry": "sent",
            "event_id": "forged",
            "producer": "PAN",
            "subject": "forged-subject",
            "revision": 1,
            "policy_version": "x",
            "digest": hashlib.sha256(b"forged").hexdigest(),
            "reason": None,
        }
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        digest = hashlib.sha256(bytes.fromhex(prev) + body.encode("ascii")).hexdigest()
        conn.execute(
            "INSERT INTO audit_log (seq, at, entry, event_id, producer, subject, revision, "
            "policy_version, digest, reason, prev_hash, entry_hash) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (*fields.values(), prev, digest),
        )
        conn.commit()
    finally:
        conn.close()
    return int(seq) + 1


def test_entries_appended_after_the_head_fail_verification(logs: Logs) -> None:
    """Issue 14 item 5: forged entries that chain correctly, appended by
    someone with write access to node.db alone, are a failure, not a note."""
    pan, *_ = logs
    forged = _forge_append(pan.store_path)
    report = audit_check.verify(pan.store_path)
    assert (report.ok, report.first_bad_seq) == (False, forged)
    assert "head file" in (report.problem or "")
    accepted = audit_check.verify(pan.store_path, accept_behind=True)
    assert accepted.ok and accepted.entries == forged
    assert any("accepted" in n for n in accepted.notes)


def test_cli_verify_fails_behind_the_head_unless_accepted(logs: Logs) -> None:
    pan, *_ = logs
    _forge_append(pan.store_path)
    _forge_append(pan.store_path)
    runner = CliRunner()
    refused = runner.invoke(main, ["--home", str(pan.path), "audit", "verify"])
    assert refused.exit_code == 1, refused.output
    assert "BROKEN" in refused.output and "--accept-behind" in refused.output
    as_json = runner.invoke(main, ["--home", str(pan.path), "audit", "verify", "--format", "json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["ok"] is False
    accepted = runner.invoke(main, ["--home", str(pan.path), "audit", "verify", "--accept-behind"])
    assert accepted.exit_code == 0, accepted.output
    assert "2 entries behind" in accepted.output
