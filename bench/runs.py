"""The four benchmarks. Each measures Corredor and, in the same run against the
same broker, the baseline that bounds it (raw kafka-python with the same
settings and the same bytes)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from node import operations as ops
from node import trust
from node.aggregator.apply import consume_until_caught_up
from node.aggregator.run import build_aggregator
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.federation import read_signed
from node.model.events import Envelope, PolicyRef
from node.pipeline import drain_outbox
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.confluent import confluent_config, load_confluent
from node.transport.kafka import KafkaSource, ensure_topic, producer_config, read_all
from node.transport.provision import SHARED_TOPIC_CONFIGS

START = date(2024, 1, 1)


@dataclass
class Federation:
    member: Home
    aggregator: Home
    topic: str


def federation(base: Path, bootstrap: str, country: str, records: int, weeks: int) -> Federation:
    """A member with ``records`` ingested (staged to its outbox) and an aggregator."""
    topic = f"bench.{country.lower()}.{uuid.uuid4().hex[:8]}"
    agg = ops.init_aggregator(base / "ts", bootstrap=bootstrap, topic=topic)
    member = ops.init_member(
        base / country.lower(),
        country,
        bootstrap=bootstrap,
        topic=topic,
        secretariat_pem=agg.secretariat_pub_path.read_text(encoding="ascii"),
    )
    ops.add_member(agg, country, member.public_key_path, member.encryption_pub_path)
    trust.accept_manifest(member, read_signed(agg.manifest_path))
    rows = generate_encounters(country, records, seed=8, start=START, weeks=weeks)
    path = base / f"{country}.csv"
    write_csv(rows, path)
    ops.ingest(member, path, stage=False)
    ensure_topic(
        bootstrap, topic, partitions=3, replication=1, configs=dict(SHARED_TOPIC_CONFIGS)
    )
    return Federation(member, agg, topic)


def _copy_member(member: Home, path: Path, topic: str) -> Home:
    """The same member (keys, store, ingested records) publishing to another topic,
    so that each way of publishing starts from identical data."""
    shutil.copytree(member.path, path)
    home = ops.open_home(path)
    home.config.kafka.topic = topic
    home.save()
    return home


def _raw_produce(bootstrap: str, topic: str, payload: list[tuple[bytes, bytes]]) -> float:
    """Seconds for bare kafka-python to produce ``payload`` with the node's settings."""
    ensure_topic(
        bootstrap, topic, partitions=3, replication=1, configs=dict(SHARED_TOPIC_CONFIGS)
    )
    producer = KafkaProducer(**producer_config(bootstrap, "bench-raw"))
    producer.send(topic, key=b"warm-up", value=b"").get(timeout=60)
    started = time.perf_counter()
    futures = [producer.send(topic, key=k, value=v) for k, v in payload]
    producer.flush()
    for f in futures:
        f.get(timeout=60)
    elapsed = time.perf_counter() - started
    producer.close()
    return elapsed


def _raw_confluent_produce(bootstrap: str, topic: str, payload: list[tuple[bytes, bytes]]) -> float:
    """Seconds for bare confluent-kafka to produce ``payload`` with the same guarantees."""
    confluent = load_confluent()
    ensure_topic(
        bootstrap, topic, partitions=3, replication=1, configs=dict(SHARED_TOPIC_CONFIGS)
    )
    producer = confluent.Producer(confluent_config(bootstrap, "bench-raw-confluent"))
    failed: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    started = time.perf_counter()
    for k, v in payload:
        while True:
            try:
                producer.produce(topic, key=k, value=v, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    assert not failed, failed[:3]
    return elapsed


def _outbox(home: Home) -> list[tuple[bytes, bytes]]:
    with NodeStore(home.store_path) as store:
        return [
            (bytes(k), bytes(v))
            for k, v in store.connection.execute(
                "SELECT msg_key, msg_value FROM outbox ORDER BY seq"
            )
        ]


def node_pipeline(base: Path, bootstrap: str, records: int) -> dict[str, Any]:
    """Stored raw records -> policy -> Avro -> sign -> outbox -> Kafka ack, against
    raw kafka-python produce of the same bytes with the same producer settings.

    The node is measured as ``corredor publish`` runs it (``ops.publish``: a
    second process drains while this one stages). A copy of the same member
    then publishes serially, staging and draining one after the other, so the
    report can say which half dominates."""
    fed = federation(base / "node", bootstrap, "USA", records, weeks=12)
    serial = _copy_member(fed.member, base / "node-serial", fed.topic + ".serial")
    ensure_topic(
        bootstrap,
        serial.config.kafka.topic,
        partitions=3,
        replication=1,
        configs=dict(SHARED_TOPIC_CONFIGS),
    )
    fast = _copy_member(fed.member, base / "node-confluent", fed.topic + ".confluent")
    fast.config.kafka.client = "confluent"
    fast.save()
    ensure_topic(
        bootstrap,
        fast.config.kafka.topic,
        partitions=3,
        replication=1,
        configs=dict(SHARED_TOPIC_CONFIGS),
    )

    # A broker fresh from its jars compiles its hot paths during the first
    # seconds of load (JIT), on the same two cores: warm it up with the same
    # kind of traffic first, so neither side measures the warm-up.
    _raw_produce(bootstrap, fed.topic + ".warm-up", [(b"USA", bytes(680))] * 60_000)
    started = time.perf_counter()
    result = ops.publish(fed.member, bootstrap=bootstrap, overlap=True)
    pipeline_s = time.perf_counter() - started
    events = result.drain.acknowledged
    assert events == result.plan.staged, (events, result.plan.staged)
    payload = _outbox(fed.member)
    raw_s = _raw_produce(bootstrap, fed.topic + ".raw", payload)

    policy = ops.home_policy(serial)
    with NodeStore(serial.store_path) as store:
        started = time.perf_counter()
        ops.stage_publication(serial, store, policy)
        stage_s = time.perf_counter() - started
        sink = ops.open_sink(serial, bootstrap)
        try:
            started = time.perf_counter()
            drain_outbox(store, sink)
            drain_s = time.perf_counter() - started
        finally:
            sink.close()

    # The same publish with the optional confluent-kafka producer draining
    # (kafka.client: confluent), against the same kafka-python baseline, and
    # bare confluent-kafka producing the same bytes for scale.
    started = time.perf_counter()
    fast_result = ops.publish(fast, bootstrap=bootstrap, overlap=True)
    fast_s = time.perf_counter() - started
    assert fast_result.drain.acknowledged == events, fast_result.drain
    raw_fast_s = _raw_confluent_produce(bootstrap, fed.topic + ".raw-confluent", payload)

    node_rate = events / pipeline_s
    raw_rate = len(payload) / raw_s
    return {
        "events": events,
        "records": records,
        "mean_event_bytes": round(sum(len(v) for _, v in payload) / max(1, len(payload))),
        "seal_batch": fed.member.config.seal_batch,
        "node_seconds": round(pipeline_s, 3),
        "node_events_per_s": round(node_rate),
        "raw_produce_seconds": round(raw_s, 3),
        "raw_produce_per_s": round(raw_rate),
        "node_ratio": round(node_rate / raw_rate, 3),
        "serial_stage_seconds": round(stage_s, 3),
        "serial_drain_seconds": round(drain_s, 3),
        "serial_ratio": round((events / (stage_s + drain_s)) / raw_rate, 3),
        "confluent_node_seconds": round(fast_s, 3),
        "confluent_node_events_per_s": round(events / fast_s),
        "confluent_node_ratio": round((events / fast_s) / raw_rate, 3),
        "raw_confluent_produce_per_s": round(len(payload) / raw_fast_s),
        "topic": fed.topic,
        "aggregator_home": str(fed.aggregator.path),
    }


def aggregator(bootstrap: str, node_result: dict[str, Any]) -> dict[str, Any]:
    """Consume, verify, decode and apply to SQLite, against raw kafka-python
    consume of the same messages."""
    topic = node_result["topic"]
    agg = ops.open_home(Path(node_result["aggregator_home"]))
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    expected = node_result["events"]
    seen = 0
    started = time.perf_counter()
    while seen < expected:
        for records in consumer.poll(timeout_ms=500, max_records=2000).values():
            seen += len(records)
    raw_s = time.perf_counter() - started
    consumer.close()
    with PictureStore(agg.store_path) as store:
        agg_obj = build_aggregator(agg, store, ops.event_codec(), floor=ops.regional_floor())
        source = KafkaSource(bootstrap, topic, f"bench-agg-{uuid.uuid4().hex[:6]}")
        started = time.perf_counter()
        stats = consume_until_caught_up(agg_obj, source)
        agg_s = time.perf_counter() - started
        source.close()
    assert stats.applied == expected, stats.as_dict()
    agg_rate = stats.applied / agg_s
    raw_rate = seen / raw_s
    return {
        "events": stats.applied,
        "aggregator_seconds": round(agg_s, 3),
        "aggregator_events_per_s": round(agg_rate),
        "raw_consume_seconds": round(raw_s, 3),
        "raw_consume_per_s": round(raw_rate),
        "aggregator_ratio": round(agg_rate / raw_rate, 3),
    }


def backfill(base: Path, bootstrap: str, records: int) -> dict[str, Any]:
    """1,000,000 raw records: CSV -> validated -> stored, then published, in a
    child process so that its peak memory is its own."""
    out = base / "backfill.json"
    data = base / "backfill.csv"
    repo = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bench.backfill", "generate", str(data), str(records)],
        check=True,
        cwd=repo,
    )
    generate_s = time.perf_counter() - started
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.backfill",
            "run",
            str(base / "backfill"),
            str(data),
            bootstrap,
            str(out),
        ],
        check=True,
        cwd=repo,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["csv_mb"] = round(data.stat().st_size / 1024 / 1024)
    result["generate_seconds"] = round(generate_s, 1)
    return result


def latency(base: Path, bootstrap: str, rate: int, seconds: int) -> dict[str, Any]:
    """Publish to visible in the picture, at a steady rate, with the aggregator
    following in its own process."""
    fed = federation(base / "latency", bootstrap, "PAN", 200, weeks=1)
    agg = fed.aggregator
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "--home",
            str(agg.path),
            "aggregate",
            "--follow",
            "--batch-size",
            "500",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        codec = ops.event_codec()
        key = trust.load_signing_key(fed.member)
        policy = ops.home_policy(fed.member)
        ref = PolicyRef(policy.policy_id, policy.version, policy.sha256)
        n = rate * seconds
        prepared = []
        for i in range(n):
            body = codec.encode_body(
                "FlowStatistic",
                {
                    "reporting_country": "PAN",
                    "period": "2024-W01",
                    "period_type": "ISO_WEEK",
                    "nationality": "CUB",
                    "sex": "F",
                    "age_band": "18-29",
                    "previous_country": f"L{i:06d}",
                    "count": 5 + i % 7,
                },
            )
            env = Envelope(
                event_id=str(uuid.uuid4()),
                producer="PAN",
                kind="FlowStatistic",
                subject=f"FlowStatistic|PAN|2024-W01|latency={i}",
                revision=1,
                produced_at=datetime.now(UTC),
                policy=ref,
                audiences=("TS",),
                purposes=("statistics",),
                key_id=key.key_id,
                body=body,
            )
            env_bytes = codec.encode_envelope(env)
            prepared.append((env.event_id, codec.encode_signed(env_bytes, key.sign(env_bytes))))
        producer = KafkaProducer(**producer_config(bootstrap, "bench-latency"))
        time.sleep(3)  # let the aggregator join its group
        sent_at: dict[str, float] = {}
        started = time.time()
        for i, (event_id, value) in enumerate(prepared):
            target = started + i / rate
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            sent_at[event_id] = time.time()
            producer.send(fed.topic, key=b"PAN", value=value)
        producer.flush()
        producer.close()
        deadline = time.time() + 60

        def applied() -> int:
            with PictureStore(agg.store_path) as store:
                return store.counts()["events_received"]

        while applied() < n and time.time() < deadline:
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)
    with PictureStore(agg.store_path) as store:
        rows = store._conn.execute("SELECT event_id, received_at FROM received_event").fetchall()
    lat = sorted((recv - sent_at[eid]) * 1000 for eid, recv in rows if eid in sent_at)
    assert len(lat) == n, (len(lat), n)
    return {
        "events": n,
        "rate_per_s": rate,
        "latency_p50_ms": round(statistics.median(lat), 1),
        "latency_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1),
        "latency_max_ms": round(lat[-1], 1),
    }


def raw_messages(bootstrap: str, topic: str) -> int:
    return len(read_all(bootstrap, topic))


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
