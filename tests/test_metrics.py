"""Prometheus metrics of the follow loops, scraped while they run on a real broker."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from node.aggregator.run import BatchReport
from node.aggregator.stats import ApplyStats
from node.config import REPO_ROOT, Home
from node.demo.synth import generate_encounters, write_csv
from node.loops import wait_until
from node.member.follow import PublishCounters
from node.member.intake import ingest
from node.member.member_home import init_member
from node.operator.metrics import FollowMetrics, MetricsServer
from tests.factories import START, aggregator_for, member_with_data
from tests.patience import PATIENCE_S

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_publish_counters_become_increments_and_gauges() -> None:
    metrics = FollowMetrics("member", "PAN")
    with MetricsServer(metrics, 0) as server:
        metrics.on_cycle(
            PublishCounters(
                cycles=1,
                staged=10,
                sent=4,
                acknowledged=4,
                refused=1,
                outbox_pending=6,
                oldest_pending_at=1.0,
            )
        )
        metrics.on_cycle(
            PublishCounters(
                cycles=2, staged=10, sent=10, acknowledged=10, refused=1, errors=1, outbox_pending=0
            )
        )
        samples = _scrape(server.port)
    assert _value(samples, "corredor_staged_total") == 10  # running totals, not summed
    assert _value(samples, "corredor_published_total") == 10
    assert _value(samples, "corredor_acknowledged_total") == 10
    assert _value(samples, "corredor_refused_total") == 1
    assert _value(samples, "corredor_publish_errors_total") == 1
    assert _value(samples, "corredor_outbox_pending") == 0
    assert _value(samples, "corredor_outbox_oldest_age_seconds") == 0
    assert _value(samples, "corredor_info", role="member", country="PAN") == 1


def test_aggregator_batches_add_up() -> None:
    metrics = FollowMetrics("aggregator")
    with MetricsServer(metrics, 0) as server:
        metrics.on_report(
            BatchReport(
                ApplyStats(messages=5, applied=3, duplicates=1, rejected={"forged": 1}), 0.02, 7, 0
            )
        )
        metrics.on_report(
            BatchReport(ApplyStats(messages=2, rejected={"undecodable": 2}), 0.3, 0, 2)
        )
        samples = _scrape(server.port)
    assert _value(samples, "corredor_consumed_total") == 7
    assert _value(samples, "corredor_applied_total") == 3
    assert _value(samples, "corredor_rejected_total", reason="forged") == 1
    assert _value(samples, "corredor_rejected_total", reason="undecodable") == 2
    assert _value(samples, "corredor_quarantined_total") == 3
    assert _value(samples, "corredor_dead_lettered_total") == 2
    assert _value(samples, "corredor_consumer_lag") == 0
    assert _value(samples, "corredor_apply_latency_seconds_count") == 2
    assert _value(samples, "corredor_apply_latency_seconds_bucket", le="0.025") == 1


def _reasons_raised_in_node() -> set[str]:
    """Every literal reason node/ raises MessageRejected with, read from the
    source (not from the list the metrics use)."""
    pattern = re.compile(r'MessageRejected\(\s*"([a-z-]+)"')
    return {
        m.group(1)
        for path in (REPO_ROOT / "node").rglob("*.py")
        for m in pattern.finditer(path.read_text(encoding="utf-8"))
    }


def _series(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


def test_every_rejection_reason_is_scraped_at_zero_before_the_first_message() -> None:
    """An alert on one reason must read 0, not "no data", until it happens."""
    raised = _reasons_raised_in_node()
    assert {"bad-signature", "below-regional-floor", "undecodable"} <= raised  # the scan works
    metrics = FollowMetrics("aggregator")
    with MetricsServer(metrics, 0) as server:
        before = _series(_scrape(server.port), "corredor_rejected_total", "reason")
        metrics.on_report(BatchReport(ApplyStats(messages=1, rejected={"unsigned": 1}), 0.01, 0, 0))
        after = _series(_scrape(server.port), "corredor_rejected_total", "reason")
    missing = raised - before.keys()
    assert not missing, f"reasons with no series before their first message: {sorted(missing)}"
    assert set(before.values()) == {0.0}
    assert after["unsigned"] == 1 and after["bad-signature"] == 0
    # every unlabelled counter is there at zero as well
    members = _scrape_fresh(FollowMetrics("member", "PAN"))
    for name in (
        "corredor_staged_total",
        "corredor_published_total",
        "corredor_acknowledged_total",
        "corredor_refused_total",
        "corredor_publish_errors_total",
    ):
        assert members[(name, ())] == 0


def test_docs_list_every_rejection_reason() -> None:
    text = (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    listed = text.split("Reasons: `", 1)[1].split("`", 1)[0]
    assert {r.strip() for r in listed.split(",")} >= _reasons_raised_in_node()


def _scrape_fresh(metrics: FollowMetrics) -> Samples:
    with MetricsServer(metrics, 0) as server:
        return _scrape(server.port)


def test_metrics_port_needs_follow(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from node.cli import main

    init_member(tmp_path / "pan", "PAN")
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / "pan"), "publish", "--metrics-port", "9464"]
    )
    assert result.exit_code == 2 and "--metrics-port needs --follow" in result.output


def _corredor(home: Home, *args: str) -> subprocess.Popen[bytes]:
    log = (home.path / "process.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "--home", str(home.path), *args],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _stop(proc: subprocess.Popen[bytes], home: Home) -> str:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(PATIENCE_S)
    log = (home.path / "process.log").read_text(encoding="utf-8", errors="replace")
    assert code == 0, log
    return log


def test_follow_loops_serve_moving_counters(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 600, seed=3, weeks=3, topic=topic)
    pan.config.kafka.bootstrap = kafka_bootstrap
    pan.save()
    agg = aggregator_for(tmp_path, [pan], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = f"{topic}-agg"
    agg.save()
    p_pub, p_agg = _free_port(), _free_port()
    publisher = _corredor(
        pan, "publish", "--follow", "--interval", "0.3", "--metrics-port", str(p_pub)
    )
    aggregator = _corredor(agg, "aggregate", "--follow", "--metrics-port", str(p_agg))
    try:

        def scrape_or_empty(port: int) -> Samples:
            try:
                return _scrape(port)
            except OSError:
                return {}

        assert wait_until(
            lambda: _value(scrape_or_empty(p_pub), "corredor_acknowledged_total") > 0,
            PATIENCE_S,
        ), (pan.path / "process.log").read_text()
        assert wait_until(
            lambda: _value(scrape_or_empty(p_pub), "corredor_outbox_pending") == 0,
            PATIENCE_S,
        )
        first = _scrape(p_pub)
        acked = _value(first, "corredor_acknowledged_total")
        assert _value(first, "corredor_published_total") == acked
        assert wait_until(
            lambda: _value(scrape_or_empty(p_agg), "corredor_applied_total") == acked,
            PATIENCE_S,
        ), (agg.path / "process.log").read_text()
        seen = _scrape(p_agg)
        assert _value(seen, "corredor_consumer_lag") == 0
        # nothing refused yet, and yet each reason has its series at 0
        assert ("corredor_rejected_total", (("reason", "bad-signature"),)) in seen
        assert sum(_series(seen, "corredor_rejected_total", "reason").values()) == 0
        assert _value(seen, "corredor_apply_latency_seconds_count") >= 1
        assert _value(seen, "corredor_apply_latency_seconds_sum") > 0

        # More records arrive: the member's counters move on, and so do the
        # aggregator's; a message nobody signed is quarantined and dead-lettered.
        more = generate_encounters("PAN", 300, seed=4, start=START.replace(month=3), weeks=2)
        write_csv(more, tmp_path / "more.csv")
        assert ingest(pan, tmp_path / "more.csv").stored > 0
        assert wait_until(
            lambda: _value(scrape_or_empty(p_pub), "corredor_acknowledged_total") > acked,
            PATIENCE_S,
        )
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        producer.send(topic, key=b"PAN", value=b"not an event").get(30)
        producer.close()
        assert wait_until(
            lambda: _value(scrape_or_empty(p_agg), "corredor_quarantined_total") >= 1,
            PATIENCE_S,
        )
        assert wait_until(
            lambda: _value(scrape_or_empty(p_agg), "corredor_dead_lettered_total") >= 1,
            PATIENCE_S,
        )
        later_pub = _scrape(p_pub)
        total = _value(later_pub, "corredor_acknowledged_total")
        assert wait_until(
            lambda: _value(scrape_or_empty(p_agg), "corredor_applied_total") == total,
            PATIENCE_S,
        )
        later = _scrape(p_agg)
        assert _value(later, "corredor_apply_latency_seconds_count") > _value(
            seen, "corredor_apply_latency_seconds_count"
        )
        assert sum(
            v for (name, _), v in later.items() if name == "corredor_rejected_total"
        ) == _value(later, "corredor_quarantined_total")
        assert _value(later, "corredor_last_cycle_timestamp_seconds") > 0
    finally:
        for proc, home in ((publisher, pan), (aggregator, agg)):
            if proc.poll() is None:
                _stop(proc, home)
