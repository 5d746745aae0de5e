"""Prometheus metrics of the follow loops (``--metrics-port``).

``publish --follow`` and ``aggregate --follow`` each serve one registry in the
Prometheus text format at ``http://ADDR:PORT/metrics``. The loops already report
every cycle and batch through callbacks (``on_cycle``, ``on_report`` in
``node.member.follow``); this module turns those reports into metrics, so the loops
know nothing about Prometheus.

Member node (``publish --follow``)::

    corredor_staged_total                     events staged by the loop (signed, in the outbox;
                                              ingest may stage them first)
    corredor_published_total                  outbox rows sent to the broker
    corredor_acknowledged_total               events the broker acknowledged (acks=all)
    corredor_refused_total                    events the egress guard refused to let out
    corredor_publish_errors_total             cycles whose send failed (broker away, refused)
    corredor_outbox_pending                   outbox rows not yet acknowledged
    corredor_outbox_oldest_age_seconds        age of the oldest of them (0 when empty)

Aggregator (``aggregate --follow``)::

    corredor_consumed_total                   messages read from the shared topic
    corredor_applied_total                    events applied to the picture
    corredor_duplicates_total                 redeliveries recognised by event id
    corredor_rejected_total{reason}           messages refused, by reason (every reason
                                              of node.aggregator.reasons from 0)
    corredor_quarantined_total                messages set aside in quarantine (all reasons)
    corredor_dead_lettered_total              messages copied to the dead-letter topic
    corredor_consumer_lag                     messages behind the shared topic's end
    corredor_apply_latency_seconds            histogram: verify + apply + commit of one batch

Both: ``corredor_last_cycle_timestamp_seconds`` (a stuck loop stops moving it)
and ``corredor_info{role,country}``. Metrics carry counts only, never a value.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from node.aggregator.reasons import REJECTION_REASONS
from node.aggregator.run import BatchReport
from node.aggregator.stats import ApplyStats
from node.member.follow import PublishCounters

#: Batch apply latencies from a handful of messages to a full 2,000-message batch.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class FollowMetrics:
    """The metrics of one follow loop, in their own registry."""

    def __init__(self, role: str, country: str | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge(
            "corredor_info", "This process: role and country.", ["role", "country"], registry=r
        ).labels(role, country or "").set(1)
        self.last_cycle = Gauge(
            "corredor_last_cycle_timestamp_seconds",
            "When the loop last finished a cycle or batch.",
            registry=r,
        )
        self._lock = threading.Lock()
        self._seen = PublishCounters()
        if role == "member":
            self.staged = Counter(
                "corredor_staged", "Events staged to the outbox by the loop.", registry=r
            )
            self.published = Counter(
                "corredor_published", "Outbox rows sent to the broker.", registry=r
            )
            self.acknowledged = Counter(
                "corredor_acknowledged", "Events acknowledged by the broker.", registry=r
            )
            self.refused = Counter(
                "corredor_refused", "Events the egress guard refused.", registry=r
            )
            self.publish_errors = Counter(
                "corredor_publish_errors", "Publish cycles that failed to send.", registry=r
            )
            self.outbox_pending = Gauge(
                "corredor_outbox_pending", "Outbox rows not yet acknowledged.", registry=r
            )
            self.outbox_age = Gauge(
                "corredor_outbox_oldest_age_seconds",
                "Age of the oldest unacknowledged outbox row.",
                registry=r,
            )
        else:
            self.consumed = Counter(
                "corredor_consumed", "Messages read from the shared topic.", registry=r
            )
            self.applied = Counter("corredor_applied", "Events applied to the picture.", registry=r)
            self.duplicates = Counter("corredor_duplicates", "Redeliveries recognised.", registry=r)
            self.rejected = Counter(
                "corredor_rejected", "Messages refused, by reason.", ["reason"], registry=r
            )
            # A labelled counter has no series before its first increment: an
            # alert on one reason would read "no data" instead of 0.
            for reason in REJECTION_REASONS:
                self.rejected.labels(reason)
            self.quarantined = Counter(
                "corredor_quarantined", "Messages set aside in quarantine.", registry=r
            )
            self.dead_lettered = Counter(
                "corredor_dead_lettered", "Messages copied to the dead-letter topic.", registry=r
            )
            self.lag = Gauge(
                "corredor_consumer_lag", "Messages behind the shared topic's end.", registry=r
            )
            self.apply_latency = Histogram(
                "corredor_apply_latency_seconds",
                "Verify, apply and commit of one batch.",
                buckets=LATENCY_BUCKETS,
                registry=r,
            )

    # -- callbacks of node.member.follow ------------------------------------------------

    def on_cycle(self, c: PublishCounters) -> None:
        """``publish_follow`` passes running totals; counters take the increase."""
        with self._lock:
            seen = self._seen
            self.staged.inc(c.staged - seen.staged)
            self.published.inc(c.sent - seen.sent)
            self.acknowledged.inc(c.acknowledged - seen.acknowledged)
            self.refused.inc(c.refused - seen.refused)
            self.publish_errors.inc(c.errors - seen.errors)
            self._seen = PublishCounters(
                staged=c.staged,
                sent=c.sent,
                acknowledged=c.acknowledged,
                refused=c.refused,
                errors=c.errors,
            )
            self.outbox_pending.set(c.outbox_pending)
            age = 0.0 if c.oldest_pending_at is None else time.time() - c.oldest_pending_at
            self.outbox_age.set(max(0.0, age))
            self.last_cycle.set_to_current_time()

    def on_report(self, report: BatchReport) -> None:
        """``aggregate_follow`` passes each batch on its own."""
        stats: ApplyStats = report.stats
        self.consumed.inc(stats.messages)
        self.applied.inc(stats.applied)
        self.duplicates.inc(stats.duplicates)
        for reason, n in stats.rejected.items():
            self.rejected.labels(reason).inc(n)
        self.quarantined.inc(stats.rejected_total)
        self.dead_lettered.inc(report.dead_lettered)
        self.lag.set(report.lag)
        self.apply_latency.observe(report.apply_seconds)
        self.last_cycle.set_to_current_time()


class MetricsServer:
    """The HTTP endpoint serving one registry; a context manager that stops it."""

    def __init__(self, metrics: FollowMetrics, port: int, address: str = "127.0.0.1") -> None:
        self.metrics = metrics
        self.port = port
        self.address = address
        self._server: Any = None

    def __enter__(self) -> MetricsServer:
        server, _thread = start_http_server(self.port, self.address, self.metrics.registry)
        self._server = server
        self.port = server.server_port  # port 0 asks the OS for a free one
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
