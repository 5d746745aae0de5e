"""The shared topic keeps what a rebuild needs, on a broker that deletes fast.

The broker here has tiny segments, checks retention every second and deletes
at once, and its default retention is a few seconds: what Kafka's default of
7 days is to a policy that retains for 10 years. A topic that takes the
broker's defaults loses its first messages within seconds (the positive
control below shows it); the shared topic, as Corredor creates it, keeps them,
and a Secretariat rebuilding its picture from the beginning gets the same
picture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from node.aggregator.run import aggregate_once
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.devkafka import LocalKafka
from node.member.intake import ingest
from node.member.publish import publish
from node.operator.doctor import diagnose
from node.store.picture import VIEW_COLUMNS, PictureStore
from node.transport.kafka_admin import ensure_topic
from node.transport.topic_config import DAY_MS, rebuild_problems
from tests.factories import (
    START,
    aggregator_for,
    expected_picture,
    member_with_data,
    picture_totals,
)
from tests.patience import PATIENCE_S

#: What the broker's defaults are to a topic that states nothing itself.
BROKER_DEFAULT_RETENTION_MS = 4_000

FAST_DELETION = {
    "log.retention.ms": str(BROKER_DEFAULT_RETENTION_MS),
    "log.retention.check.interval.ms": "1000",
    "log.segment.delete.delay.ms": "0",
    "log.segment.bytes": "1048576",  # Kafka 4's minimum
    "log.roll.ms": "1000",  # and a new segment every second of appends
}


@pytest.fixture(scope="module")
def deleting_broker(kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("deleting-kafka")
    with LocalKafka(1, jars=kafka_jars, base_dir=base, broker_properties=FAST_DELETION) as kafka:
        yield kafka.bootstrap


def _log_starts(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        starts = consumer.beginning_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in starts.items()}
    finally:
        consumer.close()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE_S:.0f} s for {what}"
        time.sleep(0.5)


def _picture(home: Home) -> dict[str, Any]:
    with PictureStore(home.store_path) as store:
        views = {table: store.view(table) for table in VIEW_COLUMNS}
        totals = sorted(store.flow_cells(), key=lambda r: r["subject"])
        counts = store.counts()
    return {"views": views, "totals": totals, "counts": counts}


def test_a_rebuild_from_the_topic_equals_the_picture_after_retention_ran(
    deleting_broker: str, tmp_path: Path
) -> None:
    bootstrap = deleting_broker
    topic = "retention.shared"
    pan, rows, _ = member_with_data(
        tmp_path, "PAN", 400, seed=21, weeks=4, topic=topic, detail_only=True
    )
    pan.config.kafka.bootstrap = bootstrap
    pan.save()
    agg = aggregator_for(tmp_path, [pan], topic=topic)
    agg.config.kafka.bootstrap = bootstrap
    agg.save()
    first = publish(pan)  # creates the shared topic, as any node does
    assert first.drain.acknowledged > 0 and first.outbox.pending == 0
    aggregate_once(agg)

    # Positive control: a topic on the broker's defaults, written after the
    # shared topic's first events, loses its records to the retention checker.
    control = "retention.defaults"
    ensure_topic(bootstrap, control, partitions=1)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i in range(20):
            producer.send(control, key=b"k", value=f"old-{i}".encode()).get(PATIENCE_S)
        # later records, in a later segment: the old segment is closed and due
        time.sleep(1.5)
        producer.send(control, key=b"k", value=b"new").get(PATIENCE_S)
    finally:
        producer.close()
    _wait_for(lambda: _log_starts(bootstrap, control)[0] >= 20, "the broker to delete old records")

    # More records reach PAN and go out: the shared topic rolls new segments
    # while its first ones are far past the broker's default retention.
    # (late registrations: they revise cells already published)
    everything = generate_encounters("PAN", 600, seed=21, start=START, weeks=4)
    assert everything[:400] == rows
    more = everything[400:]
    write_csv(more, tmp_path / "more.csv")
    assert ingest(pan, tmp_path / "more.csv").stored == 200
    second = publish(pan)
    assert second.drain.acknowledged > 0
    aggregate_once(agg)
    # The retention checker has passed over the shared topic's old segments
    # again since (it deletes a control record written after them).
    probe = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        probe.send(control, key=b"k", value=b"probe").get(PATIENCE_S)
        time.sleep(1.5)
        probe.send(control, key=b"k", value=b"after-probe").get(PATIENCE_S)
    finally:
        probe.close()
    _wait_for(lambda: _log_starts(bootstrap, control)[0] >= 22, "a later retention pass")

    assert set(_log_starts(bootstrap, topic).values()) == {0}, "the shared topic lost messages"
    rebuilt = aggregator_for(tmp_path / "rebuild", [pan], topic=topic)
    rebuilt.config.kafka.bootstrap = bootstrap
    rebuilt.save()
    aggregate_once(rebuilt)
    picture, again = _picture(agg), _picture(rebuilt)
    assert again == picture
    assert picture["counts"]["events_applied"] == (
        first.drain.acknowledged + second.drain.acknowledged
    )
    # and the picture is the whole of the raw data, not just what both kept
    assert picture_totals(rebuilt) == expected_picture([("PAN", rows + more)])

    # doctor: the shared topic can serve a rebuild; a topic on the defaults cannot.
    report = diagnose(agg)
    retention = next(c for c in report.checks if c.name == "retention")
    assert retention.ok, report.as_dict()
    agg.config.kafka.topic = control
    agg.save()
    report = diagnose(agg)
    retention = next(c for c in report.checks if c.name == "retention")
    assert retention.ok is False
    assert f"retention.ms={BROKER_DEFAULT_RETENTION_MS}" in retention.detail
    assert "already deleted" in retention.detail
    assert not report.healthy


def test_rebuild_problems_name_each_setting_that_loses_messages() -> None:
    ten_years = 3650
    enough = str((ten_years + 30) * DAY_MS)
    good = {
        "cleanup.policy": "delete",
        "retention.ms": enough,
        "retention.bytes": "-1",
        "message.timestamp.type": "LogAppendTime",
    }
    assert rebuild_problems(good, ten_years) == []
    # A topic stamped by its producers: every record would be set aside as untrusted-time.
    (stamped,) = rebuild_problems({**good, "message.timestamp.type": "CreateTime"}, ten_years)
    assert "LogAppendTime" in stamped
    assert rebuild_problems({**good, "retention.ms": "-1"}, ten_years) == []  # forever
    week = {**good, "retention.ms": str(7 * DAY_MS)}
    (problem,) = rebuild_problems(week, ten_years)
    assert "7.0 days" in problem and "3650" in problem
    (problem,) = rebuild_problems({**good, "retention.bytes": "1073741824"}, ten_years)
    assert "retention.bytes=1073741824" in problem
    (problem,) = rebuild_problems({**good, "cleanup.policy": "compact"}, ten_years)
    assert "one event per country" in problem
    assert len(rebuild_problems({**good, "cleanup.policy": "compact,delete"}, ten_years)) == 1
    (problem,) = rebuild_problems(good, ten_years, log_start_offsets=12)
    assert "12 messages" in problem
    # A topic that states nothing has Kafka's default of 7 days.
    assert rebuild_problems({}, ten_years) != []
