"""A member whose key the Secretariat revoked (or let expire) refuses to publish
with it (issue 14 item 7), on the real broker.

The member does not run `federation sync` itself: it learns the new manifest
from the control topic when it publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition

from node.aggregator.run import aggregate_once
from node.cli import main
from node.config import Home
from node.crypto.signing import key_id_for, load_public_pem
from node.demo.synth import generate_encounters, write_csv
from node.federation import drafts
from node.federation.control import publish_manifest, sync_manifest
from node.federation.manifest import read_signed
from node.member.publish import publish
from node.operator.doctor import diagnose
from tests.factories import aggregator_for, member_with_data


def _topic_end(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values())
    finally:
        consumer.close()


def _serial(home: Home) -> int:
    return int(json.loads(read_signed(home.manifest_path).payload)["serial"])


@pytest.fixture
def federation(tmp_path: Path, kafka_bootstrap: str, topic: str) -> Iterator[tuple[Home, Home]]:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 600, topic=topic)
    agg = aggregator_for(tmp_path, [pan], topic=topic)
    for home in (pan, agg):
        home.config.kafka.bootstrap = kafka_bootstrap
        home.config.kafka.control_topic = f"{topic}.control"
        home.save()
    agg.config.kafka.group_id = f"{topic}-agg"
    agg.save()
    publish_manifest(agg)
    sync_manifest(pan)
    publish(pan)
    aggregate_once(agg)
    yield pan, agg


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_member_refuses_to_publish_with_a_key_the_manifest_revoked(
    federation: tuple[Home, Home], kafka_bootstrap: str, topic: str, tmp_path: Path, how: str
) -> None:
    pan, agg = federation
    key_id = key_id_for("PAN", load_public_pem(pan.public_key_path.read_bytes()))
    assert diagnose(pan).healthy
    serial = _serial(pan)
    if how == "revoked":
        assert key_id in drafts.revoke(agg, "PAN")
    else:
        drafts.retire_key(agg, "PAN", key_id, overlap_hours=0)
    drafts.sign_draft(agg)
    publish_manifest(agg)
    sent_before = _topic_end(kafka_bootstrap, topic)

    # New records: stored, but nothing is signed with the key.
    later = generate_encounters("PAN", 400, seed=3, start=date(2025, 1, 6), weeks=3)
    csv = tmp_path / "later.csv"
    write_csv(later, csv)
    runner = CliRunner()
    ingested = runner.invoke(main, ["--home", str(pan.path), "ingest", str(csv)])
    assert ingested.exit_code == 0, ingested.output

    refused = runner.invoke(main, ["--home", str(pan.path), "publish"])
    assert refused.exit_code != 0, refused.output
    assert how in refused.output and "Refusing to publish" in refused.output
    assert key_id in refused.output
    assert _serial(pan) > serial  # learned from the control topic
    assert _topic_end(kafka_bootstrap, topic) == sent_before
    with pytest.raises(Exception, match=how):
        publish(pan)
    assert _topic_end(kafka_bootstrap, topic) == sent_before

    report = diagnose(pan)
    problems = {c.name: c.detail for c in report.problems}
    assert how in problems["signing_key"], report.as_dict()
    assert "rotate" in problems["signing_key"]


def test_doctor_sees_a_revocation_on_the_control_topic_before_any_sync(
    federation: tuple[Home, Home],
) -> None:
    pan, agg = federation
    drafts.revoke(agg, "PAN")
    drafts.sign_draft(agg)
    publish_manifest(agg)
    report = diagnose(pan)  # the home's own manifest still says valid
    detail = next(c.detail for c in report.problems if c.name == "signing_key")
    assert "revoked in the control topic's manifest" in detail
