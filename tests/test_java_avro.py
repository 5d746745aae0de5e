"""Apache Avro for Java decodes a real dump of the shared topic.

Java's Avro is the reference implementation; a consumer in another language
must find each writer schema by the fingerprint Corredor writes and decode
every layer. tests/java/AvroDump.java does that with nothing of Corredor's
but the ``schemas/*.avsc`` files, fetched with Maven like the broker jars and
run with ``java File.java`` (single-file source mode). Its JSON is compared,
message by message, with what fastavro (Corredor's own codec library) reads
from the same bytes, and with values the test knows independently: the
policy's audiences and retention, the node's key id, the ledger's subjects.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from node import config
from node.codec.registry import SchemaRegistry
from node.codec.single_object import decode
from node.config import REPO_ROOT, schemas_dir
from node.crypto.signing import key_id_for, load_public_pem
from node.demo.federation import sample_files
from node.devkafka.jars import ensure_jars, find_java
from node.errors import KafkaSetupError
from node.member.intake import ingest
from node.member.member_home import home_policy
from node.member.publish import publish
from node.store.node_store import NodeStore
from node.transport.kafka_consumer import read_all
from tests.conftest import no_kafka
from tests.factories import member_with_data
from tests.patience import PATIENCE_S

JAVA_DIR = REPO_ROOT / "tests" / "java"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def avro_jars() -> Path:
    try:
        return ensure_jars(
            JAVA_DIR / "pom.xml", config.cache_dir() / "avro", expect="avro-1.12*.jar"
        )
    except KafkaSetupError as exc:  # no java or mvn: the same rule as the broker
        no_kafka(f"Apache Avro for Java: {exc}")


def _java(jars: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [find_java(), "-cp", f"{jars}/*", str(JAVA_DIR / "AvroDump.java"), *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def _json(value: Any) -> Any:
    """fastavro's values in the Java program's JSON conventions."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _expected(data: bytes, registry: SchemaRegistry) -> dict[str, Any]:
    """One single-object layer as fastavro reads it, inner layers decoded too."""
    writer, record = decode(data, registry)
    datum = _json(record)
    if writer.name == "SignedEvent":
        datum["envelope"] = _expected(record["envelope"], registry)
    if writer.name == "Envelope" and record["body"] is not None:
        datum["body"] = _expected(record["body"], registry)
    return {"schema": writer.name, "fingerprint": data[2:10].hex(), "datum": datum}


def test_fingerprints_in_the_docs_are_javas_and_ours(avro_jars: Path) -> None:
    lines = _java(avro_jars, "fingerprints", str(schemas_dir())).stdout.split("\n")
    java = dict(line.split() for line in lines if line.strip())
    registry = SchemaRegistry.from_directory(schemas_dir())
    ours = {v.path.name: v.fingerprint.hex() for n in registry.names() for v in registry.history(n)}
    assert java == ours and len(java) >= 10
    table = (REPO_ROOT / "docs" / "consumers.md").read_text(encoding="utf-8")
    documented = dict(
        re.findall(r"^\| `([A-Za-z]+\.v\d+\.avsc)` \| `([0-9a-f]{16})` \|", table, re.M)
    )
    assert documented == java


def test_java_avro_decodes_every_message_of_a_topic_dump(
    avro_jars: Path, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 400, seed=5, weeks=4, topic=topic)
    pan.config.kafka.bootstrap = kafka_bootstrap
    pan.save()
    for path in sample_files("PAN"):  # reference data: dates, arrays, unions
        ingest(pan, path)
    result = publish(pan)
    assert result.outbox.pending == 0 and result.drain.acknowledged > 20

    messages = read_all(kafka_bootstrap, topic)
    assert len(messages) == result.drain.acknowledged
    dump = tmp_path / "topic.dump"
    dump.write_text(
        "".join(
            f"{m.partition} {m.offset} {base64.b64encode(m.value or b'').decode()}\n"
            for m in messages
        ),
        encoding="ascii",
    )
    done = _java(avro_jars, "decode", str(schemas_dir()), str(dump))
    decoded = [json.loads(line) for line in done.stdout.splitlines()]
    assert f"decoded {len(messages)} messages" in done.stderr
    assert len(decoded) == len(messages)

    registry = SchemaRegistry.from_directory(schemas_dir())
    for m, java in zip(messages, decoded, strict=True):
        assert (java["partition"], java["offset"]) == (m.partition, m.offset)
        assert java["message"] == _expected(m.value or b"", registry)

    # What the test knows without either decoder.
    policy = home_policy(pan)
    key_id = key_id_for("PAN", load_public_pem(pan.public_key_path.read_bytes()))
    envelopes = [j["message"]["datum"]["envelope"] for j in decoded]
    assert {e["schema"] for e in envelopes} == {"Envelope"}
    kinds = {e["datum"]["kind"] for e in envelopes}
    assert {"FlowStatistic", "FocalPoint", "LegislationEntry", "HealthAdvisory"} <= kinds
    today = datetime.now(UTC).date()
    with NodeStore(pan.store_path) as store:
        for kind in kinds:
            sent = {
                e["datum"]["subject"]: e["datum"]["revision"]
                for e in envelopes
                if e["datum"]["kind"] == kind
            }
            assert sent == {s: rev for s, (rev, _) in store.ledger(kind).items()}
    for e in envelopes:
        env = e["datum"]
        assert (env["producer"], env["key_id"]) == ("PAN", key_id)
        rules = policy.exchange(env["kind"])
        assert env["audiences"] == list(rules.audiences)
        produced = datetime.fromtimestamp(env["produced_at"] / 1000, UTC).date()
        assert abs((produced - today).days) <= 1
        assert env["retain_until"] == (produced + timedelta(days=rules.retention_days)).isoformat()
        assert env["body"]["schema"] == env["kind"]
    focal = [e["datum"]["body"]["datum"] for e in envelopes if e["datum"]["kind"] == "FocalPoint"]
    assert focal and all(f["country"] == "PAN" for f in focal)
