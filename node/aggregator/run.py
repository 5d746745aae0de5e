"""THE place an aggregator is built and run, for every run mode.

``aggregate --once`` (``aggregate_once``) and ``aggregate --follow``
(``aggregate_follow``) run here; they, a member's copy of the picture
(``node.aggregator.picture_sync``) and the rebuild all verify and apply events
through an ``Aggregator`` made by ``build_aggregator``, so that no mode can
leave out a check: the regional floor is a required argument, and the trusted
time of a message follows from the mode.

``aggregate --follow`` survives a broker that goes away (it backs off and
retries), stops cleanly on SIGTERM or SIGINT between batches, and resumes
exactly where it stopped, from its committed offsets (committed only after the
picture's transaction) with redeliveries recognised by event id.

    mode             reads                 time judged against     publishes back
    secretariat      the shared topic      the broker's append     yes
                                           time (``append_time``)
    member-copy      the picture topic     the shared topic's      no
                                           append time, relayed
                                           (``relayed_time``)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

from node.aggregator.apply import Aggregator, consume_until_caught_up
from node.aggregator.checks import append_time, relayed_time
from node.aggregator.dead_letters import dead_letter
from node.aggregator.relay import publish_picture, relay_restricted
from node.aggregator.stats import ApplyStats
from node.codec.events import EventCodec
from node.config import Home
from node.errors import CorredorError
from node.federation import trust, trust_ledger
from node.federation.control import HeadAnchor, refresh_approvals
from node.home import ensure_shared_topic, event_codec, regional_floor, require_aggregator
from node.loops import Backoff
from node.policy.floor import RegionalFloor
from node.store.picture import PictureStore
from node.transport.clients import GroupSource, group_source
from node.transport.confluent_source import ConfluentSource
from node.transport.kafka_consumer import KafkaSource

#: The long-running loops' logger (``aggregate --follow`` logs as before).
log = logging.getLogger("corredor.follow")

Mode = Literal["secretariat", "member-copy"]


def build_aggregator(
    home: Home,
    store: PictureStore,
    codec: EventCodec,
    *,
    floor: RegionalFloor,
    mode: Mode = "secretariat",
    workers: int | None = None,
) -> Aggregator:
    """An aggregator over ``store`` that trusts the keys of the home's current
    manifest and enforces ``floor`` on every event. Revocations in that
    manifest are carried out in the picture first (``node.aggregator.revocation``).

    ``workers``: check processes (``node.aggregator.parallel``); by default the
    home's ``aggregator_workers``. Close the aggregator to stop them."""
    member_copy = mode == "member-copy"
    aggregator = Aggregator(
        store,
        codec,
        trust.key_directory(home),
        floor=floor,
        publish_back=not member_copy,
        time_of=relayed_time if member_copy else append_time,
        workers=home.config.aggregator_workers if workers is None else workers,
    )
    aggregator.enforce_revocations()
    return aggregator


def aggregate_once(
    home: Home,
    *,
    bootstrap: str | None = None,
    progress: Callable[[int], None] | None = None,
    max_records: int = 2_000,
) -> ApplyStats:
    """Consume the shared topic up to its current end and apply it."""
    require_aggregator(home)
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    ensure_shared_topic(home, address, security)
    if trust_ledger.load_founders(home) is not None:
        # Members' approvals and own revocations decide, here as on every node.
        refresh_approvals(home, address, security)
    with PictureStore(home.store_path) as store:
        aggregator = build_aggregator(home, store, event_codec(), floor=regional_floor())
        source = open_source(home, address)
        try:
            stats = consume_until_caught_up(
                aggregator, source, progress=progress, max_records=max_records
            )
        finally:
            source.close()
            aggregator.close()
        relay_restricted(home, store, address, security)
        publish_picture(home, store, address, security)
        dead_letter(home, store, address, security)
        return stats


def open_source(home: Home, bootstrap: str | None = None) -> KafkaSource | ConfluentSource:
    """The aggregator's consumer of the shared topic, in its group, on the
    library ``kafka.client`` names; it connects when opened or first polled."""
    settings = home.config.kafka
    return group_source(
        settings.client,
        bootstrap or home.bootstrap,
        settings.topic,
        settings.group_id,
        security=home.kafka_security(),
    )


@dataclass(frozen=True)
class BatchReport:
    """One applied batch, for metrics: what it did, how long verify + apply +
    commit took, the messages still behind the topic's end, and how many went on
    to the dead-letter topic."""

    stats: ApplyStats
    apply_seconds: float
    lag: int
    dead_lettered: int


def aggregate_follow(
    home: Home,
    stop: threading.Event,
    *,
    bootstrap: str | None = None,
    max_records: int = 2_000,
    poll_timeout_ms: int = 500,
    on_batch: Callable[[ApplyStats], None] | None = None,
    on_report: Callable[[BatchReport], None] | None = None,
) -> ApplyStats:
    """Consume, verify and apply as events arrive, until ``stop``."""
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    total = ApplyStats()
    backoff = Backoff()
    source: GroupSource | None = None
    manifest_mtime = 0.0
    anchor = HeadAnchor(home, bootstrap)
    with PictureStore(home.store_path) as store:
        aggregator = build_aggregator(home, store, event_codec(), floor=regional_floor())
        try:
            while not stop.is_set():
                mtime = home.manifest_path.stat().st_mtime if home.manifest_path.exists() else 0
                if mtime != manifest_mtime:
                    # A newly signed manifest takes effect from the next batch.
                    aggregator.use_keys(trust.key_directory(home))
                    manifest_mtime = mtime
                try:
                    if source is None:
                        ensure_shared_topic(home, address, security)
                        source = open_source(home, address).open()
                    batch = source.poll_batch(poll_timeout_ms, max_records)
                    if batch:
                        started = time.monotonic()
                        stats = aggregator.apply_batch(batch)
                        source.commit()
                        apply_seconds = time.monotonic() - started
                        total.add(stats)
                        relay_restricted(home, store, address, security)
                        publish_picture(home, store, address, security)
                        dead = dead_letter(home, store, address, security)
                        if on_batch is not None:
                            on_batch(stats)
                        if on_report is not None:
                            on_report(BatchReport(stats, apply_seconds, source.lag(), dead))
                    backoff.reset()
                    anchor.tick()
                except CorredorError as exc:
                    if not exc.retriable:
                        raise
                    log.warning("consume failed, will retry: %s", exc)
                    if source is not None:
                        # The connection is already broken; closing may complain too.
                        with suppress(Exception):
                            source.close()
                        source = None
                    stop.wait(backoff.next())
        finally:
            if source is not None:
                source.close()
            aggregator.close()
    return total
