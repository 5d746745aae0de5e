"""`corredor kafka tool`: Kafka's own CLI tools with a home's identity, on real brokers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.aggregator.setup import init_aggregator
from node.config import REPO_ROOT, Home, KafkaSettings
from node.devkafka import ClusterInfo
from node.devkafka.manage import home_settings
from node.devkafka.tools import TOOLS, client_properties, main_class
from node.errors import KafkaSetupError
from node.member.member_home import init_member
from node.member.publish import publish
from node.transport.credentials import Redacted
from tests.conftest import secure_local_kafka
from tests.factories import member_with_data
from tests.patience import PATIENCE_S


def _tool(home: Home, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`corredor --home H kafka tool ARGS...` as its own process, its temporary
    files under ``tmp`` (so a test can see they are gone)."""
    tmp.mkdir(exist_ok=True)
    try:
        return subprocess.run(
            [sys.executable, "-m", "node.cli", "--home", str(home.path), "kafka", "tool", *args],
            cwd=REPO_ROOT,
            env={**os.environ, "TMPDIR": str(tmp)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PATIENCE_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{args[0]} still ran after {PATIENCE_S:.0f} s: {exc.stdout!r} {exc.stderr!r}")


def test_every_tool_names_a_class_in_the_cached_kafka_tools_jar(kafka_jars: Path) -> None:
    """The table is checked against the jars themselves, not against itself."""
    import zipfile

    classes: set[str] = set()
    for jar in kafka_jars.glob("kafka-tools-*.jar"):
        with zipfile.ZipFile(jar) as z:
            classes |= {n.removesuffix(".class").replace("/", ".") for n in z.namelist()}
    assert classes, "the cached jars hold no kafka-tools jar"
    missing = [cls for cls in TOOLS.values() if cls not in classes]
    assert missing == []
    assert main_class("topics") == main_class("kafka-topics.sh") == TOOLS["kafka-topics"]
    with pytest.raises(KafkaSetupError, match="known tools"):
        main_class("kafka-server-start")


def test_client_properties_carry_the_identity_and_escape_the_password() -> None:
    security = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "PAN",
        "sasl_plain_password": Redacted('pa"ss\\word'),
        "ssl_cafile": "/etc/ca.pem",
        "ssl_check_hostname": True,
    }
    props = client_properties(security)
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="PAN" password="pa\\"ss\\\\word";'
    )
    assert (props["ssl.truststore.type"], props["ssl.truststore.location"]) == (
        "PEM",
        "/etc/ca.pem",
    )
    assert client_properties({}) == {}


def test_topics_listed_and_described_with_kafkas_own_tool(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    topic = f"tools-{os.getpid()}-{time.monotonic_ns()}"
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 200, topic=topic)
    pan.config.kafka.bootstrap = kafka_bootstrap
    pan.save()
    published = publish(pan)  # creates the shared topic the way a node does
    assert published.drain.acknowledged > 0
    tmp = tmp_path / "tmp"
    n = min(5, published.drain.acknowledged)

    listed = _tool(pan, tmp, "kafka-topics", "--list")
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout.split()

    described = _tool(pan, tmp, "topics", "--describe", "--topic", topic)
    assert described.returncode == 0, described.stderr
    assert f"Topic: {topic}" in described.stdout
    assert "PartitionCount: 3" in described.stdout
    assert "retention.ms=" in described.stdout  # the shared topic's own retention

    consumed = _tool(
        pan,
        tmp,
        "kafka-console-consumer",
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        str(n),
        "--formatter-property",
        "print.key=true",
        "--formatter-property",
        "print.value=false",
    )
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == ["PAN"] * n  # every record is keyed by its country

    unknown = _tool(pan, tmp, "kafka-server-start")
    assert unknown.returncode != 0 and "known tools" in unknown.stderr
    assert list(tmp.iterdir()) == []  # nothing left behind


@pytest.fixture(scope="module")
def secure_cluster(
    kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterInfo]:
    with secure_local_kafka(kafka_jars, tmp_path_factory.mktemp("tools-secure"), ("PAN",)) as info:
        yield info


def _connected(path: Path, info: ClusterInfo, user: str) -> Home:
    home = init_member(path, "PAN") if user == "PAN" else init_aggregator(path)
    home.config.kafka = KafkaSettings.model_validate(
        {**home.config.kafka.model_dump(), **home_settings(info, user)}
    )
    home.save()
    return home


def test_acls_listed_on_the_secure_broker_with_the_homes_credentials(
    secure_cluster: ClusterInfo, tmp_path: Path
) -> None:
    info = secure_cluster
    assert info.security is not None
    passwords = [info.security.password(u) for u in info.security.users]
    admin = _connected(tmp_path / "admin", info, "admin")
    tmp = tmp_path / "tmp"

    acls = _tool(admin, tmp, "kafka-acls", "--list")
    assert acls.returncode == 0, acls.stderr
    assert "User:PAN" in acls.stdout and "User:secretariat" in acls.stdout
    assert "name=corredor.events" in acls.stdout
    assert "operation=DESCRIBE_CONFIGS" in acls.stdout  # what doctor's retention check uses

    # A member's own credentials are what the tool uses: it may not list ACLs.
    pan = _connected(tmp_path / "pan", info, "PAN")
    refused = _tool(pan, tmp, "kafka-acls", "--list")
    assert refused.returncode != 0
    assert "Authorization" in refused.stdout + refused.stderr
    # ...but it sees the topics it may describe.
    topics = _tool(pan, tmp, "kafka-topics", "--list")
    assert topics.returncode == 0, topics.stderr
    assert "corredor.events" in topics.stdout.split()

    for done in (acls, refused, topics):
        assert [p for p in passwords if p in done.stdout + done.stderr] == []
    assert list(tmp.iterdir()) == []


def test_the_credentials_file_is_private_while_the_tool_runs(
    secure_cluster: ClusterInfo, tmp_path: Path
) -> None:
    info = secure_cluster
    assert info.security is not None
    ts = _connected(tmp_path / "ts", info, "secretariat")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # A consumer that waits for messages that never come, then exits.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "--home",
            str(ts.path),
            "kafka",
            "tool",
            "kafka-console-consumer",
            "--topic",
            "corredor.events",
            "--group",
            "corredor-aggregator.tools-test",
            "--timeout-ms",
            "15000",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + PATIENCE_S
        found: list[Path] = []
        while not found and proc.poll() is None and time.monotonic() < deadline:
            found = list(tmp.glob("corredor-kafka-tool-*/client.properties"))
            time.sleep(0.1)
        assert found, "the tool never wrote its client settings"
        settings = found[0]
        assert stat.S_IMODE(settings.stat().st_mode) == 0o600
        assert stat.S_IMODE(settings.parent.stat().st_mode) == 0o700
        text = settings.read_text(encoding="ascii")
        assert 'username="secretariat"' in text and "security.protocol=SASL_SSL" in text
        assert info.security.password("secretariat") in text
        out, err = proc.communicate(timeout=PATIENCE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert info.security.password("secretariat") not in out + err
    assert "Processed a total of 0 messages" in err
    assert list(tmp.iterdir()) == []  # removed once the tool exited


def test_the_pom_brings_kafka_tools_and_a_changed_pom_is_fetched_anew(tmp_path: Path) -> None:
    """The jar cache is keyed by the pom's content: the pom that added
    kafka-tools cannot be served the older cached set that lacks it."""
    from node.config import kafka_pom
    from node.devkafka.jars import jars_dir

    text = kafka_pom().read_text(encoding="utf-8")
    assert "<artifactId>kafka-tools</artifactId>" in text
    start = text.index(
        "<dependency>\n      <groupId>org.apache.kafka</groupId>\n      <artifactId>kafka-tools"
    )
    end = text.index("</dependency>", start) + len("</dependency>")
    older = tmp_path / "pom.xml"
    older.write_text(text[:start] + text[end:], encoding="utf-8")
    assert "kafka-tools" not in older.read_text(encoding="utf-8").split("-->")[-1]
    assert jars_dir(older, tmp_path) != jars_dir(kafka_pom(), tmp_path)
