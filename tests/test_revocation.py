"""Revocation on the real broker: a rotation keeps what the old key signed; a
compromise takes out of the picture what the key signed from the compromise
time on, and puts back each cell's previous good revision.

The attacker here holds PAN's real signing key and sends well-formed, signed
revisions of PAN's cells with other counts: nothing but the revocation can
tell them from PAN's own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from kafka import KafkaProducer

from node.aggregator.picture_sync import picture_path, sync_picture
from node.aggregator.run import aggregate_once
from node.aggregator.setup import add_member
from node.cli import main as cli
from node.config import Home
from node.federation import drafts, trust
from node.federation.control import sync_manifest
from node.home import event_codec
from node.member.member_home import home_policy
from node.member.publish import publish
from node.model.events import Envelope, PolicyRef
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from tests.factories import aggregator_for, member_with_data


def _cells(path: Path) -> dict[str, tuple[int, int]]:
    """subject -> (revision, count) of the current cells of a picture."""
    with PictureStore(path) as store:
        return {c["subject"]: (c["revision"], c["count"]) for c in store.flow_cells()}


def _forged(home: Home, cell: dict[str, Any], revision: int, count: int) -> bytes:
    """A revision of ``cell`` signed with the member's own key."""
    codec = event_codec()
    policy = home_policy(home)
    key = trust.load_signing_key(home)
    body = {
        k: cell[k]
        for k in (
            "reporting_country",
            "period",
            "period_type",
            "nationality",
            "nationality_region",
            "sex",
            "age_band",
            "previous_country",
        )
    }
    body["count"] = count
    now = datetime.now(UTC)
    envelope = Envelope(
        event_id=f"forged-{revision}-{cell['subject']}",
        producer=home.country,
        kind="FlowStatistic",
        subject=cell["subject"],
        revision=revision,
        produced_at=now,
        policy=PolicyRef(policy.policy_id, policy.version, policy.sha256),
        audiences=("TS", "members"),
        purposes=("statistics",),
        key_id=key.key_id,
        retain_until=now.date() + timedelta(days=365),
        body=codec.encode_body("FlowStatistic", body),
    )
    env_bytes = codec.encode_envelope(envelope)
    return codec.encode_signed(env_bytes, key.sign(env_bytes))


def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for value in values:
            producer.send(topic, key=b"PAN", value=value)
        producer.flush()
    finally:
        producer.close()


def _cli(home: Home, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home.path), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _setup(tmp_path: Path, bootstrap: str, topic: str, group_id: str) -> tuple[Home, Home, Home]:
    pan, _, _ = member_with_data(tmp_path, "PAN", 600, seed=11, weeks=2, topic=topic)
    cri, _, _ = member_with_data(tmp_path, "CRI", 300, seed=12, weeks=2, topic=topic)
    agg = aggregator_for(tmp_path, [pan, cri], topic=topic)
    for h in (pan, cri, agg):
        h.config.kafka.bootstrap = bootstrap
        h.save()
    agg.config.kafka.group_id = group_id
    agg.config.kafka.control_topic = f"{topic}.control"
    agg.save()
    draft = drafts.load_draft(agg)
    topics = draft.topics.model_copy(update={"picture": f"{topic}.picture"})
    drafts.save_draft(agg, draft.model_copy(update={"topics": topics}))
    signed = drafts.sign_draft(agg)
    for member in (pan, cri):
        member.config.kafka.control_topic = f"{topic}.control"
        member.save()
        trust.accept_manifest(member, signed)
    return pan, cri, agg


def test_a_compromised_key_leaves_the_picture_and_earlier_revisions_come_back(
    kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path
) -> None:
    pan, cri, agg = _setup(tmp_path, kafka_bootstrap, topic, group_id)
    publish(pan)
    publish(cri)
    aggregate_once(agg)
    good = _cells(agg.store_path)
    pan_cells = sorted(s for s in good if s.startswith("FlowStatistic|PAN|"))
    assert len(pan_cells) >= 6 and all(rev == 1 for rev, _ in good.values())

    compromised_at = datetime.now(UTC)
    with PictureStore(agg.store_path) as store:
        rows = {c["subject"]: c for c in store.flow_cells()}
    targets = pan_cells[:5]
    forged = [_forged(pan, rows[s], 2, 900 + i) for i, s in enumerate(targets)]
    # Also a cell PAN never published: with no good revision it must go.
    invented = dict(rows[pan_cells[5]], subject=pan_cells[5] + "|invented")
    forged.append(_forged(pan, invented, 1, 777))
    _send(kafka_bootstrap, topic, forged)
    stats = aggregate_once(agg)
    assert stats.applied == len(forged)  # the key is still trusted: they go in
    sync_picture(cri)
    assert {s: _cells(picture_path(cri))[s] for s in targets} == {
        s: (2, 900 + i) for i, s in enumerate(targets)
    }

    key_id = trust.load_signing_key(pan).key_id
    out = _cli(
        agg,
        "federation",
        "revoke",
        "PAN",
        "--key",
        key_id,
        "--compromised-at",
        compromised_at.isoformat(),
    )
    assert "leave the picture" in out
    _cli(agg, "federation", "sign", "--publish")
    after = aggregate_once(agg)
    assert after.rejected_total == 0

    assert _cells(agg.store_path) == good  # every cell back at revision 1, invented one gone
    status = json.loads(_cli(agg, "status", "--format", "json"))
    assert status["revoked_events"] == len(forged)
    (rev,) = status["revocations"]
    assert (rev["key_id"], rev["events"], rev["restored"], rev["removed"]) == (
        key_id,
        len(forged),
        5,
        1,
    )
    assert rev["compromised_at"] == compromised_at.isoformat()
    history = json.loads(_cli(agg, "history", targets[0], "--format", "json"))["revisions"]
    assert [(r["revision"], r["revoked"], r["current"]) for r in history] == [
        (1, False, True),
        (2, True, False),
    ]
    assert all(r["appended_at"] for r in history)
    # Text output too, for an operator.
    assert "Revocations carried out" in _cli(agg, "status")
    assert "revoked" in _cli(agg, "history", targets[0])

    # More from the stolen key is refused as it arrives; carrying the
    # revocation out again changes nothing.
    _send(kafka_bootstrap, topic, [_forged(pan, rows[targets[0]], 3, 555)])
    assert aggregate_once(agg).rejected == {"revoked-key": 1}
    assert _cells(agg.store_path) == good
    assert len(json.loads(_cli(agg, "status", "--format", "json"))["revocations"]) == 1

    # The members' picture topic got the restored revisions; a member that
    # takes the new manifest carries the revocation out in its own copy too.
    republished = [m for m in read_all(kafka_bootstrap, f"{topic}.picture")]
    assert len(republished) > len(good)
    sync_manifest(cri)
    sync_picture(cri)
    mine = _cells(picture_path(cri))
    assert {s: mine.get(s) for s in targets} == {s: good[s] for s in targets}
    assert invented["subject"] not in mine


def test_a_rotated_key_keeps_what_it_signed(
    kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path
) -> None:
    pan, _, agg = _setup(tmp_path, kafka_bootstrap, topic, group_id)
    publish(pan)
    aggregate_once(agg)
    good = _cells(agg.store_path)
    old = trust.load_signing_key(pan).key_id
    trust.rotate_signing_key(pan)
    add_member(agg, "PAN", pan.public_key_path, pan.encryption_pub_path)
    _cli(agg, "federation", "revoke", "PAN", "--key", old, "--retire-after", "0")
    _cli(agg, "federation", "sign")
    assert aggregate_once(agg).rejected_total == 0
    assert _cells(agg.store_path) == good  # nothing left the picture
    status = json.loads(_cli(agg, "status", "--format", "json"))
    assert status["revoked_events"] == 0 and status["revocations"] == []
