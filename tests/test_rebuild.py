"""``aggregate --rebuild`` on the real broker: the same picture as the live one.

A live picture is built the ordinary way (``aggregate --once``) from two
members' flows, a revision of them, and messages that are quarantined. The
rebuild reads the topic again from its beginning into a new store and swaps it
in. It must end with the same exported flows, the same subject heads and the
same quarantine as the live picture. The live picture must stay whole while
the rebuild runs, and nothing may go out twice (dead letters, the picture
published back). The group must resume after the rebuild, losing nothing.
The comparison reads the stores with plain SQL and the CLI's own export, not
through the code under test.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from node.aggregator.dead_letters import dead_letter_topic
from node.aggregator.rebuild import REBUILD_SUFFIX, RebuildProgress, rebuild_picture
from node.aggregator.run import aggregate_once
from node.cli import main
from node.cli.rebuild_view import plain_line
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.errors import ConfigError
from node.home import picture_topic
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.store import audit_check
from node.transport.clients import Client, group_source
from node.transport.kafka_consumer import read_all
from tests.factories import START, aggregator_for, detail_policy, expected_picture, picture_totals

CLIENTS: tuple[Client, ...] = ("kafka-python", "confluent")

#: Messages no member signed: quarantined as undecodable, and dead-lettered.
GARBAGE = [b"", b"not an event", b"\xc3\x01" + b"\x00" * 40]


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(query)]
    finally:
        conn.close()


def _picture(home: Home) -> dict[str, Any]:
    """What must be equal: the exported flows, the subject heads, the quarantine."""
    exported = CliRunner().invoke(
        main, ["--home", str(home.path), "report", "flows", "--format", "csv"]
    )
    assert exported.exit_code == 0, exported.output
    store = home.store_path
    return {
        "flows_csv": exported.output,
        "heads": _rows(
            store,
            "SELECT subject, kind, producer, revision, event_id, withdrawn "
            "FROM subject_head ORDER BY subject",
        ),
        "cells": _rows(store, "SELECT * FROM flow_cell ORDER BY subject"),
        "quarantined": _rows(
            store,
            'SELECT reason, event_id, producer, topic, partition, "offset", raw, msg_key '
            'FROM rejected_message ORDER BY topic, partition, "offset"',
        ),
        "received": _rows(
            store,
            "SELECT event_id, subject, revision, digest, applied, topic, partition, "
            '"offset" FROM received_event ORDER BY event_id',
        ),
    }


def _ingest(home: Home, rows: list[dict[str, str]], path: Path) -> None:
    write_csv(rows, path)
    ingest(home, path)


def _federation(
    tmp_path: Path, bootstrap: str, topic: str, group_id: str, client: Client
) -> tuple[list[Home], Home, dict[str, list[dict[str, str]]]]:
    members, data = [], {}
    for i, country in enumerate(("PAN", "CRI")):
        home = init_member(
            tmp_path / country.lower(),
            country,
            topic=topic,
            bootstrap=bootstrap,
            policy=detail_policy(tmp_path / "policies", country),
        )
        rows = generate_encounters(country, 1_600, seed=50 + i, start=START, weeks=5)
        data[country] = rows
        # Half now; the other half, in the same weeks, revises the same cells.
        _ingest(home, rows[:800], tmp_path / f"{country}-a.csv")
        members.append(home)
    agg = aggregator_for(tmp_path, members, topic=topic)
    agg.config.kafka.bootstrap = bootstrap
    agg.config.kafka.group_id = group_id
    agg.config.kafka.client = client
    agg.save()
    for home in members:
        publish(home)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in GARBAGE:
        producer.send(topic, key=b"PAN", value=value)
    producer.flush()
    producer.close()
    for home in members:
        _ingest(home, data[home.country][800:], tmp_path / f"{home.country}-b.csv")
        publish(home)
    return members, agg, data


@pytest.mark.kafka
@pytest.mark.parametrize("client", CLIENTS)
def test_rebuilt_picture_equals_the_live_one(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str, client: Client
) -> None:
    members, agg, data = _federation(tmp_path, kafka_bootstrap, topic, group_id, client)
    live = aggregate_once(agg)
    assert live.rejected == {"undecodable": len(GARBAGE)}
    assert live.stale == 0 and live.applied > 0
    before = _picture(agg)
    revised = [h for h in before["heads"] if h[3] > 1]
    assert revised, "the second publish revised cells"
    assert len(before["quarantined"]) == len(GARBAGE)
    dead_letters = len(read_all(kafka_bootstrap, dead_letter_topic(agg)))
    picture = picture_topic(agg)
    published = len(read_all(kafka_bootstrap, picture))
    assert dead_letters == len(GARBAGE) and published > 0
    on_topic = len(read_all(kafka_bootstrap, topic))

    seen: list[RebuildProgress] = []

    def watch(p: RebuildProgress) -> None:
        seen.append(p)
        # The live picture is whole while the new one is built beside it.
        assert _picture(agg)["heads"] == before["heads"]
        assert (agg.store_path.parent / (agg.store_path.name + REBUILD_SUFFIX)).exists()

    result = rebuild_picture(agg, max_records=25, progress=watch)
    assert result.total == on_topic == result.stats.messages
    assert result.stats.rejected == {"undecodable": len(GARBAGE)}
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == seen[-1].total == on_topic and len(seen) > 3
    assert seen[-1].rate > 0 and seen[-1].eta_s == 0

    after = _picture(agg)
    assert after == before
    assert picture_totals(agg) == expected_picture(list(data.items()))
    # The replaced picture is kept beside it; the build file is gone. Each
    # audit log verifies against its own head file.
    assert result.previous is not None and result.previous.exists()
    assert audit_check.verify(agg.store_path).ok and audit_check.verify(result.previous).ok
    assert _rows(result.previous, "SELECT count(*) FROM subject_head")[0][0] == len(before["heads"])
    assert not (agg.store_path.parent / (agg.store_path.name + REBUILD_SUFFIX)).exists()
    # Nothing went out twice.
    assert len(read_all(kafka_bootstrap, dead_letter_topic(agg))) == dead_letters
    assert len(read_all(kafka_bootstrap, picture)) == published
    # The group resumes where the rebuild ended: nothing again, nothing lost.
    assert aggregate_once(agg).messages == 0
    pan = members[0]
    extra = generate_encounters("PAN", 200, seed=99, start=START, weeks=5)
    _ingest(pan, extra, tmp_path / "PAN-c.csv")
    sent = publish(pan).drain.acknowledged
    assert aggregate_once(agg).messages == sent > 0


@pytest.mark.kafka
def test_cli_rebuild_prints_progress_and_the_same_picture(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    _, agg, _ = _federation(tmp_path, kafka_bootstrap, topic, group_id, "kafka-python")
    aggregate_once(agg)
    before = _picture(agg)
    runner = CliRunner()
    done = runner.invoke(
        main, ["--home", str(agg.path), "aggregate", "--rebuild", "--batch-size", "20"]
    )
    assert done.exit_code == 0, done.output
    # Not a terminal: plain progress lines on stderr, then the summary on stdout.
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rebuild: ")]
    assert lines and "ev/s" in lines[-1] and "ETA" in lines[-1]
    assert "(100%)" in lines[-1]
    assert "rebuilt" in done.stdout
    assert _picture(agg) == before


@pytest.mark.kafka
def test_rebuild_refuses_while_an_aggregator_runs_in_the_group(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    _, agg, _ = _federation(tmp_path, kafka_bootstrap, topic, group_id, "kafka-python")
    aggregate_once(agg)
    before = _picture(agg)
    running = group_source(
        "kafka-python", kafka_bootstrap, topic, group_id, client_id="a-running-aggregator"
    ).open()
    try:
        with pytest.raises(ConfigError, match="active member"):
            rebuild_picture(agg)
    finally:
        running.close()
    assert _picture(agg) == before
    assert not (agg.store_path.parent / (agg.store_path.name + REBUILD_SUFFIX)).exists()


@pytest.mark.kafka
def test_a_purged_picture_is_rebuilt_purged_and_its_tombstones_not_sent_again(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    _, agg, _ = _federation(tmp_path, kafka_bootstrap, topic, group_id, "confluent")
    aggregate_once(agg)
    retain = _rows(agg.store_path, "SELECT min(retain_until) FROM event_use")[0][0]
    assert retain is not None, "the policies give flows a retention"
    # Purge as of the day after the earliest retain_until: some events go.
    done = CliRunner().invoke(
        main, ["--home", str(agg.path), "purge", "--as-of", _next_day(retain)]
    )
    assert done.exit_code == 0, done.output
    purged = _rows(agg.store_path, "SELECT count(*) FROM event_use WHERE purged_at IS NOT NULL")
    assert purged[0][0] > 0
    aggregate_once(agg)  # sends the tombstones
    picture = picture_topic(agg)
    published = len(read_all(kafka_bootstrap, picture))
    before = _picture(agg)
    rebuild_picture(agg)
    assert _picture(agg) == before
    again = _rows(agg.store_path, "SELECT count(*) FROM event_use WHERE purged_at IS NOT NULL")
    assert again == purged
    assert len(read_all(kafka_bootstrap, picture)) == published


def _next_day(iso: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(iso[:10]) + timedelta(days=1)).isoformat()


class _Interrupted(Exception):
    pass


@pytest.mark.kafka
def test_an_interrupted_rebuild_leaves_the_live_picture_as_it_was(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    _, agg, _ = _federation(tmp_path, kafka_bootstrap, topic, group_id, "confluent")
    aggregate_once(agg)
    before = _picture(agg)
    calls = []

    def stop_half_way(p: RebuildProgress) -> None:
        calls.append(p)
        if p.done > p.total // 2:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        rebuild_picture(agg, max_records=20, progress=stop_half_way)
    assert 0 < calls[-1].done < calls[-1].total
    assert _picture(agg) == before
    assert not (agg.store_path.parent / (agg.store_path.name + REBUILD_SUFFIX)).exists()
    # The group was not moved: nothing new, nothing lost for the live aggregator.
    assert aggregate_once(agg).messages == 0
    # The next rebuild starts over and completes.
    out = CliRunner().invoke(
        main, ["--home", str(agg.path), "aggregate", "--rebuild", "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["messages"] == summary["topic_messages"] > 0
    assert summary["previous"] and summary["events_per_s"] >= 0
    assert _picture(agg) == before


def test_plain_progress_line_says_rate_and_eta() -> None:
    line = plain_line(RebuildProgress(done=1_200, total=5_000, elapsed_s=0.4))
    assert line == "rebuild: 1,200/5,000 messages (24%), 3,000 ev/s, ETA 0m01s"
    assert plain_line(RebuildProgress(0, 10_000_000, 0.0)).endswith("0 ev/s, ETA ?")
    long = RebuildProgress(done=1_000_000, total=10_000_000, elapsed_s=500.0)
    assert long.eta_s == 4_500 and plain_line(long).endswith("ETA 1h15m00s")
