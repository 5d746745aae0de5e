"""Staging in committed chunks while another process drains (issue 8).

Unit tests hold the outbox contract without a broker: chunked staging writes
exactly what one transaction would, a crash between chunks leaves a prefix the
next run completes, the staging lock excludes other processes, and the
overlapping drain marks every row once. The broker tests run ``publish`` with
the drainer process on a real Kafka and check every event arrives once, that
no planted raw value is on the topic, and what happens when the broker is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.aggregator.run import aggregate_once
from node.cli import main
from node.config import Home
from node.demo.synth import generate_encounters, plant_values, write_csv
from node.errors import CorredorError, TransportError
from node.loops import wait_until
from node.member.drain import drain_outbox
from node.member.event_factory import ENCOUNTER_KIND
from node.member.follow import PublishCounters, publish_follow
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.publish import _stagers, publish
from node.member.staging import stage_publication
from node.member.workers import StagerProcess
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from node.transport.memory import MemorySink, MemoryTopic
from tests.factories import START, aggregator_for, records_only_policy
from tests.patience import PATIENCE_S

RECORDS = 2_500


def _usa(base: Path, n: int = RECORDS, topic: str = "t") -> tuple[Home, list[dict[str, str]]]:
    """USA shares pseudonymised encounter records: the bulk a chunked publish streams."""
    home = init_member(base / "usa", "USA", topic=topic, policy=records_only_policy(base))
    rows = generate_encounters("USA", n, seed=11, start=START, weeks=8)
    path = base / "usa.csv"
    write_csv(rows, path)
    assert ingest(home, path, stage=False).stored == n
    return home, rows


def _ledger_and_outbox(
    home: Home,
) -> tuple[dict[str, tuple[int, str | None]], list[tuple[str, str, int]]]:
    with NodeStore(home.store_path) as store:
        ledger = store.ledger(ENCOUNTER_KIND)
        rows = store.connection.execute(
            "SELECT kind, subject, revision FROM outbox ORDER BY kind, subject, revision"
        ).fetchall()
    return ledger, rows


def test_chunked_staging_writes_what_one_transaction_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial, _ = _usa(tmp_path / "serial")
    chunked, _ = _usa(tmp_path / "chunked")
    with NodeStore(serial.store_path) as store:
        plan_a, _ = stage_publication(serial, store, home_policy(serial))
    chunks = []
    with NodeStore(chunked.store_path) as store:
        plan_b, _ = stage_publication(
            chunked,
            store,
            home_policy(chunked),
            commit_chunks=True,
            after_chunk=lambda: chunks.append(store.outbox_status().pending),
        )
    assert plan_a.staged == plan_b.staged > RECORDS
    assert plan_b.encounters is not None and plan_b.encounters.new == RECORDS
    # Several chunks, each committed before the next was built.
    assert len(chunks) >= 2 and chunks == sorted(chunks) and chunks[-1] == plan_b.staged
    # Each home has its own pseudonym key, so compare shapes: one revision-1
    # event per record, one ledger row each.
    ledger_a, outbox_a = _ledger_and_outbox(serial)
    ledger_b, outbox_b = _ledger_and_outbox(chunked)
    assert len(ledger_a) == len(ledger_b) == RECORDS
    assert {r for _, _, r in outbox_b} == {1}
    assert len(outbox_a) == len(outbox_b)


def test_a_crash_between_chunks_leaves_a_prefix_the_next_run_completes(
    tmp_path: Path,
) -> None:
    home, _ = _usa(tmp_path)

    class Crash(Exception):
        pass

    def crash_after_first() -> None:
        raise Crash

    with NodeStore(home.store_path) as store, pytest.raises(Crash):
        stage_publication(
            home, store, home_policy(home), commit_chunks=True, after_chunk=crash_after_first
        )
    ledger, outbox = _ledger_and_outbox(home)
    committed = [s for k, s, _ in outbox if k == ENCOUNTER_KIND]
    # The first chunk landed whole, with its ledger rows, and nothing more.
    assert 0 < len(committed) < RECORDS
    assert set(committed) == set(ledger)
    with NodeStore(home.store_path) as store:
        plan, _ = stage_publication(home, store, home_policy(home), commit_chunks=True)
    assert plan.encounters is not None
    assert plan.encounters.new == RECORDS - len(committed)
    ledger, outbox = _ledger_and_outbox(home)
    subjects = [s for k, s, _ in outbox if k == ENCOUNTER_KIND]
    assert len(subjects) == len(set(subjects)) == len(ledger) == RECORDS


def test_staging_lock_excludes_another_process(tmp_path: Path) -> None:
    home, _ = _usa(tmp_path, n=10)
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock_file = str(home.store_path) + ".staging.lock"

    def probe_code() -> int:
        return subprocess.run([sys.executable, "-c", probe, lock_file], check=False).returncode

    with NodeStore(home.store_path) as store:
        with store.staging_lock():
            with store.staging_lock():  # reentrant for the same store
                assert probe_code() == 3
            assert probe_code() == 3
        assert probe_code() == 0


def test_encounter_inputs_are_read_a_page_at_a_time_in_order(tmp_path: Path) -> None:
    home, rows = _usa(tmp_path, n=25)
    with NodeStore(home.store_path) as store:
        paged = [r[0] for r in store.iter_encounter_inputs(page=4)]
    assert paged == sorted(r["record_id"] for r in rows)


def test_overlapping_drain_sends_each_committed_row_once(tmp_path: Path) -> None:
    home, _ = _usa(tmp_path, n=600)
    topic = MemoryTopic()
    done = threading.Event()
    results = []
    with NodeStore(home.store_path) as drain_store:

        def drain() -> None:
            results.append(
                drain_outbox(
                    drain_store, MemorySink(topic), batch_size=97, staging_done=done.is_set
                )
            )

        drainer = threading.Thread(target=drain)
        drainer.start()
        time.sleep(0.05)  # the drainer polls an empty outbox first
        with NodeStore(home.store_path) as store:
            plan, _ = stage_publication(home, store, home_policy(home), commit_chunks=True)
        done.set()
        drainer.join(timeout=PATIENCE_S)
    assert results and results[0].acknowledged == results[0].sent == plan.staged
    values = [m.value for m in topic.records]
    assert len(values) == len(set(values)) == plan.staged
    with NodeStore(home.store_path) as store:
        assert store.outbox_status().pending == 0


# -- on the broker ---------------------------------------------------------------


@pytest.mark.kafka
def test_publish_drains_from_a_second_process_on_the_broker(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    home = init_member(
        tmp_path / "usa",
        "USA",
        topic=topic,
        bootstrap=kafka_bootstrap,
        policy=records_only_policy(tmp_path),
    )
    rows = generate_encounters("USA", 3_000, seed=12, start=START, weeks=6)
    planted = {v for values in plant_values(rows).values() for v in values if len(v) >= 4}
    path = tmp_path / "usa.csv"
    write_csv(rows, path)
    ingest(home, path, stage=False)
    agg = aggregator_for(tmp_path, [home], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()

    progressed: list[int] = []
    result = publish(home, overlap=True, progress=progressed.append)
    assert result.drain.acknowledged == result.drain.sent == result.plan.staged > 3_000
    assert sum(progressed) == result.plan.staged
    assert result.outbox.pending == 0

    stats = aggregate_once(agg)
    assert stats.applied == result.plan.staged and stats.rejected_total == 0
    with PictureStore(agg.store_path) as picture:
        assert len(picture.view("encounter_view")) == 3_000

    data = b"\n".join(x for m in read_all(kafka_bootstrap, topic) for x in (m.key, m.value) if x)
    assert rows[0]["record_id"].encode() not in data
    found = [v for v in planted if v.encode() in data]
    assert not found, f"{len(found)} raw identifying values reached the topic"

    # Nothing new: a second overlapped publish sends nothing.
    again = publish(home, overlap=True)
    assert again.drain.sent == 0 and again.plan.staged == 0


@pytest.mark.kafka
@pytest.mark.faults
def test_overlapped_publish_with_the_broker_gone_keeps_everything_staged(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    home, _ = _usa(tmp_path, n=800, topic=topic)
    home.config.kafka.bootstrap = "127.0.0.1:9"  # nothing listens on the discard port
    home.save()
    with pytest.raises(TransportError):
        publish(home, overlap=True)
    with NodeStore(home.store_path) as store:
        status = store.outbox_status()
    assert status.acked == 0 and status.pending > 800
    # The broker back (here: the real one), the next publish sends all of it.
    result = publish(home, bootstrap=kafka_bootstrap, overlap=True)
    assert result.drain.acknowledged == status.pending and result.outbox.pending == 0


def test_parallel_stagers_split_the_records_and_the_parent_withdraws(tmp_path: Path) -> None:
    home, rows = _usa(tmp_path, n=900)
    policy = home_policy(home)
    with NodeStore(home.store_path) as store:
        first, _ = stage_publication(home, store, policy, commit_chunks=True, stagers=3)
    assert first.encounters is not None
    assert (first.encounters.records, first.encounters.new) == (900, 900)
    ledger, outbox = _ledger_and_outbox(home)
    assert len(ledger) == 900 and len([1 for k, _, _ in outbox if k == ENCOUNTER_KIND]) == 900

    # Some records purged, some corrected: withdrawals and revisions across ranges.
    ids = sorted(r["record_id"] for r in rows)
    gone, changed = ids[::90], ids[45::90]
    with NodeStore(home.store_path) as store:
        conn = store.connection
        conn.executemany("DELETE FROM raw_encounter WHERE record_id = ?", [(i,) for i in gone])
        conn.executemany(
            "UPDATE raw_encounter SET previous_country = 'ZZZ' WHERE record_id = ?",
            [(i,) for i in changed],
        )
        second, _ = stage_publication(home, store, policy, commit_chunks=True, stagers=3)
    plan = second.encounters
    assert plan is not None
    assert (plan.records, plan.new, plan.revised, plan.withdrawn) == (
        900 - len(gone),
        0,
        len(changed),
        len(gone),
    )
    ledger, outbox = _ledger_and_outbox(home)
    live = [s for s, (_, content) in ledger.items() if content is not None]
    assert len(live) == 900 - len(gone)
    revisions = [r for k, _, r in outbox if k == ENCOUNTER_KIND]
    assert revisions.count(2) == len(changed) + len(gone)


def test_a_stager_that_cannot_open_its_home_reports_the_error(tmp_path: Path) -> None:
    with (
        StagerProcess(tmp_path / "no-such-home", "", None, datetime.now(UTC)) as part,
        pytest.raises(CorredorError) as caught,
    ):
        part.send_guard(frozenset({"value"}))
        part.finish()
    assert "no-such-home" in str(caught.value)


def test_a_stager_without_the_guard_values_stages_nothing(tmp_path: Path) -> None:
    home, _ = _usa(tmp_path, n=50)
    with (
        StagerProcess(home.path, "", None, datetime.now(UTC)) as part,
        pytest.raises(CorredorError, match="nothing staged"),
    ):
        part.finish()  # stdin closed without the values: fail closed
    with NodeStore(home.store_path) as store:
        assert store.outbox_status().pending == 0


@pytest.mark.kafka
def test_publish_cli_overlap_on_reports_what_it_staged(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    home, _ = _usa(tmp_path, n=700, topic=topic)
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(home.path),
            "publish",
            "--bootstrap",
            kafka_bootstrap,
            "--overlap",
            "on",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["encounter_records"] == 700
    assert out["staged"] == out["sent"] == out["acknowledged"] > 700
    assert out["outbox_pending"] == 0


@pytest.mark.kafka
def test_follow_plans_again_only_when_records_change(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    """publish --follow re-plans (every raw record through the guard) only when
    another process committed something; idle cycles only drain."""
    home, _ = _usa(tmp_path, n=300, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    stop = threading.Event()
    seen: list[PublishCounters] = []
    follower = threading.Thread(
        target=lambda: seen.append(publish_follow(home, stop, interval_s=0.05))
    )
    follower.start()
    try:
        assert wait_until(lambda: _pending_and_acked(home) == (0, 300), PATIENCE_S)
        time.sleep(0.5)  # idle cycles
        more = generate_encounters("USA", 50, seed=99, start=START, weeks=2)
        for i, row in enumerate(more):
            row["record_id"] = f"LATE-{i:04d}"
        path = tmp_path / "late.csv"
        write_csv(more, path)
        ingest(home, path, stage=False)  # another connection: follow must plan it
        assert wait_until(lambda: _pending_and_acked(home) == (0, 350), PATIENCE_S)
    finally:
        stop.set()
        follower.join(30)
    (counters,) = seen
    # Two plans: the first cycle, and the one after the late ingest committed.
    assert counters.cycles - counters.unchanged == 2 and counters.unchanged > 0
    assert counters.staged == counters.acknowledged > 350 and counters.errors == 0


def _pending_and_acked(home: Home) -> tuple[int, int]:
    with NodeStore(home.store_path) as store:
        status = store.outbox_status()
        encounter = store.connection.execute(
            "SELECT count(*) FROM outbox WHERE kind = ? AND acked_at IS NOT NULL",
            (ENCOUNTER_KIND,),
        ).fetchone()[0]
    return status.pending, int(encounter)


def test_an_overlapped_publish_leaves_the_drainer_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cores: this process stages alone beside the drainer (no stager
    process); more cores: one stager per core the drainer leaves, at most four."""
    for cores, stagers in ((None, 1), (1, 1), (2, 1), (3, 2), (5, 4), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert _stagers() == stagers, cores
