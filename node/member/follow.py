"""`publish --follow`: the member's long-running loop.

It survives a broker that goes away (it backs off and retries, and the node
keeps accepting ingest meanwhile, since staging is local), stops cleanly on
SIGTERM or SIGINT between batches, and resumes exactly where it stopped, from
its outbox (rows are marked only on acknowledgement). `aggregate --follow`,
the aggregator's loop, is ``node.aggregator.run.aggregate_follow``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node.config import Home
from node.errors import CorredorError
from node.federation.control import HeadAnchor
from node.loops import Backoff
from node.member.drain import drain_outbox
from node.member.member_home import home_policy
from node.member.publish import open_sink
from node.member.staging import stage_publication
from node.store.node_store import NodeStore
from node.transport.base import EventSink

log = logging.getLogger("corredor.follow")


@dataclass
class PublishCounters:
    cycles: int = 0
    staged: int = 0
    acknowledged: int = 0
    errors: int = 0
    last_error: str | None = None
    refused: int = 0  # events the egress guard stopped
    sent: int = 0  # outbox rows handed to the producer (acknowledged or not)
    outbox_pending: int = 0
    oldest_pending_at: float | None = None  # epoch seconds of the oldest unacknowledged row
    unchanged: int = 0  # cycles that found nothing new to plan and only drained


def _planning_inputs(home: Home, store: NodeStore, policy_sha256: str) -> tuple[object, ...]:
    """Everything a publish plan depends on besides the clock: the policy, the
    records and reference data other processes commit, and the files that
    decide recipients and keys. Equal twice means the plan would be empty."""

    def mtime(path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    return (
        policy_sha256,
        store.data_version(),
        mtime(home.manifest_path),
        mtime(home.linkage_key_path),
        mtime(home.pseudonym_key_path),
        mtime(home.signing_key_path),
    )


def publish_follow(
    home: Home,
    stop: threading.Event,
    *,
    interval_s: float = 2.0,
    bootstrap: str | None = None,
    delivery_timeout_ms: int = 15_000,
    on_cycle: Callable[[PublishCounters], None] | None = None,
) -> PublishCounters:
    """Stage what the policy lets out and drain the outbox, until ``stop``."""
    counters = PublishCounters()
    backoff = Backoff()
    sink: EventSink | None = None
    anchor = HeadAnchor(home, bootstrap)
    with NodeStore(home.store_path) as store:
        try:
            planned: tuple[object, ...] | None = None
            while not stop.is_set():
                counters.cycles += 1
                policy = home_policy(home)
                # Planning reads every raw record (guard, transforms, diffs);
                # with nothing new since the last plan, only drain.
                inputs = _planning_inputs(home, store, policy.sha256)
                if inputs == planned:
                    counters.unchanged += 1
                else:
                    plan, _ = stage_publication(home, store, policy)
                    counters.staged += plan.staged
                    counters.refused += plan.refused
                    # Taken before planning: what others commit meanwhile is
                    # planned next cycle. This connection's own commits do
                    # not move data_version.
                    planned = inputs
                try:
                    if sink is None:
                        sink = open_sink(home, bootstrap, delivery_timeout_ms=delivery_timeout_ms)
                    result = drain_outbox(store, sink)
                    counters.acknowledged += result.acknowledged
                    counters.sent += result.sent
                    backoff.reset()
                    anchor.tick()
                    wait = interval_s
                except CorredorError as exc:
                    # The error says whether it is worth retrying (a broker
                    # away, a timeout); anything else is for a person.
                    if not exc.retriable:
                        raise
                    counters.errors += 1
                    counters.last_error = str(exc)
                    log.warning("publish failed, will retry: %s", exc)
                    if sink is not None:
                        _close_quietly(sink)
                        sink = None
                    wait = backoff.next()
                outbox = store.outbox_status()
                counters.outbox_pending = outbox.pending
                counters.oldest_pending_at = outbox.oldest_pending_at
                if on_cycle is not None:
                    on_cycle(counters)
                stop.wait(wait)
        finally:
            if sink is not None:
                _close_quietly(sink)
    return counters


def _close_quietly(sink: EventSink) -> None:
    """Close a producer that may be broken: what it still held is unmarked in
    the outbox and goes again with the next one."""
    try:
        sink.close()
    except CorredorError as exc:
        log.warning("closing the producer failed: %s", exc)
