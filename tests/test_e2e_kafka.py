"""The slice on a real broker: four nodes publish, the Secretariat aggregates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from node.aggregator.run import aggregate_once
from node.config import Home
from node.crypto.signing import SigningKey
from node.demo.synth import plant_values
from node.home import event_codec
from node.member.publish import publish
from node.model.events import Envelope, PolicyRef
from node.operator.status import home_status
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from tests.factories import aggregator_for, expected_picture, member_with_data, picture_totals

COUNTRIES = ("PAN", "CRI", "GTM", "MEX")
#: Each member with the rows it ingested, and the aggregator.
Federation = tuple[list[tuple[Home, list[dict[str, str]]]], Home]


def _all_bytes(bootstrap: str, topic: str) -> list[bytes]:
    """Every key and value on the topic, read back from the broker."""
    return [x for m in read_all(bootstrap, topic) for x in (m.key, m.value) if x]


@pytest.fixture
def federation(tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str) -> Federation:
    members = []
    for i, country in enumerate(COUNTRIES):
        home, rows, _ = member_with_data(
            tmp_path, country, 2500, seed=100 + i, weeks=4, topic=topic, detail_only=True
        )
        home.config.kafka.bootstrap = kafka_bootstrap
        home.save()
        members.append((home, rows))
    agg = aggregator_for(tmp_path, [h for h, _ in members], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    return members, agg


def test_four_nodes_picture_equals_raw_counts(federation: Federation, kafka_bootstrap: str) -> None:
    members, agg = federation
    for home, _ in members:
        result = publish(home)
        assert result.drain.acknowledged == result.plan.published_cells > 0
        assert result.outbox.pending == 0
    stats = aggregate_once(agg)
    assert stats.rejected_total == 0
    assert stats.applied == stats.messages > 0
    assert picture_totals(agg) == expected_picture((h.country, rows) for h, rows in members)
    # A second pass finds nothing new; publishing again sends nothing.
    assert aggregate_once(agg).messages == 0
    assert all(publish(h).drain.sent == 0 for h, _ in members)


def test_no_raw_identifying_value_reaches_the_topic(
    federation: Federation, kafka_bootstrap: str, topic: str
) -> None:
    members, _ = federation
    planted: set[str] = set()
    for home, rows in members:
        publish(home)
        for values in plant_values(rows).values():
            planted |= {v for v in values if len(v) >= 4}
    blobs = _all_bytes(kafka_bootstrap, topic)
    assert blobs, "nothing was read back from the topic"

    def scan(blobs: list[bytes]) -> list[str]:
        return [v for v in planted for b in blobs if v.encode("utf-8") in b]

    assert not scan(blobs), "raw values found on the topic"
    # The same read and scan find a planted value once one is on the topic,
    # inside a message as an event would carry it.
    leaked = sorted(planted)[0]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=b"PAN", value=b"\x02" + leaked.encode("utf-8") + b"\x00").get(30)
    producer.close()
    assert leaked in scan(_all_bytes(kafka_bootstrap, topic))


def test_forged_event_on_the_topic_is_not_applied(
    federation: Federation, kafka_bootstrap: str, topic: str
) -> None:
    members, agg = federation
    pan = members[0][0]
    publish(pan)
    codec = event_codec()
    pan_key = SigningKey.load("PAN", pan.signing_key_path)
    intruder = SigningKey.generate("PAN")
    body = codec.encode_body(
        "FlowStatistic",
        {
            "reporting_country": "PAN",
            "period": "2024-W03",
            "period_type": "ISO_WEEK",
            "nationality": "IND",
            "count": 424242,
        },
    )
    env = Envelope(
        event_id=str(uuid.uuid4()),
        producer="PAN",
        kind="FlowStatistic",
        subject="FlowStatistic|PAN|2024-W03|nationality=IND,sex=M,age_band=18-29,previous_country=COL",
        revision=1000,
        produced_at=datetime.now(UTC),
        policy=PolicyRef("PAN-policy", "2024.1", "0" * 64),
        audiences=("TS",),
        purposes=("statistics",),
        key_id=pan_key.key_id,
        body=body,
    )
    env_bytes = codec.encode_envelope(env)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=b"PAN", value=codec.encode_signed(env_bytes, intruder.sign(env_bytes)))
    producer.flush()
    producer.close()
    stats = aggregate_once(agg)
    assert stats.rejected == {"bad-signature": 1}
    assert stats.applied > 0
    with PictureStore(agg.store_path) as store:
        assert all(c["count"] != 424242 for c in store.flow_cells())
        rejected = store.rejected()
    assert rejected[0]["reason"] == "bad-signature"
    assert rejected[0]["producer"] == "PAN" and rejected[0]["event_id"] == env.event_id
    status = home_status(agg)
    assert status["rejected"] == 1
