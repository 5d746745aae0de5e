"""Delivery under faults, on real brokers: nothing lost, nothing counted twice.

Each test prints the counts of events sent, acknowledged, delivered, applied,
dead-lettered and quarantined, and compares the picture with the counts
computed straight from the raw files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from node.aggregator.dead_letters import dead_letter_topic
from node.aggregator.run import aggregate_once
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.devkafka import LocalKafka
from node.loops import wait_until
from node.member.follow import PublishCounters, publish_follow
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.clients import Client
from node.transport.kafka_consumer import read_all
from tests.factories import START, aggregator_for, detail_policy, expected_picture, picture_totals
from tests.patience import PATIENCE_S

pytestmark = [pytest.mark.faults, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent

#: The Kafka library (``kafka.client``) of the members' producers and the
#: aggregator's consumer: every fault test runs once with each, and the
#: guarantees hold with either.
CLIENTS: tuple[Client, ...] = ("kafka-python", "confluent")


def _as_published(homes: list[Home]) -> Counter[tuple[str, str, str]]:
    """What the nodes' ledgers say they published last, per cell. With several
    releases of a period the cross-release rule may keep a cell suppressed
    that one release would show, so delivery is judged against this."""
    out: Counter[tuple[str, str, str]] = Counter()
    for h in homes:
        with NodeStore(h.store_path) as store:
            for content in (c for _, c in store.ledger("FlowStatistic").values() if c):
                body = json.loads(content)
                if "_T" in body.values():
                    continue  # a table's total: picture_totals adds the detail only
                out[(body["period"], body["reporting_country"], body["nationality"] or "")] += body[
                    "count"
                ]
    return +out


def _pending(home: Home) -> int:
    with NodeStore(home.store_path) as store:
        return store.outbox_status().pending


def _drained(home: Home) -> bool:
    """Something was acknowledged and nothing waits."""
    with NodeStore(home.store_path) as store:
        status = store.outbox_status()
    return status.acked > 0 and status.pending == 0


def _ingest(home: Home, rows: list[dict[str, str]], path: Path) -> None:
    write_csv(rows, path)
    report = ingest(home, path)
    assert report.rejected_rows == 0


def _counts_line(label: str, homes: list[Home], agg: Home, topic: str, bootstrap: str) -> str:
    sent = acked = 0
    for h in homes:
        with NodeStore(h.store_path) as store:
            status = store.outbox_status()
            sent += status.acked + status.pending
            acked += status.acked
    delivered = len(read_all(bootstrap, topic))
    with PictureStore(agg.store_path) as store:
        c = store.counts()
        dead = store.dead_letter_count()
    line = (
        f"{label}: sent={sent} acknowledged={acked} delivered={delivered} "
        f"applied={c['events_applied']} dead_lettered={dead} quarantined={c['rejected']}"
    )
    print(line)
    return line


def _homes(
    tmp: Path,
    bootstrap: str,
    countries: tuple[str, ...],
    topic: str,
    replication: int = 1,
    client: Client = "kafka-python",
) -> tuple[list[Home], Home]:
    members = []
    for c in countries:
        h = init_member(
            tmp / c.lower(),
            c,
            bootstrap=bootstrap,
            topic=topic,
            policy=detail_policy(tmp / "policies", c),
        )
        h.config.kafka.replication = replication
        h.config.kafka.client = client  # the library the member publishes with
        h.save()
        members.append(h)
    agg = aggregator_for(tmp, members, topic=topic)
    agg.config.kafka.bootstrap = bootstrap
    agg.config.kafka.replication = replication
    agg.config.kafka.client = client  # the library the aggregator consumes with
    agg.save()
    return members, agg


def _follow(home: Home, stop: threading.Event) -> tuple[threading.Thread, PublishCounters]:
    counters = PublishCounters()

    def run() -> None:
        result = publish_follow(home, stop, interval_s=0.3, delivery_timeout_ms=6_000)
        counters.__dict__.update(result.__dict__)

    thread = threading.Thread(target=run, name=f"publish-{home.country}", daemon=True)
    thread.start()
    return thread, counters


@pytest.fixture
def single_broker(kafka_jars: Path, tmp_path: Path) -> Iterator[LocalKafka]:
    with LocalKafka(1, jars=kafka_jars, base_dir=tmp_path / "kafka") as kafka:
        yield kafka


@pytest.mark.parametrize("client", CLIENTS)
def test_kafka_fully_down_during_ingest_and_publish(
    single_broker: LocalKafka, tmp_path: Path, client: Client
) -> None:
    bootstrap = single_broker.bootstrap
    (pan,), agg = _homes(tmp_path, bootstrap, ("PAN",), "faults.down", client=client)
    rows = generate_encounters("PAN", 6000, seed=61, start=START, weeks=6)
    _ingest(pan, rows[:3000], tmp_path / "a.csv")
    stop = threading.Event()
    thread, _ = _follow(pan, stop)
    try:
        assert wait_until(lambda: _drained(pan), PATIENCE_S)
        single_broker.kill_broker(1)  # Kafka fully down
        _ingest(pan, rows[3000:], tmp_path / "b.csv")  # ingest goes on meanwhile
        time.sleep(8)
        assert _pending(pan) > 0, "events waited in the outbox while Kafka was down"
        single_broker.restart_broker(1)
        assert wait_until(lambda: _pending(pan) == 0, PATIENCE_S), "outbox drained after recovery"
    finally:
        stop.set()
        thread.join(PATIENCE_S)
        assert not thread.is_alive(), "the follow loop did not stop"
    aggregate_once(agg)
    _counts_line("kafka-down", [pan], agg, "faults.down", bootstrap)
    assert picture_totals(agg) == _as_published([pan])


def _leader_of(bootstrap: str, topic: str, partition: int = 0) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        for t in admin.describe_topics([topic]):
            for p in t["partitions"]:
                index = p.get("partition_index", p.get("partition"))
                if index == partition:
                    return int(p.get("leader_id", p.get("leader")))
    finally:
        admin.close()
    raise AssertionError("no leader found")


@pytest.mark.parametrize("client", CLIENTS)
def test_leader_killed_under_load_loses_and_doubles_nothing(
    kafka_jars: Path, tmp_path: Path, client: Client
) -> None:
    countries = ("PAN", "CRI", "GTM", "MEX")
    topic = "faults.leader"
    with LocalKafka(3, jars=kafka_jars, base_dir=tmp_path / "kafka") as kafka:
        members, agg = _homes(
            tmp_path, kafka.bootstrap, countries, topic, replication=3, client=client
        )
        rows = {
            c: generate_encounters(c, 4000, seed=70 + i, start=START, weeks=4)
            for i, c in enumerate(countries)
        }
        stop = threading.Event()
        followers = []
        for h in members:
            _ingest(h, rows[h.country][:1000], tmp_path / f"{h.country}-0.csv")
            followers.append(_follow(h, stop))
        try:
            assert wait_until(lambda: all(_drained(h) for h in members), PATIENCE_S)
            leader = _leader_of(kafka.bootstrap, topic)
            for step in range(1, 4):
                for h in members:
                    part = rows[h.country][step * 1000 : (step + 1) * 1000]
                    _ingest(h, part, tmp_path / f"{h.country}-{step}.csv")
                if step == 1:
                    kafka.kill_broker(leader)  # SIGKILL the partition leader mid-stream
                time.sleep(0.5)
            assert wait_until(lambda: all(_pending(h) == 0 for h in members), PATIENCE_S)
        finally:
            stop.set()
            for thread, _ in followers:
                thread.join(PATIENCE_S)
        survivors = ",".join(f"127.0.0.1:{n.port}" for n in kafka.info.nodes if n.node_id != leader)
        aggregate_once(agg, bootstrap=survivors)
        _counts_line("leader-killed", members, agg, topic, survivors)
        assert picture_totals(agg) == _as_published(members)


def _corredor(home: Home, *args: str) -> subprocess.Popen[bytes]:
    """`corredor` as its own process, output to a log file in the home."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (home.path / "process.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "--home", str(home.path), *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()  # the child has its own descriptor


def _finish(proc: subprocess.Popen[bytes], home: Home, timeout: float) -> str:
    proc.wait(timeout)
    return (home.path / "process.log").read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("client", CLIENTS)
def test_node_and_aggregator_killed_mid_work_then_restarted(
    single_broker: LocalKafka, tmp_path: Path, client: Client
) -> None:
    bootstrap = single_broker.bootstrap
    countries = ("PAN", "CRI")
    members, agg = _homes(tmp_path, bootstrap, countries, "faults.kill", client=client)
    rows = {
        c: generate_encounters(c, 20000, seed=80 + i, start=START, weeks=8)
        for i, c in enumerate(countries)
    }
    pan, cri = members
    _ingest(cri, rows["CRI"], tmp_path / "cri.csv")
    publish(cri)
    # The node: SIGKILL while it works through its outbox, then restart.
    proc = _corredor(pan, "publish", "--follow", "--interval", "0.2")
    for i in range(10):
        _ingest(pan, rows["PAN"][i * 2000 : (i + 1) * 2000], tmp_path / f"pan-{i}.csv")
        if i == 4:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert _pending(pan) > 0
    proc = _corredor(pan, "publish", "--follow", "--interval", "0.2")
    assert wait_until(lambda: _pending(pan) == 0, PATIENCE_S)
    proc.send_signal(signal.SIGTERM)  # graceful: finishes the batch, exits 0
    out = _finish(proc, pan, PATIENCE_S)
    assert proc.returncode == 0, out
    assert "stopped:" in out
    # The aggregator: SIGKILL between batches of its apply, then restart.
    total = len(read_all(bootstrap, "faults.kill"))
    proc = _corredor(agg, "aggregate", "--follow", "--batch-size", "40")

    def applied() -> int:
        with PictureStore(agg.store_path) as store:
            return store.counts()["events_received"]

    assert wait_until(lambda: applied() > 0, PATIENCE_S)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    at_kill = applied()
    assert 0 < at_kill < total, (at_kill, total)
    restart = _corredor(agg, "aggregate", "--once")
    out = _finish(restart, agg, PATIENCE_S)
    assert restart.returncode == 0, out
    _counts_line("processes-killed", members, agg, "faults.kill", bootstrap)
    assert picture_totals(agg) == _as_published(members)


@pytest.mark.parametrize("client", CLIENTS)
def test_garbage_truncated_and_oversized_messages_go_to_dead_letters(
    kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path, client: Client
) -> None:
    (pan,), agg = _homes(tmp_path, kafka_bootstrap, ("PAN",), topic, client=client)
    agg.config.kafka.group_id = group_id
    agg.save()
    rows = generate_encounters("PAN", 3000, seed=90, start=date(2024, 1, 1), weeks=4)
    _ingest(pan, rows, tmp_path / "pan.csv")
    publish(pan)
    valid = read_all(kafka_bootstrap, topic)[0].value or b""
    bad = [
        b"",
        os.urandom(64),
        b"\xc3\x01" + os.urandom(40),
        valid[: len(valid) // 2],
        b"\xc3\x01" + b"\x00" * 8 + os.urandom(900_000),
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2_000_000)
    for value in bad:
        producer.send(topic, key=b"PAN", value=value)
    producer.flush()
    producer.close()
    stats = aggregate_once(agg)
    assert stats.rejected == {"undecodable": len(bad)}
    dead = read_all(kafka_bootstrap, dead_letter_topic(agg))
    assert sorted(m.value or b"" for m in dead) == sorted(bad)
    _counts_line("bad-messages", [pan], agg, topic, kafka_bootstrap)
    assert picture_totals(agg) == expected_picture([("PAN", rows)])
    # a second pass sends nothing twice
    aggregate_once(agg)
    assert len(read_all(kafka_bootstrap, dead_letter_topic(agg))) == len(bad)
