"""A store that lost its history is refused, and revisions never go backwards
(issue 14 item 3); raw-data files are private whatever the umask (item 4).

The federation tests run on the real broker: PAN publishes, the aggregator
applies and publishes the picture topic, then PAN's store is emptied or
restored from an older backup. Every command refuses it until an explicit
recovery, after which PAN's revisions continue above the aggregator's and the
picture is whole again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.aggregator.run import aggregate_once
from node.cli import main
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.federation.control import publish_manifest, sync_manifest
from node.home import open_home
from node.member.intake import ingest
from node.member.publish import publish
from node.operator.doctor import DoctorReport, diagnose
from node.store.node_schema import SCHEMA_VERSION
from node.store.node_store import NodeStore
from node.transport.memory import MemoryTopic
from tests.factories import aggregator_for, member_with_data, picture_totals, publish_flows_to


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _check(report: DoctorReport, name: str) -> tuple[str, str]:
    found = [c for c in report.as_dict()["checks"] if c["name"] == name]
    assert found, report.as_dict()
    return found[0]["status"], found[0]["detail"]


def _cli(home: Home, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home.path), *args])


def _sent_revisions(db: Path) -> dict[str, int]:
    """subject -> highest revision in a store's audit log, read with sqlite3."""
    with closing(sqlite3.connect(db)) as conn, conn:
        rows = conn.execute(
            "SELECT subject, max(revision) FROM audit_log WHERE entry = 'sent' GROUP BY subject"
        ).fetchall()
    return {s: int(r) for s, r in rows}


def _empty_the_store(home: Home) -> None:
    """What the outside test did: node.db truncated to 0 bytes."""
    for suffix in ("-wal", "-shm"):
        home.store_path.with_name(home.store_path.name + suffix).unlink(missing_ok=True)
    os.truncate(home.store_path, 0)


@pytest.fixture
def federation(tmp_path: Path, kafka_bootstrap: str, topic: str) -> Iterator[tuple[Home, Home]]:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 1500, topic=topic)
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
    yield pan, agg


def test_an_emptied_store_is_refused_until_revisions_are_recovered(
    federation: tuple[Home, Home], tmp_path: Path
) -> None:
    pan, agg = federation
    before = picture_totals(agg)
    published = _sent_revisions(pan.store_path)
    assert before and published
    csv = tmp_path / "PAN.csv"

    _empty_the_store(pan)

    report = diagnose(pan)
    status, detail = _check(report, "store")
    assert status == "problem" and "lost its identity" in detail, detail
    assert "recover-revisions" in detail
    assert not report.healthy
    for args in (("doctor",), ("status",), ("ingest", str(csv)), ("publish",)):
        result = _cli(pan, *args)
        assert result.exit_code != 0, (args, result.output)
        assert "recover-revisions" in result.output, (args, result.output)
    # Nothing reached the topic, and the aggregator's picture is unchanged.
    assert aggregate_once(agg).messages == 0
    assert picture_totals(agg) == before

    recovered = _cli(pan, "recover-revisions", "--format", "json")
    assert recovered.exit_code == 0, recovered.output
    outcome = json.loads(recovered.stdout)
    assert outcome["raised"] == len(published)
    assert outcome["highest_revision"] == max(published.values())
    assert outcome["recovered_from"] and outcome["store_id"] != outcome["recovered_from"]
    assert diagnose(pan).healthy, diagnose(pan).as_dict()

    assert _cli(pan, "ingest", str(csv)).exit_code == 0
    published_again = _cli(pan, "publish")
    assert published_again.exit_code == 0, published_again.output
    stats = aggregate_once(agg)
    assert stats.stale == 0 and stats.applied > 0, stats
    again = _sent_revisions(pan.store_path)
    for subject, revision in published.items():
        assert again[subject] > revision, subject
    assert picture_totals(agg) == before


def test_a_restored_backup_publishes_only_after_recovery_and_never_goes_back(
    federation: tuple[Home, Home], tmp_path: Path
) -> None:
    pan, agg = federation
    assert _cli(pan, "backup", str(tmp_path / "backup")).exit_code == 0
    # After the backup: more records, so cells change and their revisions rise.
    later = generate_encounters("PAN", 1200, seed=11, start=date(2025, 1, 6), weeks=4)
    later_csv = tmp_path / "later.csv"
    write_csv(later, later_csv)
    assert ingest(pan, later_csv).stored == len(later)
    publish(pan)
    aggregate_once(agg)
    published = _sent_revisions(pan.store_path)
    whole = picture_totals(agg)

    restored = Home(tmp_path / "pan-restored", pan.config)
    restored_cli = CliRunner().invoke(
        main, ["--home", str(restored.path), "restore", str(tmp_path / "backup")]
    )
    assert restored_cli.exit_code == 0, restored_cli.output
    assert "recover-revisions" in restored_cli.output
    home = open_home(restored.path)
    with closing(sqlite3.connect(home.store_path)) as conn, conn:
        restored_seq = conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    refused = _cli(home, "publish")
    assert refused.exit_code != 0 and "restored from the backup" in refused.output
    status, detail = _check(diagnose(home), "store")
    assert status == "problem" and "restored from the backup" in detail

    recovered = _cli(home, "recover-revisions", "--format", "json")
    assert recovered.exit_code == 0, recovered.output
    assert json.loads(recovered.stdout)["recovered_from"] is None  # same store, older
    assert _cli(home, "ingest", str(later_csv)).exit_code == 0
    assert _cli(home, "publish").exit_code == 0
    stats = aggregate_once(agg)
    assert stats.stale == 0 and stats.applied > 0, stats
    with closing(sqlite3.connect(home.store_path)) as conn, conn:
        resent = conn.execute(
            "SELECT subject, revision FROM audit_log WHERE entry = 'sent' AND seq > ?",
            (restored_seq,),
        ).fetchall()
    assert resent
    for subject, revision in resent:  # every revision sent after recovery is above
        assert revision > published.get(subject, 0), subject
    assert picture_totals(agg) == whole


def test_a_store_that_lost_entries_after_the_head_or_was_replaced_is_refused(
    tmp_path: Path,
) -> None:
    pan, _rows, csv = member_with_data(tmp_path, "PAN", 400)
    gtm, _rows, _ = member_with_data(tmp_path, "GTM", 400)
    publish_flows_to(pan, MemoryTopic())
    offline = _closed_port()
    assert _check(diagnose(pan, bootstrap=offline), "store")[0] == "ok"

    # The audit log cut back: the head file knows more than the store.
    with closing(sqlite3.connect(pan.store_path)) as conn, conn:
        conn.execute("DELETE FROM audit_log WHERE seq > 2")
    status, detail = _check(diagnose(pan, bootstrap=offline), "store")
    assert status == "problem" and "lost its history" in detail
    result = _cli(pan, "status")
    assert result.exit_code != 0 and "lost its history" in result.output

    # Another home's store put in its place.
    other = tmp_path / "other"
    other.mkdir()
    (other / "node.db").write_bytes(gtm.store_path.read_bytes())
    pan.store_path.unlink()
    (other / "node.db").rename(pan.store_path)
    status, detail = _check(diagnose(pan, bootstrap=offline), "store")
    assert status == "problem" and "GTM's store" in detail and "replaced" in detail
    assert _cli(pan, "ingest", str(csv)).exit_code != 0


def test_a_store_carries_its_identity_and_schema_version(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 50)
    with closing(sqlite3.connect(pan.store_path)) as conn, conn:
        store_id, country, role = conn.execute(
            "SELECT store_id, country, role FROM store_identity"
        ).fetchone()
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migration")]
    assert (country, role) == ("PAN", "member") and len(store_id) == 32
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    recorded = json.loads((tmp_path / "pan" / "node.db.identity").read_text())
    assert recorded["store_id"] == store_id
    status = json.loads(_cli(pan, "status", "--format", "json").stdout)
    assert status["store_id"] == store_id and status["schema_version"] == SCHEMA_VERSION

    # A store written by a newer release is refused, never downgraded.
    with closing(sqlite3.connect(pan.store_path)) as conn, conn:
        conn.execute(
            "INSERT INTO schema_migration VALUES (?, 'from the future', '2030-01-01')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(Exception, match="newer than this release"):
        NodeStore(pan.store_path)


def test_a_store_from_before_identities_is_adopted(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 50)
    with closing(sqlite3.connect(pan.store_path)) as conn, conn:
        conn.execute("DROP TABLE store_identity")
        conn.execute("DROP TABLE schema_migration")
    (tmp_path / "pan" / "node.db.identity").unlink()
    assert _cli(pan, "status").exit_code == 0
    with closing(sqlite3.connect(pan.store_path)) as conn, conn:
        assert conn.execute("SELECT country FROM store_identity").fetchone() == ("PAN",)
        assert conn.execute("SELECT max(version) FROM schema_migration").fetchone() == (
            SCHEMA_VERSION,
        )


# -- item 4: permissions --------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_raw_data_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        home, _rows, csv = member_with_data(tmp_path, "PAN", 200)
        bad = tmp_path / "bad.csv"
        lines = csv.read_text(encoding="utf-8").splitlines()
        bad.write_text("\n".join([lines[0], "only,three,fields", *lines[1:3]]) + "\n")
        report = ingest(home, bad)
        assert report.rejects_file is not None
        publish_flows_to(home, MemoryTopic())  # writes the audit head
        with NodeStore(home.store_path) as store:  # keep the WAL and SHM files open
            store.connection.execute("UPDATE outbox SET created_at = created_at")
            side = [home.store_path.with_name(f"node.db{s}") for s in ("-wal", "-shm")]
            assert all(p.exists() for p in side)
            modes = {p.name: _mode(p) for p in side}
        modes[home.store_path.name] = _mode(home.store_path)
        modes["node.db.audit-head"] = _mode(home.path / "node.db.audit-head")
        modes["node.db.identity"] = _mode(home.path / "node.db.identity")
        for item in home.rejects_dir.iterdir():
            modes[f"rejects/{item.name}"] = _mode(item)
        assert modes and all(m == 0o600 for m in modes.values()), {
            k: oct(v) for k, v in modes.items()
        }
        assert _mode(home.path) == 0o700
        assert _mode(home.rejects_dir) == 0o700
        offline = _closed_port()
        assert _check(diagnose(home, bootstrap=offline), "files")[0] == "ok"
        home.store_path.chmod(0o644)
        (home.rejects_dir / next(iter(home.rejects_dir.iterdir())).name).chmod(0o640)
        status, detail = _check(diagnose(home, bootstrap=offline), "files")
        assert status == "problem" and "node.db 644" in detail and "640" in detail
        home.path.chmod(0o755)
        assert str(home.path.name) in _check(diagnose(home, bootstrap=offline), "files")[1]
    finally:
        os.umask(previous)


def test_a_store_lost_with_every_file_beside_it_is_refused_by_what_the_federation_knows(
    federation: tuple[Home, Home], tmp_path: Path
) -> None:
    """node.db, its identity file and its audit head all gone: only the
    picture topic remembers PAN's revisions, and publish asks it."""
    pan, agg = federation
    before = picture_totals(agg)
    published = _sent_revisions(pan.store_path)
    for name in ("node.db", "node.db-wal", "node.db-shm", "node.db.identity", "node.db.audit-head"):
        (pan.path / name).unlink(missing_ok=True)
    csv = tmp_path / "PAN.csv"
    assert _cli(pan, "ingest", str(csv)).exit_code == 0  # a new store, adopted

    refused = _cli(pan, "publish")
    assert refused.exit_code != 0 and "picture topic" in refused.output, refused.output
    assert "recover-revisions" in refused.output
    assert aggregate_once(agg).messages == 0
    status, detail = _check(diagnose(pan), "store")
    assert status == "problem" and "picture topic" in detail

    assert _cli(pan, "recover-revisions").exit_code == 0
    assert _cli(pan, "publish").exit_code == 0
    stats = aggregate_once(agg)
    assert stats.stale == 0 and stats.applied > 0, stats
    again = _sent_revisions(pan.store_path)
    assert all(again[s] > r for s, r in published.items())
    assert picture_totals(agg) == before


def test_recovery_from_an_audit_export_alone_raises_every_revision(tmp_path: Path) -> None:
    """Broker unreachable: an auditor's `audit export` is enough to go on above."""
    pan, _rows, csv = member_with_data(tmp_path, "PAN", 600)
    publish_flows_to(pan, MemoryTopic())
    export = tmp_path / "pan-audit.jsonl"
    assert _cli(pan, "audit", "export", "-o", str(export)).exit_code == 0
    published = _sent_revisions(pan.store_path)
    assert published
    _empty_the_store(pan)
    assert _cli(pan, "status").exit_code != 0
    # The long-running publisher refuses too, at its first cycle.
    follow = subprocess.run(
        [sys.executable, "-m", "node.cli", "--home", str(pan.path), "publish", "--follow"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert follow.returncode == 1 and "lost its identity" in follow.stderr, follow.stderr

    recovered = _cli(
        pan, "recover-revisions", "--offline", "--audit", str(export), "--format", "json"
    )
    assert recovered.exit_code == 0, recovered.output
    outcome = json.loads(recovered.stdout)
    assert outcome["raised"] == len(published) and outcome["head_kept_as"]
    assert "picture_topic" not in outcome["sources"]
    assert (pan.path / outcome["head_kept_as"]).is_file()  # kept for the auditors
    assert _cli(pan, "audit", "verify").exit_code == 0  # the new log, from nothing

    assert ingest(pan, csv).stored == 600
    publish_flows_to(pan, MemoryTopic())
    again = _sent_revisions(pan.store_path)
    assert all(again[s] > r for s, r in published.items())


def test_a_bad_audit_export_is_a_located_error(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 50)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"entry": "sent"}\nnot json\n', encoding="utf-8")
    result = _cli(pan, "recover-revisions", "--offline", "--audit", str(bad))
    assert result.exit_code != 0 and "bad.jsonl, line 2" in result.output
