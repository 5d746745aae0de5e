"""The optional confluent-kafka producer (``kafka.client: confluent``).

``ConfluentSink`` must behave as ``KafkaSink`` does: one Ack per record in
order, matching what a consumer reads back; overlapping ``submit`` batches;
headers and tombstones; TransportError when the broker is gone. A member
whose home says ``client: confluent`` publishes everything to an aggregator
that rejects nothing. confluent-kafka is a dev dependency: these tests never
skip for want of it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import confluent_kafka
import pytest
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from node.aggregator.run import aggregate_once
from node.config import ENV_KAFKA_CLIENT, KafkaSettings
from node.demo.synth import generate_encounters, write_csv
from node.devkafka import ClusterInfo
from node.errors import ConfigError, TransportError
from node.home import open_home
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import open_sink, publish
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.base import Ack
from node.transport.confluent import CONFLUENT_GUARANTEES, confluent_config
from node.transport.confluent_producer import ConfluentSink
from node.transport.credentials import MASK, Redacted, security_settings
from node.transport.kafka_producer import PRODUCER_GUARANTEES
from tests.conftest import secure_local_kafka
from tests.factories import START, aggregator_for, records_only_policy
from tests.patience import PATIENCE_S

PASSWORD = "s3cret-Never-Logged"


def _read(bootstrap: str, topic: str, expected: int) -> list[tuple[int, int, ConsumerRecord]]:
    """(partition, offset, record) for every record on ``topic``, in offset
    order per partition."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    out: list[tuple[int, int, ConsumerRecord]] = []
    try:
        # Until every expected record is in, not until a fixed quiet spell: a
        # busy machine can be quiet for seconds before the first fetch returns.
        deadline = time.monotonic() + PATIENCE_S
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                out += [(r.partition, r.offset, r) for r in records]
        # then one more poll: nothing beyond the expected records is there
        for records in consumer.poll(timeout_ms=1000).values():
            out += [(r.partition, r.offset, r) for r in records]
    finally:
        consumer.close()
    assert len(out) == expected
    return sorted(out, key=lambda t: (t[0], t[1]))


def _records(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    return [(f"{tag}-key-{i % 17}".encode(), f"{tag}-value-{i}".encode()) for i in range(n)]


# -- without a broker ------------------------------------------------------------


def test_config_keeps_the_guarantees_under_librdkafka_names() -> None:
    security = security_settings(
        protocol="SASL_SSL",
        mechanism="SCRAM-SHA-256",
        username="PAN",
        password=PASSWORD,
        cafile="/ca.pem",
    )
    config = confluent_config("a:1,b:2", "corredor-PAN", security)
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["max.in.flight.requests.per.connection"] == 5
    assert config["linger.ms"] == 5 and config["delivery.timeout.ms"] == 120_000
    assert config["partitioner"] == "murmur2_random"  # kafka-python's: tests/test_client_partitions
    assert config["bootstrap.servers"] == "a:1,b:2" and config["client.id"] == "corredor-PAN"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanisms"] == "SCRAM-SHA-256"
    assert config["sasl.username"] == "PAN"
    assert config["ssl.ca.location"] == "/ca.pem"
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    # The password is still the masked str until the producer is made.
    assert str(config["sasl.password"]) == MASK and PASSWORD not in repr(config)
    # The same three guarantees kafka-python is held to.
    assert len(CONFLUENT_GUARANTEES) == len(PRODUCER_GUARANTEES) == 3


def test_confluent_config_refuses_a_setting_it_cannot_map() -> None:
    with pytest.raises(ConfigError, match="ssl_certfile"):
        confluent_config("a:1", "c", {"ssl_certfile": "/x.pem"})


def test_delivery_timeout_option_shortens_request_timeout() -> None:
    sink = ConfluentSink("127.0.0.1:9", "t", delivery_timeout_ms=4_000)
    assert sink._config["delivery.timeout.ms"] == 4_000
    assert sink._config["request.timeout.ms"] == 2_000


def test_missing_extra_is_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(ConfigError, match=r"corredor\[confluent\]"):
        ConfluentSink("127.0.0.1:9", "t")


def test_client_setting_defaults_to_kafka_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KAFKA_CLIENT, raising=False)  # the suite may run under it
    assert KafkaSettings().client == "kafka-python"
    assert KafkaSettings(client="confluent").client == "confluent"
    with pytest.raises(ValueError):
        KafkaSettings(client="librdkafka")


def test_the_extra_is_installed() -> None:
    # A dev dependency: CI must run the broker tests below, not skip them.
    # cimpl.pyi says version() is a (str, int) pair, as libversion() is; it
    # returns the version string.
    version = cast(str, confluent_kafka.version())
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (2, 5) and major < 3


# -- on the broker ---------------------------------------------------------------


@pytest.mark.kafka
def test_send_batch_acks_match_what_a_consumer_reads_back(kafka_bootstrap: str, topic: str) -> None:
    records = _records(300, "a")
    sink = ConfluentSink(kafka_bootstrap, topic)
    try:
        acks = sink.send_batch(records)
    finally:
        sink.close()
    assert len(acks) == len(records)
    assert all(isinstance(a, Ack) and a.topic == topic for a in acks)
    assert len({(a.partition, a.offset) for a in acks}) == len(records)
    read = _read(kafka_bootstrap, topic, len(records))
    by_position = {(p, o): (m.key, m.value) for p, o, m in read}
    # Every ack names the record that is at that position...
    assert [by_position[(a.partition, a.offset)] for a in acks] == records
    # ...and on each partition the records stand in the order they were sent.
    for partition in {a.partition for a in acks}:
        sent = [r for r, a in zip(records, acks, strict=True) if a.partition == partition]
        got = [(m.key, m.value) for p, _, m in sorted(read, key=lambda x: x[:2]) if p == partition]
        assert got == sent


@pytest.mark.kafka
def test_submitted_batches_overlap_and_each_waiter_gets_its_own_acks(
    kafka_bootstrap: str, topic: str
) -> None:
    first, second, third = _records(400, "x"), _records(250, "y"), _records(1, "z")
    sink = ConfluentSink(kafka_bootstrap, topic)
    try:
        wait_first = sink.submit(first)
        wait_second = sink.submit(second)
        # Waited out of order: the second batch's reports do not depend on
        # anyone having waited for the first.
        acks_second = wait_second()
        wait_third = sink.submit(third)
        acks_first = wait_first()
        acks_third = wait_third()
    finally:
        sink.close()
    assert (len(acks_first), len(acks_second), len(acks_third)) == (400, 250, 1)
    everything = acks_first + acks_second + acks_third
    assert len({(a.partition, a.offset) for a in everything}) == 651
    by_position = {(p, o): (m.key, m.value) for p, o, m in _read(kafka_bootstrap, topic, 651)}
    assert [by_position[(a.partition, a.offset)] for a in acks_first] == first
    assert [by_position[(a.partition, a.offset)] for a in acks_second] == second
    assert [by_position[(a.partition, a.offset)] for a in acks_third] == third


@pytest.mark.kafka
def test_headers_and_tombstones(kafka_bootstrap: str, topic: str) -> None:
    sink = ConfluentSink(kafka_bootstrap, topic)
    try:
        acks = sink.send_with_headers(
            [
                (b"subject-1", b"original", [("reason", b"bad-signature"), ("origin", b"PAN")]),
                (b"subject-1", None, []),
                (None, b"keyless", [("reason", b"x")]),
            ]
        )
    finally:
        sink.close()
    assert len(acks) == 3
    assert acks[0].partition == acks[1].partition and acks[1].offset == acks[0].offset + 1
    by_position = {(p, o): m for p, o, m in _read(kafka_bootstrap, topic, 3)}
    dead, tomb, keyless = (by_position[(a.partition, a.offset)] for a in acks)
    assert dead.key == b"subject-1" and dead.value == b"original"
    assert list(dead.headers) == [("reason", b"bad-signature"), ("origin", b"PAN")]
    assert tomb.key == b"subject-1" and tomb.value is None and not tomb.headers
    assert keyless.key is None and keyless.value == b"keyless"
    assert list(keyless.headers) == [("reason", b"x")]


@pytest.mark.kafka
@pytest.mark.parametrize("overlap", [False, True], ids=["serial", "drainer-process"])
def test_member_publishing_with_the_confluent_client_is_aggregated_whole(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str, overlap: bool
) -> None:
    home = init_member(
        tmp_path / "usa",
        "USA",
        topic=topic,
        bootstrap=kafka_bootstrap,
        policy=records_only_policy(tmp_path),
    )
    home.config.kafka.client = "confluent"
    home.save()
    assert open_home(home.path).config.kafka.client == "confluent"
    rows = generate_encounters("USA", 1_200, seed=21, start=START, weeks=6)
    path = tmp_path / "usa.csv"
    write_csv(rows, path)
    ingest(home, path, stage=False)
    agg = aggregator_for(tmp_path, [home], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()

    sink = open_sink(home)
    try:
        assert isinstance(sink, ConfluentSink)
    finally:
        sink.close()

    result = publish(home, overlap=overlap)
    assert result.drain.acknowledged == result.drain.sent == result.plan.staged > 1_200
    assert result.outbox.pending == 0
    with NodeStore(home.store_path) as store:
        acked = store.connection.execute(
            "SELECT COUNT(DISTINCT partition || ':' || \"offset\") FROM outbox"
            ' WHERE topic = ? AND "offset" IS NOT NULL',
            (topic,),
        ).fetchone()[0]
    assert acked == result.plan.staged

    stats = aggregate_once(agg)
    assert stats.applied == result.plan.staged and stats.rejected_total == 0
    with PictureStore(agg.store_path) as picture:
        assert len(picture.view("encounter_view")) == 1_200


@pytest.mark.kafka
@pytest.mark.faults
def test_unreachable_broker_is_a_transport_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    security = security_settings(protocol="SASL_PLAINTEXT", username="PAN", password=PASSWORD)
    # Nothing listens on the discard port.
    sink = ConfluentSink("127.0.0.1:9", "nowhere", security=security, delivery_timeout_ms=2_000)
    try:
        with pytest.raises(TransportError, match="publish to nowhere failed") as raised:
            sink.send_batch(_records(5, "lost"))
        with pytest.raises(TransportError, match="publish to nowhere failed"):
            sink.send_with_headers([(b"k", None, [])])
    finally:
        sink.close()
    assert PASSWORD not in str(raised.value)
    assert PASSWORD not in caplog.text


# -- over SASL_SSL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def secure(kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secure_local_kafka(kafka_jars, tmp_path_factory.mktemp("confluent-secure")) as info:
        yield info


def _security(info: ClusterInfo, user: str) -> dict[str, Any]:
    return {k: v for k, v in info.client_config(user).items() if k != "bootstrap_servers"}


@pytest.mark.kafka
def test_the_kafka_python_security_settings_work_for_librdkafka(
    secure: ClusterInfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sec = secure.security
    assert sec is not None
    security = _security(secure, "PAN")
    sink = ConfluentSink(
        secure.bootstrap, sec.shared_topic, client_id="corredor-PAN", security=security
    )
    try:
        acks = sink.send_batch([(b"PAN", b"over SASL_SSL")])
    finally:
        sink.close()
    assert acks[0].topic == sec.shared_topic and acks[0].offset >= 0

    wrong = dict(security, sasl_plain_password=Redacted("not-the-password"))
    sink = ConfluentSink(
        secure.bootstrap, sec.shared_topic, security=wrong, delivery_timeout_ms=3_000
    )
    try:
        with pytest.raises(TransportError) as refused:
            sink.send_batch([(b"PAN", b"refused")])
    finally:
        sink.close()
    message = str(refused.value)
    assert f"publish to {sec.shared_topic} failed" in message and "password" in message
    assert "authentication" in message.lower()  # librdkafka's reason, not just a timeout
    secrets = ["not-the-password", sec.password("PAN")]
    assert [s for s in secrets if s in message or s in caplog.text] == []
