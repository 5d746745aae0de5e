"""Equivocation: a Secretariat that shows two histories is caught (real broker).

Every manifest (version 2) names the hash of the one before it, the history
stays on the compacted control topic one key per serial, and every node keeps
the heads it accepted. A second manifest with a serial already seen, or a next
serial that does not extend the last head, raises an alarm in `federation
sync`, the logs and `doctor`, and the node keeps its last good manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli import main
from node.config import Home
from node.federation import drafts, trust
from node.member.member_home import init_member
from tests.factories import aggregator_for


def cli(home: Home, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home.path), *args])


def _setup(tmp_path: Path, bootstrap: str, topic: str) -> tuple[Home, list[Home]]:
    members = []
    for country in ("CRI", "GTM", "PAN"):
        home = init_member(tmp_path / country.lower(), country, bootstrap=bootstrap, topic=topic)
        home.config.kafka.control_topic = f"{topic}.control"
        home.save()
        members.append(home)
    agg = aggregator_for(tmp_path, members, topic=topic)
    agg.config.kafka.bootstrap = bootstrap
    agg.config.kafka.control_topic = f"{topic}.control"
    agg.save()
    return agg, members


def _served_serial(home: Home) -> tuple[int, str]:
    signed = json.loads(home.manifest_path.read_text(encoding="utf-8"))
    payload = json.loads(signed["payload"])
    return payload["serial"], hashlib.sha256(signed["payload"].encode()).hexdigest()


def test_two_manifests_with_one_serial_raise_an_alarm_and_the_good_one_stays(
    tmp_path: Path, kafka_bootstrap: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    agg, members = _setup(tmp_path, kafka_bootstrap, topic)
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    for m in members:
        assert cli(m, "federation", "sync").exit_code == 0
    backup = tmp_path / "manifest-before.json"
    shutil.copy(agg.manifest_path, backup)
    # Serial N, seen by every node.
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    good = _served_serial(agg)
    for m in members:
        assert cli(m, "federation", "sync").exit_code == 0
        assert _served_serial(m) == good
    # The Secretariat rewinds its home and signs another serial N.
    shutil.copy(backup, agg.manifest_path)
    assert cli(agg, "federation", "revoke", "PAN").exit_code == 0
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    other = _served_serial(agg)
    assert other[0] == good[0] and other[1] != good[1]

    caplog.set_level(logging.ERROR, logger="corredor.trust")
    for m in members:
        result = cli(m, "federation", "sync")
        assert result.exit_code != 0, result.output
        assert f"two different manifests with serial {good[0]}" in result.output, result.output
        assert _served_serial(m) == good  # the last good manifest stays
        pan = trust.current_manifest(m).member("PAN")
        assert pan is not None and pan.signing_keys[0].revoked_at is None
        doctor = cli(m, "doctor", "--format", "json")
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["federation-alarms"]["status"] == "problem"
        assert "equivocation" in checks["federation-alarms"]["detail"]
    assert any("equivocation" in r.getMessage() for r in caplog.records)

    # Building on the other branch does not extend the head the nodes hold.
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    result = cli(members[0], "federation", "sync")
    assert result.exit_code != 0
    assert _served_serial(members[0]) == good


def test_a_node_that_missed_serials_walks_the_chain(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    """Positive control: an honest history accepted after missed serials."""
    agg, members = _setup(tmp_path, kafka_bootstrap, topic)
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    late = members[0]
    assert cli(late, "federation", "sync").exit_code == 0
    first = _served_serial(late)[0]
    for _ in range(3):
        assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    result = cli(late, "federation", "sync")
    assert result.exit_code == 0, result.output
    assert _served_serial(late) == _served_serial(agg)
    assert _served_serial(late)[0] == first + 3
    heads = json.loads((late.path / "trust" / "manifest-heads.json").read_text(encoding="utf-8"))
    # Every serial from the first the Secretariat signed: the chain, unbroken.
    assert sorted(int(s) for s in heads) == list(range(1, first + 4))


def test_a_split_view_is_caught_through_the_heads_nodes_sign(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    """The Secretariat hands GTM one serial N+1 (by file) and puts another on
    the topic for the rest: CRI sees GTM's signed manifest head differ."""
    agg, members = _setup(tmp_path, kafka_bootstrap, topic)
    cri, gtm, _ = members
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    for m in members:
        assert cli(m, "federation", "sync").exit_code == 0
    backup = tmp_path / "before.json"
    shutil.copy(agg.manifest_path, backup)
    assert cli(agg, "federation", "sign").exit_code == 0
    for_gtm = tmp_path / "for-gtm.json"
    shutil.copy(agg.manifest_path, for_gtm)
    shutil.copy(backup, agg.manifest_path)
    assert cli(agg, "federation", "revoke", "PAN").exit_code == 0
    assert cli(agg, "federation", "sign", "--publish").exit_code == 0
    assert cli(gtm, "federation", "import", str(for_gtm)).exit_code == 0
    assert cli(cri, "federation", "sync").exit_code == 0
    assert _served_serial(gtm)[0] == _served_serial(cri)[0]
    assert _served_serial(gtm)[1] != _served_serial(cri)[1]
    assert cli(gtm, "audit", "publish-head").exit_code == 0
    assert cli(cri, "federation", "sync").exit_code == 0
    doctor = cli(cri, "doctor", "--format", "json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["federation-alarms"]["status"] == "problem"
    assert "GTM holds manifest serial" in checks["federation-alarms"]["detail"]


def test_a_manifest_that_skips_serials_is_not_taken(tmp_path: Path) -> None:
    """Without the serials between, a newer manifest cannot be checked against
    the head: refused, and the node stays where it was."""
    pan = init_member(tmp_path / "pan", "PAN")
    agg = aggregator_for(tmp_path, [pan])
    assert cli(pan, "federation", "import", str(agg.manifest_path)).exit_code == 0
    held = _served_serial(pan)
    for _ in range(2):
        assert cli(agg, "federation", "sign").exit_code == 0
    result = cli(pan, "federation", "import", str(agg.manifest_path))
    assert result.exit_code != 0 and "does not follow serial" in result.output
    assert _served_serial(pan) == held
    for serial in (held[0] + 1, held[0] + 2):
        path = drafts.history_path(agg, serial)
        assert cli(pan, "federation", "import", str(path)).exit_code == 0
    assert _served_serial(pan) == _served_serial(agg)
