"""node.devkafka: config generation and state without Java; then the real broker."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from node.devkafka import (
    ClusterInfo,
    LocalKafka,
    NodeInfo,
    cluster_status,
    ensure_jars,
    load_state,
    save_state,
    server_properties,
    stop_cluster,
)
from node.devkafka.jars import COMPLETE_MARKER, jars_dir
from node.devkafka.properties import (
    ListenerSecurity,
    NodeAddress,
    log4j2_properties,
    new_cluster_id,
    parse_properties,
    render_properties,
)
from node.errors import KafkaSetupError
from tests.patience import PATIENCE_S

ONE = [NodeAddress(1, 19092, 19093)]
THREE = [NodeAddress(1, 19092, 19093), NodeAddress(2, 29092, 29093), NodeAddress(3, 39092, 39093)]


# --- server.properties -------------------------------------------------------


def test_single_node_properties_are_a_loopback_kraft_combined_node(tmp_path: Path) -> None:
    props = server_properties(ONE[0], ONE, tmp_path / "data")

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str((tmp_path / "data").resolve())
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["offsets.topic.num.partitions"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["share.coordinator.state.topic.replication.factor"] == "1"
    assert props["share.coordinator.state.topic.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert "min.insync.replicas" not in props


def test_three_node_properties_replicate_and_fence_fast(tmp_path: Path) -> None:
    props = server_properties(THREE[1], THREE, tmp_path / "data")

    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["share.coordinator.state.topic.min.isr"] == "2"
    assert props["broker.heartbeat.interval.ms"] == "500"
    assert props["broker.session.timeout.ms"] == "3000"


def test_properties_file_round_trips(tmp_path: Path) -> None:
    props = server_properties(THREE[0], THREE, tmp_path / "data")
    text = render_properties(props)

    assert text.startswith("#")
    assert parse_properties(text) == props


@pytest.mark.parametrize("size", [0, 2, 4])
def test_only_one_or_three_nodes(size: int, tmp_path: Path) -> None:
    voters = [NodeAddress(i + 1, 1000 + i, 2000 + i) for i in range(size)]
    with pytest.raises(KafkaSetupError, match="1 or 3 nodes"):
        server_properties(voters[0] if voters else ONE[0], voters, tmp_path)


def test_secure_mode_needs_its_tls_files_and_passwords(tmp_path: Path) -> None:
    with pytest.raises(KafkaSetupError, match="secure mode"):
        server_properties(ONE[0], ONE, tmp_path, secure=True)


def test_secure_properties_leave_no_unauthenticated_listener(tmp_path: Path) -> None:
    security = ListenerSecurity(
        keystore=tmp_path / "broker.pem",
        truststore=tmp_path / "ca.pem",
        admin_user="admin",
        admin_password="adm1n-pw",
        controller_user="controller",
        controller_password="ctl-pw",
    )
    props = server_properties(THREE[0], THREE, tmp_path / "data", secure=True, security=security)

    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19092"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_", "")
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert (
        'username="admin" password="adm1n-pw"'
        in (props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"])
    )
    assert 'user_controller="ctl-pw"' in props["listener.name.controller.plain.sasl.jaas.config"]
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str((tmp_path / "broker.pem").resolve())
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:admin;User:controller"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    # Replication settings are untouched by security.
    assert props["min.insync.replicas"] == "2"


def test_cluster_id_is_16_bytes_urlsafe_without_padding() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert "=" not in cluster_id
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_log4j2_config_logs_info_to_the_node_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "server.log"
    props = parse_properties(log4j2_properties(log_file))

    assert props["appender.file.fileName"] == str(log_file.resolve())
    assert props["rootLogger.level"] == "INFO"
    assert props["rootLogger.appenderRef.file.ref"] == props["appender.file.name"]


# --- state file -----------------------------------------------------------------


def _cluster(tmp_path: Path, pid: int = 4242) -> ClusterInfo:
    node_dir = tmp_path / "node-1"
    node = NodeInfo(
        node_id=1,
        pid=pid,
        port=19092,
        controller_port=19093,
        node_dir=node_dir,
        data_dir=node_dir / "data",
        props_file=node_dir / "server.properties",
        log_file=node_dir / "logs" / "server.log",
        console_file=node_dir / "logs" / "console.log",
    )
    return ClusterInfo(
        cluster_id=new_cluster_id(),
        bootstrap="127.0.0.1:19092",
        java="/usr/bin/java",
        jars=tmp_path / "jars",
        base_dir=tmp_path,
        nodes=[node],
    )


def test_state_round_trip(tmp_path: Path) -> None:
    info = _cluster(tmp_path)
    state_dir = tmp_path / "state"

    path = save_state(info, state_dir)
    loaded = load_state(state_dir)

    assert path == state_dir / "cluster.json"
    assert json.loads(path.read_text())["bootstrap"] == "127.0.0.1:19092"
    assert loaded == info
    assert loaded is not None and loaded.state_file == path


def test_load_state_without_a_file_is_none(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None


def test_damaged_state_file_is_a_setup_error(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text('{"bootstrap": 1}')
    with pytest.raises(KafkaSetupError, match="damaged"):
        load_state(tmp_path)


def test_never_signals_a_pid_that_is_not_our_broker(tmp_path: Path) -> None:
    # Our own pid stands in for a pid reused by an unrelated process.
    info = _cluster(tmp_path, pid=os.getpid())
    save_state(info, tmp_path / "state")

    assert [s.alive for s in cluster_status(info)] == [False]
    stop_cluster(info, timeout=1)  # must not SIGTERM this very test process

    assert load_state(tmp_path / "state") is None


# --- fetching the jars -----------------------------------------------------------


def _fake_tool(tmp_path: Path, name: str, body: str, interpreter: str = "/bin/sh") -> str:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!{interpreter}\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _only(monkeypatch: pytest.MonkeyPatch, tools: dict[str, str | None]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: tools.get(name))


def _pom(tmp_path: Path) -> Path:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    return pom


JAVA_17 = "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2\n"


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _only(monkeypatch, {"mvn": "/usr/bin/mvn"})
    with pytest.raises(KafkaSetupError, match="`java` was not found") as err:
        ensure_jars(_pom(tmp_path), tmp_path / "cache", None)
    assert "openjdk-17" in str(err.value)


def test_missing_mvn_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _only(monkeypatch, {"java": _fake_tool(tmp_path, "java", JAVA_17)})
    with pytest.raises(KafkaSetupError, match="`mvn` was not found") as err:
        ensure_jars(_pom(tmp_path), tmp_path / "cache", None)
    assert "maven" in str(err.value)


def test_java_older_than_17_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = _fake_tool(tmp_path, "java", "echo 'java version \"1.8.0_392\"' >&2\n")
    _only(monkeypatch, {"java": java, "mvn": "/usr/bin/mvn"})
    with pytest.raises(KafkaSetupError, match="Java 8"):
        ensure_jars(_pom(tmp_path), tmp_path / "cache", None)


# Python rather than sh, so it runs whatever PATH the test is given.
FAKE_MVN = """
import pathlib, sys
args = sys.argv[1:]
out = pathlib.Path(next(a for a in args if a.startswith("-DoutputDirectory="))
                   .split("=", 1)[1])
out.mkdir(parents=True, exist_ok=True)
(out / "kafka_2.13-4.4.0.jar").touch()
with open(pathlib.Path(sys.argv[0]).parent / "mvn.calls", "a") as calls:
    calls.write(" ".join(args) + "\\n")
"""


def test_interrupted_fetch_is_redone_then_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mvn = _fake_tool(tmp_path, "mvn", FAKE_MVN, interpreter=sys.executable)
    _only(monkeypatch, {"java": _fake_tool(tmp_path, "java", JAVA_17), "mvn": mvn})
    pom, cache = _pom(tmp_path), tmp_path / "cache"
    half_done = jars_dir(pom, cache)
    half_done.mkdir(parents=True)
    (half_done / "stale.jar").touch()  # no marker: a fetch that was cut short
    messages: list[str] = []

    first = ensure_jars(pom, cache, messages.append)
    second = ensure_jars(pom, cache, messages.append)

    assert first == second == half_done
    assert (first / COMPLETE_MARKER).is_file()
    assert not (first / "stale.jar").exists()
    calls = (tmp_path / "bin" / "mvn.calls").read_text().splitlines()
    assert len(calls) == 1
    assert "dependency:copy-dependencies" in calls[0]
    assert "-DincludeScope=runtime" in calls[0]
    assert any("Fetching" in m for m in messages)


# --- the real broker ----------------------------------------------------------------


def test_produce_and_consume_one_message(
    kafka_bootstrap: str, topic: str, group_id: str, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("kafka") is not None
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, client_id="test-devkafka")
    try:
        # A conflicting option silently turns idempotence off in kafka-python 3.0.
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] in (-1, "all")
        sent = producer.send(topic, key=b"k", value=b"hola").get(timeout=PATIENCE_S)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        received = _poll_values(consumer, want=1, timeout=PATIENCE_S)
    finally:
        consumer.close()

    assert received == [(sent.partition, b"k", b"hola")]


def _poll_values(
    consumer: KafkaConsumer, *, want: int, timeout: float
) -> list[tuple[int, bytes, bytes]]:
    got: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            got += [(r.partition, r.key, r.value) for r in records]
    return got


@pytest.mark.slow
@pytest.mark.faults
def test_three_node_cluster_survives_a_killed_broker(kafka_jars: Path, tmp_path: Path) -> None:
    with LocalKafka(3, jars=kafka_jars, base_dir=tmp_path) as kafka:
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        try:
            admin.create_topics([NewTopic("replicated", 1, 3)])
            admin.wait_for_topics(["replicated"], timeout_ms=int(PATIENCE_S * 1000))
        finally:
            admin.close()

        kafka.kill_broker(2)
        assert [s.alive for s in kafka.status()] == [True, False, True]

        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
        try:
            # acks=all with min ISR 2: still writable with one of three brokers down.
            producer.send("replicated", b"while-down").get(timeout=PATIENCE_S)
        finally:
            producer.close()

        old_pid = kafka.info.node(2).pid
        kafka.restart_broker(2)
        assert [s.alive for s in kafka.status()] == [True, True, True]
        assert kafka.info.node(2).pid != old_pid

        consumer = KafkaConsumer(
            "replicated", bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest"
        )
        try:
            assert [v for _, _, v in _poll_values(consumer, want=1, timeout=PATIENCE_S)] == [
                b"while-down"
            ]
        finally:
            consumer.close()
        pids = [n.pid for n in kafka.info.nodes]

    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
