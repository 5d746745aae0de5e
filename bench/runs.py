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
from typing import TYPE_CHECKING, Any

import yaml
from kafka import KafkaConsumer, KafkaProducer

from node.aggregator.apply import consume_until_caught_up
from node.aggregator.run import build_aggregator
from node.aggregator.setup import add_member, init_aggregator
from node.config import Home, KafkaSettings, policies_dir
from node.demo.synth import generate_encounters, write_csv
from node.federation import trust
from node.federation.manifest import read_signed
from node.home import event_codec, open_home, regional_floor
from node.member.drain import drain_outbox
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.publish import open_sink, publish
from node.member.staging import stage_publication
from node.model.events import Envelope, PolicyRef
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.clients import Client, group_source
from node.transport.confluent import confluent_config, consumer_config, load_confluent
from node.transport.kafka_admin import ensure_topic
from node.transport.kafka_consumer import read_all
from node.transport.kafka_producer import producer_config
from node.transport.provision import SHARED_TOPIC_CONFIGS

if TYPE_CHECKING:  # confluent-kafka is optional: loaded by load_confluent
    from confluent_kafka import KafkaError
    from confluent_kafka import Message as RdMessage

START = date(2024, 1, 1)


@dataclass
class Federation:
    member: Home
    aggregator: Home
    topic: str


def records_only_policy(base: Path, country: str = "USA") -> Path:
    """The country's shipped policy sharing its encounter records only (no
    flow statistics), as tests.factories.records_only_policy does for the
    records' tests: the node benchmark measures record throughput, one event
    per record, not the release of flow tables (whose disclosure audit is a
    per-release cost that does not grow with the events sent)."""
    data = yaml.safe_load((policies_dir() / f"{country}.yaml").read_text(encoding="utf-8"))
    data["exchanges"]["flow_statistics"]["shared"] = False
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{country}-records-only.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def federation(
    base: Path,
    bootstrap: str,
    country: str,
    records: int,
    weeks: int,
    *,
    records_only: bool = False,
) -> Federation:
    """A member with ``records`` ingested (staged to its outbox) and an aggregator."""
    topic = f"bench.{country.lower()}.{uuid.uuid4().hex[:8]}"
    agg = init_aggregator(base / "ts", bootstrap=bootstrap, topic=topic)
    member = init_member(
        base / country.lower(),
        country,
        bootstrap=bootstrap,
        topic=topic,
        secretariat_pem=agg.secretariat_pub_path.read_text(encoding="ascii"),
        policy=records_only_policy(base, country) if records_only else None,
    )
    add_member(agg, country, member.public_key_path, member.encryption_pub_path)
    trust.accept_manifest(member, read_signed(agg.manifest_path))
    rows = generate_encounters(country, records, seed=8, start=START, weeks=weeks)
    path = base / f"{country}.csv"
    write_csv(rows, path)
    ingest(member, path, stage=False)
    ensure_topic(bootstrap, topic, partitions=3, replication=1, configs=dict(SHARED_TOPIC_CONFIGS))
    return Federation(member, agg, topic)


def _copy_member(member: Home, path: Path, topic: str) -> Home:
    """The same member (keys, store, ingested records) publishing to another topic,
    so that each way of publishing starts from identical data."""
    shutil.copytree(member.path, path)
    home = open_home(path)
    home.config.kafka.topic = topic
    home.save()
    return home


def _raw_produce(bootstrap: str, topic: str, payload: list[tuple[bytes, bytes]]) -> float:
    """Seconds for bare kafka-python to produce ``payload`` with the node's settings."""
    ensure_topic(bootstrap, topic, partitions=3, replication=1, configs=dict(SHARED_TOPIC_CONFIGS))
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
    ensure_topic(bootstrap, topic, partitions=3, replication=1, configs=dict(SHARED_TOPIC_CONFIGS))
    producer = confluent.Producer(confluent_config(bootstrap, "bench-raw-confluent"))
    failed: list[str] = []

    def report(err: KafkaError | None, _msg: RdMessage) -> None:
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

    The node is measured as ``corredor publish`` runs it (``publish``: a
    second process drains while this one stages). A copy of the same member
    then publishes serially, staging and draining one after the other, so the
    report can say which half dominates."""
    fed = federation(base / "node", bootstrap, "USA", records, weeks=12, records_only=True)
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
    result = publish(fed.member, bootstrap=bootstrap, overlap=True)
    pipeline_s = time.perf_counter() - started
    events = result.drain.acknowledged
    assert events == result.plan.staged, (events, result.plan.staged)
    payload = _outbox(fed.member)
    raw_s = _raw_produce(bootstrap, fed.topic + ".raw", payload)

    policy = home_policy(serial)
    with NodeStore(serial.store_path) as store:
        started = time.perf_counter()
        stage_publication(serial, store, policy)
        stage_s = time.perf_counter() - started
        sink = open_sink(serial, bootstrap)
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
    fast_result = publish(fast, bootstrap=bootstrap, overlap=True)
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
        # Against bare confluent-kafka: the target for a node on that client.
        "confluent_node_ratio_own": round((events / fast_s) / (len(payload) / raw_fast_s), 3),
        "topic": fed.topic,
        "aggregator_home": str(fed.aggregator.path),
    }


def _raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Seconds for bare kafka-python to read ``expected`` messages of ``topic``."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    seen = 0
    started = time.perf_counter()
    while seen < expected:
        for records in consumer.poll(timeout_ms=500, max_records=2000).values():
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def _raw_confluent_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Seconds for bare confluent-kafka to read ``expected`` messages of ``topic``
    with the aggregator's consumer settings."""
    confluent = load_confluent()
    consumer = confluent.Consumer(
        consumer_config(bootstrap, f"bench-raw-c-{uuid.uuid4().hex[:6]}", "bench-raw-c")
    )
    consumer.subscribe([topic])
    seen = 0
    started = time.perf_counter()
    while seen < expected:
        for m in consumer.consume(num_messages=2000, timeout=0.5):
            if m.error() is None:
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def _aggregate(
    agg: Home, bootstrap: str, topic: str, client: Client, workers: int, store_path: Path
) -> tuple[float, int, float]:
    """Seconds to consume, check and apply the whole topic into a new store, in
    a new group, on ``client`` with ``workers`` check processes; the events
    applied; and the CPU seconds of this process (the writer's: what bounds
    the aggregator on a machine with no core to spare)."""
    with PictureStore(store_path) as store:
        agg_obj = build_aggregator(
            agg, store, event_codec(), floor=regional_floor(), workers=workers
        )
        source = group_source(client, bootstrap, topic, f"bench-agg-{uuid.uuid4().hex[:6]}")
        try:
            started, cpu = time.perf_counter(), time.process_time()
            stats = consume_until_caught_up(agg_obj, source)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            source.close()
            agg_obj.close()
    return elapsed, stats.applied, cpu


def aggregator(bootstrap: str, node_result: dict[str, Any], base: Path) -> dict[str, Any]:
    """Consume, verify, decode and apply to SQLite, against raw consume of the
    same messages, with each client; and the serial aggregator (no check
    workers) on the default client, for what the workers gain."""
    topic = node_result["topic"]
    agg = open_home(Path(node_result["aggregator_home"]))
    expected = node_result["events"]
    default: Client = KafkaSettings().client
    workers = agg.config.aggregator_workers
    out: dict[str, Any] = {"events": expected, "client": default, "workers": workers}
    clients: tuple[tuple[Client, str], ...] = (("kafka-python", ""), ("confluent", "confluent_"))
    for client, prefix in clients:
        raw_s = (_raw_consume if client == "kafka-python" else _raw_confluent_consume)(
            bootstrap, topic, expected
        )
        agg_s, applied, cpu = _aggregate(
            agg, bootstrap, topic, client, workers, base / f"agg-{client}.db"
        )
        assert applied == expected, (client, applied, expected)
        agg_rate, raw_rate = applied / agg_s, expected / raw_s
        out[f"{prefix}aggregator_seconds"] = round(agg_s, 3)
        out[f"{prefix}aggregator_events_per_s"] = round(agg_rate)
        out[f"raw_{prefix}consume_seconds"] = round(raw_s, 3)
        out[f"raw_{prefix}consume_per_s"] = round(raw_rate)
        out[f"{prefix}aggregator_ratio"] = round(agg_rate / raw_rate, 3)
        out[f"{prefix}aggregator_writer_cpu_us"] = round(cpu / applied * 1e6, 1)
    serial_s, applied, cpu = _aggregate(agg, bootstrap, topic, default, 0, base / "agg-serial.db")
    assert applied == expected
    out["serial_aggregator_cpu_us"] = round(cpu / applied * 1e6, 1)
    out["serial_aggregator_seconds"] = round(serial_s, 3)
    out["serial_aggregator_events_per_s"] = round(applied / serial_s)
    if default == "confluent":
        out["default_aggregator_ratio"] = out["confluent_aggregator_ratio"]
    else:
        out["default_aggregator_ratio"] = out["aggregator_ratio"]
    return out


def rebuild(bootstrap: str, node_result: dict[str, Any], *, big: bool) -> dict[str, Any]:
    """``corredor aggregate --rebuild`` of the node benchmark's topic, in a child
    process whose peak memory (its own and its check workers', the largest) is
    reported; the time for 10,000,000 events is extrapolated linearly from it
    unless the topic holds that many (``--big``)."""
    home = Path(node_result["aggregator_home"])
    events = int(node_result["events"])
    repo = Path(__file__).resolve().parent.parent
    # A small child of its own runs the rebuild and reports the largest peak
    # RSS among what it started (the rebuild's process and its check
    # workers): this process's other children (stagers, drainers) must not
    # count. Not the child's own figure: Linux carries ru_maxrss across fork
    # and exec, so its own would be this process's peak (bench.machine.own_peak_mb).
    script = (
        "import json, resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(json.dumps(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            sys.executable,
            "-m",
            "node.cli",
            "--home",
            str(home),
            "aggregate",
            "--rebuild",
            "--bootstrap",
            bootstrap,
        ],
        check=True,
        cwd=repo,
        stdout=subprocess.PIPE,  # the peak; the rebuild's errors go to stderr
        text=True,
    )
    seconds = time.perf_counter() - started
    peak_kb = int(json.loads(done.stdout.strip().splitlines()[-1]))
    measured_10m = events >= 10_000_000
    return {
        "rebuild_events": events,
        "rebuild_seconds": round(seconds, 1),
        "rebuild_events_per_s": round(events / seconds),
        "rebuild_10m_seconds": round(seconds * 10_000_000 / events, 1),
        "rebuild_10m_measured": measured_10m,
        "rebuild_peak_mb": round(peak_kb / 1024),
        "big": big,
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
        codec = event_codec()
        key = trust.load_signing_key(fed.member)
        policy = home_policy(fed.member)
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
