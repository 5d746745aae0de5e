"""`corredor doctor` on a healthy federation, and on each condition it checks broken."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kafka import KafkaProducer

from node.aggregator.run import aggregate_once
from node.cli import main
from node.config import Home, KafkaSettings, load_home, policies_dir
from node.devkafka.manage import home_settings
from node.devkafka.state import ClusterInfo
from node.federation import drafts, trust
from node.federation.control import publish_manifest, sync_manifest
from node.member.publish import publish
from node.operator.doctor import DoctorReport, diagnose
from tests.conftest import secure_local_kafka
from tests.factories import aggregator_for, member_with_data


def _status(report: DoctorReport) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report.as_dict()["checks"]}


def _problem(report: DoctorReport, name: str) -> str:
    found = [c.detail for c in report.problems if c.name == name]
    assert found, report.as_dict()
    return found[0]


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def federation(tmp_path: Path, kafka_bootstrap: str, topic: str) -> tuple[Home, Home]:
    """PAN with data published and the manifest synced; the aggregator caught up."""
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 300, topic=topic)
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
    return pan, agg


def test_a_healthy_member_and_aggregator(federation: tuple[Home, Home]) -> None:
    pan, agg = federation
    report = diagnose(pan)
    assert report.healthy, report.as_dict()
    assert set(_status(report)) == {
        "broker",
        "credentials",
        "topic",
        "retention",
        "manifest",
        "membership",
        "policy",
        "outbox",
        "store",
        "signing_key",
        "files",
    }
    assert report.figures["outbox_pending"] == 0
    assert report.figures["outbox_acknowledged"] > 0
    assert (
        "same as the control topic" in next(c for c in report.checks if c.name == "manifest").detail
    )
    report = diagnose(agg)
    assert report.healthy, report.as_dict()
    assert report.figures["consumer_lag"] == 0
    assert report.figures["topic_end"] > 0
    assert report.figures["quarantined"] == 0 and report.figures["dead_lettered"] == 0

    result = CliRunner().invoke(main, ["--home", str(pan.path), "doctor", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["healthy"] is True


def test_broker_unreachable(federation: tuple[Home, Home]) -> None:
    pan, _ = federation
    report = diagnose(pan, bootstrap=_closed_port())
    assert "no broker answers" in _problem(report, "broker")
    assert _status(report)["credentials"] == "skipped"
    manifest = next(c for c in report.checks if c.name == "manifest")
    assert manifest.ok and "not compared with the control topic" in manifest.detail
    result = CliRunner().invoke(
        main, ["--home", str(pan.path), "doctor", "--bootstrap", _closed_port()]
    )
    assert result.exit_code == 1
    assert "problem: broker: no broker answers" in result.output


def test_shared_topic_missing(federation: tuple[Home, Home]) -> None:
    pan, _ = federation
    pan.config.kafka.topic = f"{pan.config.kafka.topic}-never-created"
    pan.save()
    report = diagnose(pan)
    assert "does not exist" in _problem(report, "topic")
    assert _status(report)["credentials"] == "ok"


def test_manifest_missing_forged_and_stale(federation: tuple[Home, Home]) -> None:
    pan, agg = federation
    signed = pan.manifest_path.read_text()

    pan.manifest_path.unlink()
    assert "federation sync" in _problem(diagnose(pan), "manifest")

    forged = json.loads(signed)
    forged["payload"] = forged["payload"].replace('"serial":', '"serial": 9', 1)
    pan.manifest_path.write_text(json.dumps(forged))
    assert "does not verify" in _problem(diagnose(pan), "manifest")

    pan.manifest_path.write_text(signed)
    assert diagnose(pan).healthy
    drafts.sign_draft(agg)  # a newer serial, published by the Secretariat...
    publish_manifest(agg)
    detail = _problem(diagnose(pan), "manifest")  # ...that PAN has not synced
    assert "on the control topic; run `corredor federation sync`" in detail
    sync_manifest(pan)
    assert diagnose(pan).healthy

    drafts.sign_draft(agg)  # signed but not published: members cannot see it
    assert "federation sign --publish" in _problem(diagnose(agg), "manifest")


def test_member_key_not_in_the_manifest(federation: tuple[Home, Home]) -> None:
    pan, _ = federation
    trust.rotate_signing_key(pan)  # the new key is not enrolled yet
    assert "is not in the manifest" in _problem(diagnose(pan), "manifest")


def test_policy_below_the_regional_floor(federation: tuple[Home, Home], tmp_path: Path) -> None:
    pan, _ = federation
    weak = yaml.safe_load((policies_dir() / "PAN.yaml").read_text())
    weak["exchanges"]["flow_statistics"]["min_cell_size"] = 1
    path = tmp_path / "weak.yaml"
    path.write_text(yaml.safe_dump(weak))
    pan.config.policy = str(path)
    pan.save()
    detail = _problem(diagnose(pan), "policy")
    assert "min_cell_size" in detail or "floor" in detail


def test_outbox_too_old_and_aggregator_lag(federation: tuple[Home, Home], tmp_path: Path) -> None:
    pan, agg = federation
    assert diagnose(pan, max_outbox_age_s=0).healthy  # nothing waiting: no age
    more, _rows, _ = member_with_data(tmp_path / "more", "PAN", 200, seed=9)
    # A member that staged but never reached Kafka:
    more.config.kafka = KafkaSettings.model_validate(pan.config.kafka.model_dump())
    more.save()
    report = diagnose(more, max_outbox_age_s=0)
    assert "events waiting, the oldest for" in _problem(report, "outbox")
    assert report.figures["outbox_pending"] > 0

    producer = KafkaProducer(bootstrap_servers=agg.bootstrap)
    for _ in range(3):
        producer.send(agg.config.kafka.topic, key=b"PAN", value=b"garbage")
    producer.flush()
    producer.close()
    detail = _problem(diagnose(agg, max_lag=2), "lag")
    assert "3 messages behind" in detail
    aggregate_once(agg)
    report = diagnose(agg, max_lag=0)
    assert report.healthy, report.as_dict()
    assert report.figures["quarantined"] == 3
    assert report.figures["dead_lettered"] == 3


# -- a secure broker: the credentials check ----------------------------------------


@pytest.fixture(scope="module")
def secure_cluster(
    kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterInfo]:
    with secure_local_kafka(kafka_jars, tmp_path_factory.mktemp("doctor-secure")) as info:
        yield info


def test_credentials_on_a_secure_broker(secure_cluster: ClusterInfo, tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 100)
    pan.config.kafka = KafkaSettings.model_validate(
        {
            **pan.config.kafka.model_dump(),
            **home_settings(secure_cluster, "PAN"),
            "topic": "corredor.events",
        }
    )
    pan.save()
    pan = load_home(pan.path)
    statuses = _status(diagnose(pan))
    assert statuses["credentials"] == "ok" and statuses["topic"] == "ok"

    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    pan.config.kafka.password_file = str(wrong)
    pan.save()
    report = diagnose(load_home(pan.path), timeout_ms=4000)
    detail = _problem(report, "credentials")
    assert "SASL_SSL as PAN was refused" in detail and "not-the-password" not in detail
    assert _status(report)["broker"] == "ok"
    assert _status(report)["topic"] == "skipped"
