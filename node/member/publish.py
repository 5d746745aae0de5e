"""``corredor publish``: stage what the policy lets out, then drain the outbox
to the shared topic, marking rows only on the broker's acknowledgement.

A large publish drains from a second process while this one stages, and
stages record-id ranges in stager processes (``node.member.workers``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.config import Home
from node.errors import CorredorError, StoreLostHistory
from node.home import ensure_shared_topic
from node.member import revisions
from node.member.drain import DrainResult, drain_outbox
from node.member.flow_release import PublishPlan
from node.member.keys import check_own_key, refresh_manifest
from node.member.member_home import home_policy, member_store
from node.member.reference_pipeline import ReferencePlan
from node.member.staging import stage_publication
from node.member.workers import BackgroundDrainer
from node.policy.model import Policy
from node.store.identity import RECOVER_HINT
from node.store.node_store import NodeStore, OutboxStatus
from node.transport import health
from node.transport.base import EventSink
from node.transport.confluent_producer import ConfluentSink
from node.transport.kafka_producer import KafkaSink


@dataclass(frozen=True)
class PublishResult:
    plan: PublishPlan
    drain: DrainResult
    outbox: OutboxStatus
    topic: str
    policy_version: str
    reference: ReferencePlan | None = None


def check_federation_history(home: Home, store: NodeStore, bootstrap: str | None = None) -> None:
    """Refuse (``StoreLostHistory``) a store that never had an event
    acknowledged nor recovered its revisions while the picture topic holds
    this country's subjects: it lost its history with every file beside it
    (only the federation remembers), and its revisions would start again at 1.
    Read once per store, until its first acknowledgement; skipped when the
    broker does not answer at once (the publish cannot send either)."""
    if store.outbox_status().acked or store.has_recovered_revisions():
        return
    address = bootstrap or home.bootstrap
    try:
        health.reachable(address, timeout_s=2.0)
    except CorredorError:
        return
    known = revisions.from_picture_topic(home, address)
    if known:
        raise StoreLostHistory(
            f"{home.store_path}: this store has never published, but the picture topic "
            f"holds {len(known)} of {home.country}'s subjects, up to revision "
            f"{max(known.values())}: it lost its history. Refusing to publish: {RECOVER_HINT}"
        )


def open_sink(home: Home, bootstrap: str | None = None, **options: Any) -> EventSink:
    """The node's producer on the shared topic (created if missing)."""
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    sink_class: type[KafkaSink | ConfluentSink] = (
        ConfluentSink if home.config.kafka.client == "confluent" else KafkaSink
    )
    # Made before the topic is ensured: a missing confluent extra fails first.
    sink = sink_class(
        address,
        home.config.kafka.topic,
        client_id=f"corredor-{home.country}",
        security=security,
        **options,
    )
    ensure_shared_topic(home, address, security)
    return sink


def _stagers() -> int:
    """Stagers for an overlapped publish: one per core the drainer leaves, at
    most four. The drainer's process (the client and its I/O thread) keeps a
    core busy, and the broker often shares the machine: on two cores one
    stager, this process itself with no stager process, published 100,000
    records in 13.5 s where two stager processes took 15.0 s and a publish
    without overlap 20.8 s (bench/RESULTS.md, "Stagers")."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


#: Above this much work (outbox rows waiting plus raw records to turn into
#: EncounterRecord events), ``publish`` drains from a second process while it
#: stages; below it, starting that process costs more than it saves.
OVERLAP_FROM = 20_000


def _worth_overlapping(store: NodeStore, policy: Policy) -> bool:
    work = store.outbox_status().pending
    if policy.exchanges.encounter_records.shared:
        work += store.count_encounters()
    return work >= OVERLAP_FROM


def publish(
    home: Home,
    *,
    bootstrap: str | None = None,
    progress: Callable[[int], None] | None = None,
    overlap: bool | None = None,
    stagers: int | None = None,
) -> PublishResult:
    """Stage what the policy lets out, then drain the outbox to Kafka.

    With ``overlap`` (by default, when there is enough work: ``OVERLAP_FROM``)
    a second process drains while this one stages in committed chunks, so the
    two halves run on two cores; the outbox is still the only hand-over.
    ``stagers`` (by default one per core the drainer leaves: ``_stagers``;
    overlapped publishes only) stage the encounter records in parallel, in
    stager processes when there is more than one.

    First it takes a newer manifest from the control topic, if there is one,
    and refuses (``KeyNotUsable``) to publish with a key that it revokes or
    that has expired: nothing is staged or sent."""
    policy = home_policy(home)
    refresh_manifest(home, bootstrap)
    check_own_key(home)
    with member_store(home) as store:
        check_federation_history(home, store, bootstrap)
        if overlap is None:
            overlap = _worth_overlapping(store, policy)
        if overlap:
            with BackgroundDrainer(home.path, bootstrap) as drainer:
                plan, reference = stage_publication(
                    home,
                    store,
                    policy,
                    commit_chunks=True,
                    after_chunk=lambda: drainer.report_progress(progress),
                    stagers=stagers or _stagers(),
                )
                drained = drainer.finish(progress)
        else:
            plan, reference = stage_publication(home, store, policy)
            sink = open_sink(home, bootstrap)
            try:
                drained = drain_outbox(store, sink, progress=progress)
            finally:
                sink.close()
        return PublishResult(
            plan,
            drained,
            store.outbox_status(),
            home.config.kafka.topic,
            policy.version,
            reference,
        )
