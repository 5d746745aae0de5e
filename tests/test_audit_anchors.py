"""Rewritten history: an audit log and its head file rewritten together pass
`audit verify` alone, and are caught against the heads other nodes signed on
the control topic (real broker)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from click.testing import CliRunner, Result

from node.aggregator.run import aggregate_follow, aggregate_once
from node.cli import main
from node.config import Home
from node.federation import anchors
from node.federation.control import (
    HeadAnchor,
    federation_anchors,
    publish_manifest,
    sync_manifest,
)
from node.loops import wait_until
from node.member import follow
from node.member.member_home import init_member
from node.member.publish import publish
from node.store import audit, audit_check
from tests.factories import aggregator_for, member_with_data
from tests.patience import PATIENCE_S


def cli(home: Home, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home.path), *args])


def _rewrite_everything(home: Home) -> None:
    """What a node's operator with write access can do: change an early entry,
    re-hash the whole chain after it, and rewrite the head file to match."""
    entries = audit_check.read_entries(home.store_path)
    prev = entries[0].prev_hash
    conn = sqlite3.connect(home.store_path)
    for e in entries:
        subject = (e.subject or "") + "!" if e.seq == 2 else e.subject
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
    audit.head_path(home.store_path).write_text(
        json.dumps({"seq": entries[-1].seq, "entry_hash": prev}) + "\n", encoding="ascii"
    )


def test_a_log_rewritten_with_its_head_is_caught_against_the_federation(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 300, topic=topic)
    cri = init_member(tmp_path / "cri", "CRI", topic=topic)
    agg = aggregator_for(tmp_path, [pan, cri], topic=topic)
    for home in (pan, cri, agg):
        home.config.kafka.bootstrap = kafka_bootstrap
        home.config.kafka.control_topic = f"{topic}.control"
        home.save()
    agg.config.kafka.group_id = group_id
    agg.save()
    publish_manifest(agg)
    for home in (pan, cri):
        sync_manifest(home)
    assert publish(pan).drain.acknowledged > 0
    aggregate_once(agg)

    out = cli(pan, "audit", "publish-head")
    assert out.exit_code == 0 and "published PAN audit head" in out.output, out.output
    # CRI and the Secretariat read it and sign what they saw.
    for witness in (cri, agg):
        assert cli(witness, "federation", "sync").exit_code == 0
        result = cli(witness, "audit", "publish-head")
        assert "witnessed: PAN" in result.output, result.output

    honest = cli(pan, "audit", "verify", "--against-federation")
    assert honest.exit_code == 0, honest.output
    assert "CRI witnessed head" in honest.output and "TS witnessed head" in honest.output

    _rewrite_everything(pan)
    alone = cli(pan, "audit", "verify")
    assert alone.exit_code == 0, alone.output  # chain and head file agree
    # Even a fresh signed head from the rewriter does not replace the others' copies.
    assert cli(pan, "audit", "publish-head").exit_code == 0
    caught = cli(pan, "audit", "verify", "--against-federation")
    assert caught.exit_code == 1, caught.output
    assert "BROKEN" in caught.output and "anchor" in caught.output, caught.output

    # Every witness also notices PAN's head changed under the same seq.
    assert cli(cri, "federation", "sync").exit_code == 0
    alarms = (cri.path / "trust" / "alarms.jsonl").read_text(encoding="utf-8")
    assert "audit-head" in alarms and "PAN" in alarms


def test_follow_loops_anchor_their_heads_at_intervals(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    """`publish --follow` and `aggregate --follow` put their signed heads on the
    control topic by themselves, every `audit_head_interval_s`, so the anchor
    does not wait for an operator's cron job."""
    pan, _, _ = member_with_data(tmp_path, "PAN", 200, topic=topic)
    cri = init_member(tmp_path / "cri", "CRI", topic=topic)
    agg = aggregator_for(tmp_path, [pan, cri], topic=topic)
    for home in (pan, cri, agg):
        home.config.kafka.bootstrap = kafka_bootstrap
        home.config.kafka.control_topic = f"{topic}.control"
        home.config.audit_head_interval_s = 1
        home.save()
    agg.config.kafka.group_id = group_id
    agg.save()
    publish_manifest(agg)
    for home in (pan, cri):
        sync_manifest(home)

    def heads_seen_by_cri() -> dict[str, anchors.HeadStatement]:
        federation_anchors(cri)  # reads the control topic, keeps verified heads
        return anchors.load_peer_heads(cri)

    stop = threading.Event()
    loops = [
        threading.Thread(target=follow.publish_follow, args=(pan, stop), daemon=True),
        threading.Thread(target=aggregate_follow, args=(agg, stop), daemon=True),
    ]
    for loop in loops:
        loop.start()
    try:

        def anchored() -> bool:
            seen = heads_seen_by_cri()
            pan_head = seen.get("PAN")
            return (
                pan_head is not None
                and pan_head.audit is not None
                and pan_head.audit.seq == audit_check.verify(pan.store_path).head_seq
                and "TS" in seen
            )

        assert wait_until(anchored, PATIENCE_S, interval_s=1.0)
    finally:
        stop.set()
        for loop in loops:
            loop.join(PATIENCE_S)


def test_an_interval_of_zero_publishes_no_head(tmp_path: Path) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 10)
    pan.config.audit_head_interval_s = 0
    anchor = HeadAnchor(pan, None)
    anchor.tick()  # no broker is configured: a publish would fail and be logged
    assert anchor.published == 0
