"""Schema evolution on the real broker: a node still on ConsularMission v1 and an
aggregator on v2 interoperate, and so do a v2 node and a v1 aggregator.

"On v1" is what an old release is: its schema catalogue ends at v1 and its
code writes and reads v1. Schemas are data shipped ahead of code, so an
aggregator whose code still reads v1 already has v2 in its catalogue (it
resolves the writer by fingerprint); one that lacks the writer's schema sets
the event aside, never drops it.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from node.aggregator.apply import Aggregator, consume_until_caught_up
from node.aggregator.stats import ApplyStats
from node.codec.events import EventCodec
from node.codec.registry import SchemaRegistry
from node.config import Home, schemas_dir
from node.crypto.signing import SigningKey
from node.demo.federation import SAMPLES_DIR
from node.federation import trust
from node.home import regional_floor
from node.member.event_factory import EventFactory
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.reference_pipeline import prepare_reference_events
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.store.reference import ReferenceStore
from node.transport.kafka_admin import ensure_topic
from node.transport.kafka_consumer import KafkaSource
from node.transport.kafka_producer import KafkaSink
from tests.factories import aggregator_for

SUBJECT = "ConsularMission|PAN|PAN-CM-IND-01"


def _old_catalogue(tmp_path: Path) -> SchemaRegistry:
    """The schemas an old release shipped: everything but ConsularMission v2."""
    directory = tmp_path / "old-schemas"
    shutil.copytree(schemas_dir(), directory)
    (directory / "ConsularMission.v2.avsc").unlink()
    return SchemaRegistry.from_directory(directory)


def _publish(home: Home, codec: EventCodec, bootstrap: str, topic: str) -> int:
    """Stage this node's reference events with ``codec`` and send them to Kafka."""
    policy = home_policy(home)
    key = SigningKey.load(home.country, home.signing_key_path)
    factory = EventFactory(home.country, policy, key, codec)
    with NodeStore(home.store_path) as store, ReferenceStore(home.store_path) as refs:
        plan = prepare_reference_events(refs, store, factory, datetime.now(UTC))
        store.stage(plan.events)
        ensure_topic(bootstrap, topic)
        sink = KafkaSink(bootstrap, topic, client_id="interop-test")
        try:
            acks = sink.send_batch([(e.key, e.value) for e in plan.events])
        finally:
            sink.close()
    return len(acks)


def _aggregate(agg: Home, codec: EventCodec, bootstrap: str, topic: str, group: str) -> ApplyStats:
    with PictureStore(agg.store_path) as store:
        source = KafkaSource(bootstrap, topic, group)
        try:
            return consume_until_caught_up(
                Aggregator(store, codec, trust.key_directory(agg), floor=regional_floor()), source
            )
        finally:
            source.close()


def _mission(agg: Home) -> dict[str, object]:
    with PictureStore(agg.store_path) as store:
        rows = {r["_subject"]: r for r in store.view("consular_view")}
    return rows[SUBJECT]


def _pan_with_consulates(tmp_path: Path) -> Home:
    home = init_member(tmp_path / "pan", "PAN")
    report = ingest(home, SAMPLES_DIR / "pan" / "consular.csv")
    assert report.stored == 5
    return home


def test_v1_node_and_v2_aggregator_interoperate(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    pan = _pan_with_consulates(tmp_path)
    agg = aggregator_for(tmp_path, [pan])
    old = EventCodec(_old_catalogue(tmp_path), pins={"ConsularMission": 1})
    new = EventCodec(SchemaRegistry.from_directory(schemas_dir()))
    sent = _publish(pan, old, kafka_bootstrap, topic)
    stats = _aggregate(agg, new, kafka_bootstrap, topic, group_id)
    assert sent > 0 and stats.applied == sent and stats.rejected_total == 0
    row = _mission(agg)
    # v1 carried no languages: the v2 reader fills the declared defaults.
    assert row["languages"] == [] and row["emergency_phone"] is None
    assert row["phone"] == "+507 200-0101" and row["also_accredited_to"] == ["CRI", "NIC"]
    with PictureStore(agg.store_path) as store:
        (revision,) = store.history(SUBJECT)
    assert revision["schema_version"] == 1


def test_v2_node_and_v1_aggregator_interoperate(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    pan = _pan_with_consulates(tmp_path)
    agg = aggregator_for(tmp_path, [pan])
    catalogue = SchemaRegistry.from_directory(schemas_dir())
    new = EventCodec(catalogue)
    old_reader = EventCodec(catalogue, pins={"ConsularMission": 1})
    sent = _publish(pan, new, kafka_bootstrap, topic)
    stats = _aggregate(agg, old_reader, kafka_bootstrap, topic, group_id)
    assert sent > 0 and stats.applied == sent and stats.rejected_total == 0
    row = _mission(agg)
    # Written with v2 (languages present), read as v1: the new fields are skipped.
    assert "languages" not in row and "emergency_phone" not in row
    assert row["phone"] == "+507 200-0101" and row["mission_type"] == "EMBASSY"
    with PictureStore(agg.store_path) as store:
        (revision,) = store.history(SUBJECT)
    assert revision["schema_version"] == 2


def test_an_aggregator_without_the_writers_schema_sets_the_event_aside(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    pan = _pan_with_consulates(tmp_path)
    agg = aggregator_for(tmp_path, [pan])
    sent = _publish(
        pan, EventCodec(SchemaRegistry.from_directory(schemas_dir())), kafka_bootstrap, topic
    )
    stats = _aggregate(
        agg,
        EventCodec(_old_catalogue(tmp_path), pins={"ConsularMission": 1}),
        kafka_bootstrap,
        topic,
        group_id,
    )
    assert stats.rejected == {"undecodable-body": sent}
    with PictureStore(agg.store_path) as store:
        assert store.view("consular_view") == []
        assert {r["reason"] for r in store.rejected()} == {"undecodable-body"}
        assert all("unknown schema fingerprint" in r["detail"] for r in store.rejected())


def test_publish_reports_each_exchange_and_withdraw_publishes_at_once(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    import json

    from click.testing import CliRunner

    from node.cli import main

    pan = _pan_with_consulates(tmp_path)
    pan.config.kafka.bootstrap = kafka_bootstrap
    pan.config.kafka.topic = topic
    pan.save()
    runner = CliRunner()
    home = ["--home", str(pan.path)]
    out = runner.invoke(main, [*home, "publish", "--format", "json"])
    assert out.exit_code == 0, out.output
    exchanges = json.loads(out.output)["exchanges"]
    assert exchanges["ConsularMission"] == {
        "shared": True,
        "items": 5,
        "new": 5,
        "revised": 0,
        "withdrawn": 0,
        "unchanged": 0,
        "held_restricted": 0,
        "refused": 0,
    }
    assert exchanges["LegislationEntry"]["items"] == 0
    out = runner.invoke(
        main, [*home, "withdraw", SUBJECT, "--reason", "closed", "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    withdrawal = json.loads(out.output)
    assert (withdrawal["action"], withdrawal["acknowledged"], withdrawal["outbox_pending"]) == (
        "withdraw",
        1,
        0,
    )
    history = json.loads(
        runner.invoke(main, [*home, "history", SUBJECT, "--format", "json"]).output
    )
    assert [(r["revision"], r["action"]) for r in history["revisions"]] == [
        (1, "publication"),
        (2, "withdrawal"),
    ]
    assert all(r["acked_at"] for r in history["revisions"])
    assert history["notes"][0]["reason"] == "closed" and history["withdrawn"] is True
