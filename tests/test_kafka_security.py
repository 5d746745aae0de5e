"""On a real broker with authentication on: SASL_SSL (SCRAM-SHA-512), TLS, ACLs.

The session fixture starts its own secure cluster (``kafka up --secure`` in
library form). Each refusal is paired with the same call succeeding for the
principal that is allowed, so a broken set-up cannot pass as a refusal.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from node.aggregator.run import aggregate_once
from node.config import Home, KafkaSettings
from node.devkafka import ClusterInfo, LocalKafka
from node.devkafka.manage import home_settings
from node.errors import TransportError
from node.member import publish as member_publish
from node.operator.doctor import diagnose
from node.operator.status import home_status
from node.store import audit_check
from node.transport.credentials import MASK
from node.transport.kafka_admin import ensure_topic
from node.transport.kafka_consumer import KafkaSource
from tests.conftest import secure_local_kafka
from tests.factories import aggregator_for, expected_picture, member_with_data, picture_totals
from tests.patience import PATIENCE_S

# kafka-python 3.0.12 leaves the TLS sockets of a client the broker refused
# unclosed; they surface when collected. Collected here, inside this module's
# filter, so they cannot fail an unrelated test later.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <ssl\.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)

MEMBERS = ("PAN", "GTM")
#: Short client timeouts: a refusal should fail fast, not after 30 s.
FAST = {"request_timeout_ms": 3000, "bootstrap_timeout_ms": 3000}


@pytest.fixture(scope="session")
def secure_kafka(
    kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterInfo]:
    with secure_local_kafka(kafka_jars, tmp_path_factory.mktemp("secure-kafka"), MEMBERS) as info:
        yield info


@pytest.fixture(autouse=True)
def _collect_refused_sockets() -> Iterator[None]:
    yield
    gc.collect()


def _config(info: ClusterInfo, user: str | None = None, **extra: Any) -> dict[str, Any]:
    config = info.client_config(user)
    config.update(FAST)
    config.update(extra)
    return config


def _admin_works(config: dict[str, Any]) -> list[str]:
    admin = KafkaAdminClient(**config)
    try:
        return list(admin.list_topics())
    finally:
        admin.close()


def _all_passwords(info: ClusterInfo) -> list[str]:
    sec = info.security
    assert sec is not None
    secrets = [sec.password(u) for u in sec.users]
    secrets += [p.read_text().strip() for p in sec.credentials_dir.glob("*.password")]
    assert all(len(s) >= 16 for s in secrets)
    return secrets


def test_credentials_are_private_files(secure_kafka: ClusterInfo) -> None:
    sec = secure_kafka.security
    assert sec is not None
    for user in sec.users:
        path = sec.password_file(user)
        assert path.stat().st_mode & 0o777 == 0o600
    assert sec.keystore.stat().st_mode & 0o777 == 0o600
    for node in secure_kafka.nodes:
        assert node.props_file.stat().st_mode & 0o777 == 0o600
    # Nothing secret in the recorded cluster state, nor in the broker's own logs
    # (it prints its configuration at start-up; JAAS lines must show [hidden]).
    state = secure_kafka.model_dump_json()
    logs = "".join(
        p.read_text(errors="replace")
        for node in secure_kafka.nodes
        for p in node.log_file.parent.glob("*.log*")
    )
    assert "KafkaConfig values" in logs
    assert [p for p in _all_passwords(secure_kafka) if p in state or p in logs] == []


def test_wrong_password_is_refused(secure_kafka: ClusterInfo) -> None:
    right = _config(secure_kafka, "PAN")
    assert "corredor.events" in _admin_works(right)
    wrong = dict(right, sasl_plain_password="not-the-password")
    with pytest.raises(KafkaError):
        _admin_works(wrong)
    # The broker saw the attempt and refused the credentials (not a timeout).
    log = secure_kafka.nodes[0].log_file.read_text(encoding="utf-8", errors="replace")
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log
    # Through Corredor's transport, the error names neither password.
    security = {k: v for k, v in wrong.items() if k != "bootstrap_servers"}
    with pytest.raises(TransportError) as caught:
        ensure_topic(secure_kafka.bootstrap, "corredor.events", security=security)
    message = str(caught.value)
    assert "SASL_SSL as PAN" in message and "password" in message  # says who and what to check
    assert "not-the-password" not in message
    assert [p for p in _all_passwords(secure_kafka) if p in message] == []


def test_unknown_user_is_refused(secure_kafka: ClusterInfo) -> None:
    config = _config(secure_kafka, "PAN", sasl_plain_username="NIC")  # not a member here
    with pytest.raises(KafkaError):
        _admin_works(config)


def test_unauthenticated_client_cannot_connect(secure_kafka: ClusterInfo) -> None:
    node = secure_kafka.nodes[0]
    assert secure_kafka.security is not None
    attempts = {
        "plaintext on the client port": {"bootstrap_servers": secure_kafka.bootstrap},
        "TLS without SASL": {
            "bootstrap_servers": secure_kafka.bootstrap,
            "security_protocol": "SSL",
            "ssl_cafile": str(secure_kafka.security.ca_file),
        },
        "plaintext on the controller port": {
            "bootstrap_servers": f"127.0.0.1:{node.controller_port}"
        },
    }
    for what, config in attempts.items():
        with pytest.raises(KafkaError):
            _admin_works({**config, **FAST})
            pytest.fail(f"{what} was let in")
    # The same call with credentials succeeds.
    assert "corredor.events" in _admin_works(_config(secure_kafka))


def test_tls_verifies_the_broker_certificate(secure_kafka: ClusterInfo, tmp_path: Path) -> None:
    from node.devkafka.pki import init_ca

    stranger = init_ca(tmp_path / "other-ca")  # a CA that did not sign the broker
    with pytest.raises(KafkaError):
        _admin_works(_config(secure_kafka, "PAN", ssl_cafile=str(stranger)))


def test_country_writes_the_shared_topic_and_only_the_secretariat_reads_it(
    secure_kafka: ClusterInfo,
) -> None:
    topic = "corredor.events"
    marker = f"ping-{uuid.uuid4().hex}".encode()
    producer = KafkaProducer(**_config(secure_kafka, "PAN"))
    try:
        meta = producer.send(topic, key=b"PAN", value=marker).get(timeout=PATIENCE_S)
    finally:
        producer.close()
    tp = TopicPartition(topic, meta.partition)

    def read(user: str) -> list[bytes]:
        consumer = KafkaConsumer(**_config(secure_kafka, user, group_id=None))
        try:
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            # Until a record comes (or a refusal is raised): one poll may
            # return empty on a busy machine.
            deadline = time.monotonic() + PATIENCE_S
            while time.monotonic() < deadline:
                polled = consumer.poll(timeout_ms=1000, max_records=10)
                values = [r.value for records in polled.values() for r in records]
                if values:
                    return values
            return []
        finally:
            consumer.close()

    assert marker in read("secretariat")
    for country in MEMBERS:
        with pytest.raises(TopicAuthorizationFailedError):
            read(country)


def test_country_cannot_consume_the_shared_topic_with_its_own_group(
    secure_kafka: ClusterInfo,
) -> None:
    security = {k: v for k, v in _config(secure_kafka, "GTM").items() if k != "bootstrap_servers"}
    source = KafkaSource(
        secure_kafka.bootstrap,
        "corredor.events",
        "GTM.snoop",
        security=security,
        assignment_timeout_s=PATIENCE_S,
    )
    try:
        # It may join its group and see the partitions (DESCRIBE lets it produce);
        # fetching records is what the ACLs refuse.
        with pytest.raises(TransportError, match=r"not authorized|TopicAuthorizationFailed"):
            source.open()
            for _ in range(20):
                source.poll_batch(500, 10)
    finally:
        source.close()


def test_country_may_not_write_the_picture_nor_use_another_countrys_group(
    secure_kafka: ClusterInfo,
) -> None:
    producer = KafkaProducer(**_config(secure_kafka, "PAN", max_block_ms=10_000))
    try:
        with pytest.raises(KafkaError):
            producer.send("corredor.picture", value=b"forged picture").get(timeout=15)
    finally:
        producer.close()
    # Reading the control topic is allowed, within its own group prefix only.
    for group, allowed in (("PAN.control", True), ("GTM.control", False)):
        consumer = KafkaConsumer("corredor.control", **_config(secure_kafka, "PAN", group_id=group))
        try:
            deadline = time.monotonic() + PATIENCE_S
            if allowed:
                while not consumer.assignment() and time.monotonic() < deadline:
                    consumer.poll(timeout_ms=500)
                assert consumer.assignment()
            else:
                with pytest.raises(KafkaError):
                    while time.monotonic() < deadline:
                        consumer.poll(timeout_ms=500)
        finally:
            consumer.close()


def _connect(home: Home, info: ClusterInfo, user: str, **override: str | None) -> None:
    settings = {**home.config.kafka.model_dump(), **home_settings(info, user), **override}
    home.config.kafka = KafkaSettings.model_validate(settings)
    home.save()


def test_the_slice_over_tls_and_scram_without_leaking_a_secret(
    kafka_jars: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Members publish as themselves, the Secretariat aggregates as itself; the
    picture is exact, and no password shows up in any log line, even at DEBUG."""
    with LocalKafka(
        1, jars=kafka_jars, base_dir=tmp_path / "kafka", secure=True, members=MEMBERS
    ) as kafka:
        info = kafka.info
        members = []
        for i, country in enumerate(MEMBERS):
            home, rows, _ = member_with_data(
                tmp_path,
                country,
                1500,
                seed=40 + i,
                weeks=3,
                topic="corredor.events",
                detail_only=True,
            )
            members.append((home, rows))
        agg = aggregator_for(tmp_path, [h for h, _ in members], topic="corredor.events")
        pan, gtm = members[0][0], members[1][0]
        _connect(pan, info, "PAN")
        # GTM takes its password from an environment variable instead of a file.
        assert info.security is not None
        monkeypatch.setenv("GTM_KAFKA_PASSWORD", info.security.password("GTM"))
        _connect(gtm, info, "GTM", password_file=None, password_env="GTM_KAFKA_PASSWORD")
        _connect(agg, info, "secretariat")
        secrets = _all_passwords(info)
        for home in (pan, gtm, agg):
            text = home.config_file.read_text()
            assert [s for s in secrets if s in text] == []
            assert "SASL_SSL" in text

        caplog.set_level(logging.DEBUG)
        # The CLI quiets the "kafka" logger (tests in this session run it).
        caplog.set_level(logging.DEBUG, logger="kafka")
        for home, _ in members:
            result = member_publish.publish(home)
            assert result.drain.acknowledged == result.plan.published_cells > 0
        # A member's garbage goes, with ACLs on, to the Secretariat's dead letters.
        producer = KafkaProducer(**_config(info, "PAN"))
        producer.send("corredor.events", key=b"PAN", value=b"not an event").get(timeout=PATIENCE_S)
        producer.close()
        stats = aggregate_once(agg)
        assert stats.rejected == {"undecodable": 1}
        assert stats.applied == stats.messages - 1 > 0
        assert home_status(agg)["dead_lettered"] == 1

        assert picture_totals(agg) == expected_picture((h.country, rows) for h, rows in members)
        for home in (pan, gtm, agg):
            assert audit_check.verify(home.store_path).ok

        # The Secretariat may read the shared topic's settings: doctor checks that
        # its retention serves a rebuild. A member may not, and doctor says so.
        checks = {c.name: c for c in diagnose(agg).checks}
        assert checks["retention"].ok is True, checks["retention"].detail
        checks = {c.name: c for c in diagnose(pan).checks}
        assert checks["retention"].ok is None, checks["retention"].detail
        assert "DESCRIBE_CONFIGS" in checks["retention"].detail

        # A member's credentials cannot aggregate: the shared topic is not theirs.
        _connect(agg, info, "PAN")
        with pytest.raises(TransportError):
            aggregate_once(agg)

    logged = caplog.text
    # The check can see what it looks for: kafka-python dumped its settings.
    assert "sasl_plain_password" in logged and MASK in logged
    assert [s for s in secrets if s in logged] == []


@pytest.mark.slow
def test_three_secure_brokers_replicate_over_sasl_ssl(kafka_jars: Path, tmp_path: Path) -> None:
    """Inter-broker traffic (replication) and the quorum authenticate too: with
    acks=all and min ISR 2 a record is acknowledged only once followers fetched
    it over SASL_SSL, and it survives the loss of a broker."""
    with LocalKafka(3, jars=kafka_jars, base_dir=tmp_path, secure=True, members=["PAN"]) as kafka:
        info = kafka.info
        producer = KafkaProducer(**_config(info, "PAN"))
        try:
            meta = producer.send("corredor.events", key=b"PAN", value=b"replicated").get(30)
        finally:
            producer.close()
        admin = KafkaAdminClient(**_config(info))
        try:
            (described,) = admin.describe_topics(["corredor.events"])
        finally:
            admin.close()
        partition = next(
            p for p in described["partitions"] if p["partition_index"] == meta.partition
        )
        assert len(partition["isr_nodes"]) == 3
        kafka.kill_broker(partition["leader_id"])
        tp = TopicPartition("corredor.events", meta.partition)
        consumer = KafkaConsumer(**_config(info, "secretariat", group_id=None))
        try:
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            values: list[bytes] = []
            deadline = time.monotonic() + PATIENCE_S
            while time.monotonic() < deadline:
                polled = consumer.poll(timeout_ms=1000)
                values += [r.value for records in polled.values() for r in records]
                if values:
                    break
        finally:
            consumer.close()
        assert values[:1] == [b"replicated"]


def test_cli_secure_up_connect_down_print_paths_never_passwords(
    kafka_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from node import config
    from node.cli import main

    # A private cache dir sharing the fetched jars: its own state, no second fetch.
    monkeypatch.setenv("CORREDOR_CACHE_DIR", str(tmp_path / "cache"))
    config.kafka_dir().mkdir(parents=True)
    (config.kafka_dir() / kafka_jars.name).symlink_to(kafka_jars)
    runner = CliRunner()
    up = runner.invoke(main, ["kafka", "up", "--secure", "--member", "pan", "--member", "GTM"])
    try:
        assert up.exit_code == 0, up.output
        bootstrap = up.stdout.strip().splitlines()[-1]
        assert bootstrap.startswith("127.0.0.1:")
        info = ClusterInfo.model_validate_json((config.kafka_dir() / "cluster.json").read_text())
        assert info.security is not None and info.security.members == ["GTM", "PAN"]
        assert str(info.security.credentials_dir) in up.output
        assert str(info.security.ca_file) in up.output
        secrets = _all_passwords(info)
        # A second `up` asking for a plain cluster is refused, not silently reused.
        plain = runner.invoke(main, ["kafka", "up"])
        assert plain.exit_code == 1 and "secure" in plain.output

        pan, _rows, _ = member_with_data(tmp_path, "PAN", 400, topic="corredor.events")
        connect = runner.invoke(main, ["--home", str(pan.path), "kafka", "connect"])
        assert connect.exit_code == 0, connect.output
        assert "as PAN (SASL_SSL)" in connect.output
        publish = runner.invoke(main, ["-v", "--home", str(pan.path), "publish"])
        assert publish.exit_code == 0, publish.output
        status = runner.invoke(main, ["kafka", "status"])
        assert status.exit_code == 0, status.output
        outputs = [up.output, plain.output, connect.output, publish.output, status.output]
        outputs.append(pan.config_file.read_text())
        assert [s for s in secrets for text in outputs if s in text] == []
    finally:
        down = runner.invoke(main, ["kafka", "down"])
    assert down.exit_code == 0, down.output
    assert not (config.kafka_dir() / "cluster" / "security").exists()
