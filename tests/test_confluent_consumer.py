"""The optional confluent-kafka consumer (``kafka.client: confluent``).

``ConfluentSource`` must behave as ``KafkaSource`` does: a partition starts at
the group's committed offset (the beginning when there is none), offsets move
only on ``commit``, which covers exactly what was returned; records come with
their key, value (None for a tombstone), headers, and the broker's timestamp
and its type. ``confluent_read_all`` reads a topic whole without a group. The
expected records are read back with kafka-python's own consumer, independently
of the code under test. An aggregator whose home says ``client: confluent``
consumes through it, over SASL_SSL too, and rides out a broker that goes away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from node.aggregator.run import aggregate_follow, aggregate_once, open_source
from node.config import Home, KafkaSettings
from node.demo.synth import generate_encounters, write_csv
from node.devkafka import ClusterInfo, LocalKafka
from node.devkafka.manage import home_settings
from node.errors import TransportError
from node.home import open_home
from node.loops import wait_until
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.store.picture import PictureStore
from node.transport.base import Message
from node.transport.confluent import consumer_config
from node.transport.confluent_replay import confluent_read_all
from node.transport.confluent_source import ConfluentSource
from node.transport.credentials import MASK, Redacted, security_settings
from node.transport.kafka_consumer import KafkaSource, read_all
from node.transport.kafka_producer import KafkaSink
from tests.conftest import secure_local_kafka
from tests.factories import START, aggregator_for, detail_policy, expected_picture, picture_totals

PASSWORD = "s3cret-Never-Logged"


# -- independent reference reads (kafka-python's own consumer) -------------------


def _reference(bootstrap: str, topic: str, expected: int) -> dict[tuple[int, int], Any]:
    """Every record on ``topic`` by (partition, offset), read by kafka-python."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    try:
        out = {(r.partition, r.offset): r for r in consumer}
    finally:
        consumer.close()
    assert len(out) == expected
    return out


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets, as kafka-python sees them."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        out = {}
        for p in sorted(consumer.partitions_for_topic(topic) or ()):
            offset = consumer.committed(TopicPartition(topic, p))
            if offset is not None:
                out[p] = offset
        return out
    finally:
        consumer.close()


def _drain(source: ConfluentSource, expected: int, deadline_s: float = 120) -> list[Message]:
    out: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(out) < expected:
        assert time.monotonic() < deadline, f"read {len(out)} of {expected}"
        out.extend(source.poll_batch(500, 1_000))
    return out


def _publish(bootstrap: str, topic: str, n: int, tag: str) -> list[tuple[bytes, bytes]]:
    records = [(f"{tag}-k{i % 11}".encode(), f"{tag}-v{i}".encode()) for i in range(n)]
    sink = KafkaSink(bootstrap, topic)
    try:
        sink.send_batch(records)
    finally:
        sink.close()
    return records


# -- without a broker --------------------------------------------------------------


def test_consumer_config_commits_nothing_by_itself_and_masks_the_password() -> None:
    security = security_settings(
        protocol="SASL_SSL", username="secretariat", password=PASSWORD, cafile="/ca.pem"
    )
    config = consumer_config("a:1,b:2", "corredor-aggregator", "corredor-aggregator", security)
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["auto.offset.reset"] == "earliest"
    assert config["group.id"] == "corredor-aggregator"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert config["ssl.ca.location"] == "/ca.pem"
    assert str(config["sasl.password"]) == MASK and PASSWORD not in repr(config)
    # The same group timeouts as kafka-python's source.
    assert (config["session.timeout.ms"], config["max.poll.interval.ms"]) == (10_000, 60_000)


# -- on the broker ---------------------------------------------------------------


@pytest.mark.kafka
def test_records_match_kafka_python_key_value_headers_tombstones(
    kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    sink = KafkaSink(kafka_bootstrap, topic)
    try:
        sink.send_with_headers(
            [
                (b"subject-1", b"first", [("corredor.reason", b"x"), ("empty", b"")]),
                (b"subject-1", None, []),  # a tombstone
                (None, b"keyless", []),
            ]
        )
        sink.send_batch([(f"k{i}".encode(), f"v{i}".encode()) for i in range(200)])
    finally:
        sink.close()
    reference = _reference(kafka_bootstrap, topic, 203)
    source = ConfluentSource(kafka_bootstrap, topic, group_id)
    try:
        got = _drain(source, 203)
        assert source.caught_up()
    finally:
        source.close()
    assert len({(m.partition, m.offset) for m in got}) == 203
    for m in got:
        r = reference[(m.partition, m.offset)]
        assert (m.topic, m.key, m.value, m.timestamp_ms) == (topic, r.key, r.value, r.timestamp)
        assert m.headers == tuple((k, bytes(v or b"")) for k, v in r.headers)
        # The same timestamp type as kafka-python reads (the broker's append time, or not).
        assert m.log_append_time is (r.timestamp_type == 1)
    tomb = next(m for m in got if m.key == b"subject-1" and m.value is None)
    assert tomb.headers == ()
    first = next(m for m in got if m.value == b"first")
    assert first.headers == (("corredor.reason", b"x"), ("empty", b""))
    # Per partition, in offset order, as kafka-python reads them.
    for p in {m.partition for m in got}:
        offsets = [m.offset for m in got if m.partition == p]
        assert offsets == sorted(offsets)


@pytest.mark.kafka
def test_broker_append_time_is_exposed_as_such(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> None:
    name = f"append-time-{request.node.name[-20:]}-{time.time_ns() % 10**9}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})]
        )
    finally:
        admin.close()
    # The producer claims a time ten years back; the broker overwrites it.
    claimed = int(time.time() * 1000) - 10 * 365 * 86_400_000
    before = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(name, key=b"k", value=b"v", timestamp_ms=claimed).get(timeout=30)
    finally:
        producer.close()
    after = int(time.time() * 1000)
    (msg,) = confluent_read_all(kafka_bootstrap, name)
    (ref,) = read_all(kafka_bootstrap, name)
    assert msg.log_append_time is True and ref.log_append_time is True
    assert msg.timestamp_ms == ref.timestamp_ms
    assert before - 1_000 <= msg.timestamp_ms <= after + 1_000


@pytest.mark.kafka
def test_offsets_move_only_on_commit_and_a_successor_resumes_there(
    kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    records = _publish(kafka_bootstrap, topic, 600, "c")
    first = ConfluentSource(kafka_bootstrap, topic, group_id)
    try:
        seen = first.poll_batch(5_000, 100)
        assert 0 < len(seen) <= 100
        assert not first.caught_up()
        first.commit()
        # Read on, but never commit what follows: it must come again.
        uncommitted = _drain(first, 50)
    finally:
        first.close()
    committed = _committed(kafka_bootstrap, group_id, topic)
    expected: dict[int, int] = {}
    for m in seen:
        expected[m.partition] = max(expected.get(m.partition, 0), m.offset + 1)
    assert {p: o for p, o in committed.items() if p in expected} == expected

    second = ConfluentSource(kafka_bootstrap, topic, group_id)
    try:
        rest = _drain(second, len(records) - len(seen))
        assert second.caught_up()
        assert second.lag() == 0
        second.commit()
        # Nothing more: caught up means caught up.
        assert second.poll_batch(1_000, 100) == []
    finally:
        second.close()
    positions = [(m.partition, m.offset) for m in seen + rest]
    assert len(positions) == len(set(positions)) == len(records)
    assert {(m.partition, m.offset) for m in uncommitted} <= {(m.partition, m.offset) for m in rest}
    ends = {p: o for p, o in _committed(kafka_bootstrap, group_id, topic).items()}
    reference = _reference(kafka_bootstrap, topic, len(records))
    for p in {p for p, _ in reference}:
        assert ends[p] == max(o for q, o in reference if q == p) + 1


@pytest.mark.kafka
def test_lag_counts_what_is_left(kafka_bootstrap: str, topic: str, group_id: str) -> None:
    _publish(kafka_bootstrap, topic, 300, "l")
    source = ConfluentSource(kafka_bootstrap, topic, group_id)
    kafka_python = KafkaSource(kafka_bootstrap, topic, group_id + "-kp")
    try:
        assert source.lag() == kafka_python.lag() == 300
        got = source.poll_batch(5_000, 120)
        assert source.lag() == 300 - len(got)
        _drain(source, 300 - len(got))
        assert source.lag() == 0 and source.caught_up()
    finally:
        source.close()
        kafka_python.close()


@pytest.mark.kafka
def test_read_all_without_a_group_equals_kafka_python(kafka_bootstrap: str, topic: str) -> None:
    assert confluent_read_all(kafka_bootstrap, topic) == []
    _publish(kafka_bootstrap, topic, 250, "r")
    ours = confluent_read_all(kafka_bootstrap, topic)
    theirs = read_all(kafka_bootstrap, topic)
    key = lambda m: (m.partition, m.offset)  # noqa: E731
    assert sorted(ours, key=key) == sorted(theirs, key=key)
    assert len(ours) == 250
    # A topic that does not exist reads as empty, as with kafka-python.
    assert confluent_read_all(kafka_bootstrap, f"{topic}-missing", timeout_s=10) == []


@pytest.mark.kafka
@pytest.mark.faults
def test_unreachable_broker_is_a_transport_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    security = security_settings(protocol="SASL_PLAINTEXT", username="PAN", password=PASSWORD)
    source = ConfluentSource(
        "127.0.0.1:9", "nowhere", "g", security=security, assignment_timeout_s=3
    )
    with pytest.raises(TransportError, match="no partitions assigned in time") as raised:
        source.open()
    source.close()
    assert PASSWORD not in str(raised.value) and PASSWORD not in caplog.text


def _member_and_aggregator(
    tmp_path: Path, bootstrap: str, topic: str, group_id: str, rows: list[dict[str, str]]
) -> tuple[Home, Home]:
    """PAN with ``rows`` ingested (not staged) and an aggregator that consumes
    with confluent-kafka."""
    home = init_member(
        tmp_path / "pan",
        "PAN",
        topic=topic,
        bootstrap=bootstrap,
        policy=detail_policy(tmp_path / "policies", "PAN"),
    )
    path = tmp_path / "pan.csv"
    write_csv(rows, path)
    ingest(home, path, stage=False)
    agg = aggregator_for(tmp_path, [home], topic=topic)
    agg.config.kafka.bootstrap = bootstrap
    agg.config.kafka.group_id = group_id
    agg.config.kafka.client = "confluent"
    agg.save()
    return home, agg


@pytest.mark.kafka
def test_a_whole_aggregation_with_the_confluent_consumer(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    rows = generate_encounters("PAN", 900, seed=31, start=START, weeks=4)
    home, agg = _member_and_aggregator(tmp_path, kafka_bootstrap, topic, group_id, rows)
    result = publish(home)
    source = open_source(agg)
    try:
        assert isinstance(source, ConfluentSource)
    finally:
        source.close()
    stats = aggregate_once(agg)
    assert stats.applied == stats.messages == result.plan.staged > 0
    assert picture_totals(agg) == expected_picture([("PAN", rows)])
    # A second run finds its offsets committed: nothing again.
    again = aggregate_once(agg)
    assert again.messages == 0
    committed = _committed(kafka_bootstrap, group_id, topic)
    assert sum(committed.values()) == result.plan.staged


# -- the broker gone -------------------------------------------------------------


@pytest.fixture
def single_broker(kafka_jars: Path, tmp_path: Path) -> Iterator[LocalKafka]:
    with LocalKafka(1, jars=kafka_jars, base_dir=tmp_path / "kafka") as kafka:
        yield kafka


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.slow
def test_aggregate_follow_rides_out_the_broker_gone(
    single_broker: LocalKafka, tmp_path: Path
) -> None:
    bootstrap = single_broker.bootstrap
    topic = "confluent.down"
    rows = generate_encounters("PAN", 3000, seed=42, start=START, weeks=6)
    first, later = rows[:1500], rows[1500:]
    home, agg = _member_and_aggregator(tmp_path, bootstrap, topic, "corredor-aggregator", first)
    sent_first = publish(home).drain.acknowledged

    stop = threading.Event()
    done: dict[str, Any] = {}

    def run() -> None:
        # Small batches: the broker goes while the backlog is being applied.
        done["stats"] = aggregate_follow(agg, stop, max_records=25, poll_timeout_ms=300)

    def received() -> int:
        with PictureStore(agg.store_path) as store:
            return store.counts()["events_received"]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: received() > 0, 90)
        single_broker.kill_broker(1)
        assert received() < sent_first, "killed mid-backlog"
        # Down for a while: the consumer sits it out.
        assert not wait_until(lambda: not thread.is_alive(), 6)
        single_broker.restart_broker(1)
        write_csv(later, tmp_path / "b.csv")
        ingest(home, tmp_path / "b.csv", stage=False)
        sent = sent_first + publish(home).drain.acknowledged
        assert wait_until(lambda: received() == sent, 120), (received(), sent)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    total = len(read_all(bootstrap, topic))
    assert received() == total == sent
    stats = done["stats"]
    # Nothing doubled: every message was applied once, or seen again and known.
    assert stats.applied == total
    assert picture_totals(agg) == expected_picture([("PAN", rows)])


# -- over SASL_SSL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def secure(kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secure_local_kafka(kafka_jars, tmp_path_factory.mktemp("confluent-consumer")) as info:
        yield info


def _security(info: ClusterInfo, user: str) -> dict[str, Any]:
    return {k: v for k, v in info.client_config(user).items() if k != "bootstrap_servers"}


@pytest.mark.kafka
def test_sasl_ssl_scram_with_the_ca_file(
    secure: ClusterInfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sec = secure.security
    assert sec is not None
    producer = KafkaProducer(**secure.client_config("PAN"))
    try:
        sent = [
            producer.send(sec.shared_topic, key=b"PAN", value=f"over tls {i}".encode())
            for i in range(20)
        ]
        producer.flush()
        offsets = {(f.get(timeout=30).partition, f.get(timeout=30).offset) for f in sent}
    finally:
        producer.close()
    security = _security(secure, sec.secretariat)
    assert security["security_protocol"] == "SASL_SSL"
    assert security["sasl_mechanism"] == "SCRAM-SHA-512" and security["ssl_cafile"]
    group = "corredor-aggregator.confluent-test"
    source = ConfluentSource(secure.bootstrap, sec.shared_topic, group, security=security)
    try:
        got = _drain(source, 20)
        source.commit()
    finally:
        source.close()
    assert offsets <= {(m.partition, m.offset) for m in got}

    # A member reads the picture topic without a group of the Secretariat's.
    picture = confluent_read_all(
        secure.bootstrap, sec.picture_topic, security=_security(secure, "PAN"), timeout_s=20
    )
    assert picture == read_all(
        secure.bootstrap, sec.picture_topic, security=_security(secure, "PAN")
    )

    wrong = dict(security, sasl_plain_password=Redacted("not-the-password"))
    source = ConfluentSource(
        secure.bootstrap, sec.shared_topic, group, security=wrong, assignment_timeout_s=20
    )
    try:
        with pytest.raises(TransportError) as refused:
            source.open()
    finally:
        source.close()
    message = str(refused.value)
    assert "authentication" in message.lower() and "password" in message
    secrets = ["not-the-password", sec.password(sec.secretariat), sec.password("PAN")]
    assert [s for s in secrets if s in message or s in caplog.text] == []


@pytest.mark.kafka
def test_a_whole_aggregation_over_sasl_ssl_from_the_homes_settings(
    secure: ClusterInfo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The homes name a password file and the CA, as `kafka connect` writes
    them; the Secretariat consumes with confluent-kafka and its picture is exact."""
    caplog.set_level(logging.DEBUG)
    sec = secure.security
    assert sec is not None
    rows = generate_encounters("PAN", 700, seed=61, start=START, weeks=3)
    home, agg = _member_and_aggregator(
        tmp_path, secure.bootstrap, sec.shared_topic, "corredor-aggregator.sasl", rows
    )
    for h, user in ((home, "PAN"), (agg, sec.secretariat)):
        settings = {**h.config.kafka.model_dump(), **home_settings(secure, user)}
        h.config.kafka = KafkaSettings.model_validate(settings)
        h.save()
    agg = open_home(agg.path)
    assert agg.config.kafka.client == "confluent"
    assert agg.config.kafka.security_protocol == "SASL_SSL"
    published = publish(open_home(home.path)).drain.acknowledged
    source = open_source(agg)
    assert isinstance(source, ConfluentSource)
    source.close()
    stats = aggregate_once(agg)
    # The shared topic is the secure cluster's, used by other tests of this
    # module too: this member's events are all applied, and only others' plain
    # test messages are set aside.
    assert stats.applied == published > 0
    assert set(stats.rejected) <= {"undecodable"}
    assert stats.rejected_total == stats.messages - published
    assert picture_totals(agg) == expected_picture([("PAN", rows)])
    secrets = [sec.password(u) for u in sec.users]
    assert [s for s in secrets if s in caplog.text] == []
