"""Staging a publication: what the policy lets out now, written with the
ledger to the outbox under the home's staging lock (a transactional outbox).

Flow statistics, reference items and encounter records are planned here; a
large publish stages record-id ranges in worker processes
(``node.member.workers``), each running ``stage_encounter_part``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.config import Home
from node.federation import trust
from node.member import encounters
from node.member.event_factory import FLOW_KIND, EventFactory
from node.member.flow_release import PublishPlan, prepare_flow_events
from node.member.keys import check_own_key, event_factory
from node.member.ledger_diff import allowed_by_kind, egress_guard
from node.member.member_home import home_policy, member_store
from node.member.record_release import (
    EncounterPlan,
    EncounterStream,
    encounter_withdrawals,
    held_back_records,
)
from node.member.reference_pipeline import plan_with_reference
from node.member.workers import StagerProcess
from node.policy import dp_budget
from node.policy.guard import EgressGuard, Refusal
from node.policy.model import Policy
from node.store.node_store import NodeStore


def plan_publication(home: Home) -> PublishPlan:
    """The events a publish would stage now, without writing anything."""
    policy = home_policy(home)
    with member_store(home, staging=False) as store:
        return prepare_flow_events(store, event_factory(home, policy))


def privacy_budget(home: Home, policy: Policy | None = None) -> dict[str, dict[str, float]]:
    """Per audience of a differentially private flow exchange: the privacy loss
    spent (the largest sum over any one period, from the ledger in node.db),
    the policy's budget and what remains. Empty under suppression."""
    policy = policy or home_policy(home)
    rules = policy.exchanges.flow_statistics
    if rules.privacy is None:
        return {}
    with member_store(home, staging=False) as store:
        spent = dp_budget.spent_by_audience(store.privacy_charged(dp_budget.EXCHANGE))
    return {
        audience: {
            "spent": round(spent.get(audience, 0.0), 6),
            "budget": budget,
            "remaining": round(max(0.0, budget - spent.get(audience, 0.0)), 6),
        }
        for audience, budget in sorted(rules.privacy.budget.items())
    }


def stage_publication(
    home: Home,
    store: NodeStore,
    policy: Policy,
    *,
    commit_chunks: bool = False,
    after_chunk: Callable[[], None] | None = None,
    stagers: int = 1,
) -> tuple[PublishPlan, Any]:
    """Plan what the policy lets out now and write it, with the ledger, to the
    outbox under the home's staging lock, so two publishes never both take the
    same revision. Returns (flow plan, reference plan).

    By default everything lands in one transaction (joining the caller's, if
    one is open). With ``commit_chunks`` the statistics and reference events
    commit first, then each chunk of encounter records in its own transaction
    with its ledger rows, so that a drainer can send what is committed while
    the rest is built; a crash between chunks leaves a consistent prefix that
    the next run completes. ``after_chunk`` runs after each chunk staged (or,
    with workers, while waiting for them). With ``stagers`` > 1 (and
    ``commit_chunks``) the encounter records are split into that many
    record-id ranges, each staged by a worker process (node.member.workers) while
    this one stages the statistics and reference events; the withdrawals
    follow once every range is in.

    Refused (``StoreLostHistory``) on a store that lost its history: its
    revisions would start again below what the aggregator has seen; and
    (``KeyNotUsable``) when the manifest revoked or expired this node's key."""
    store.verify_identity(home.country)
    check_own_key(home)
    with store.staging_lock():
        if commit_chunks:
            return _plan_and_stage(home, store, policy, after_chunk, stagers)
        with store.transaction():
            return _plan_and_stage(home, store, policy, after_chunk, 1)


def _encounter_stream(
    store: NodeStore,
    factory: EventFactory,
    keys: encounters.EncounterKeys,
    guard: EgressGuard,
    now: datetime,
    after: str = "",
    upto: str | None = None,
    withdraw: bool = True,
) -> EncounterStream:
    return EncounterStream(
        store,
        factory,
        pseudonym_key=keys.pseudonym_key,
        linker=keys.linker,
        gazetteer=encounters.gazetteer(factory.policy.country),
        guard=guard,
        now=now,
        after=after,
        upto=upto,
        withdraw=withdraw,
    )


def stage_encounter_part(
    home: Home,
    after: str,
    upto: str | None,
    now: datetime,
    *,
    identifying: frozenset[str] | None = None,
) -> tuple[EncounterPlan, list[str]]:
    """Stage the encounter records with ``after`` < record id <= ``upto``, in
    committed chunks, without withdrawals: one part of a publish staged in
    parallel (node.member.workers), run while the parent holds the staging lock.
    ``identifying``: the guard's normalised values, when the parent computed
    them. Returns the part's plan and the subjects the guard refused."""
    policy = home_policy(home)
    factory = event_factory(home, policy)
    keys = encounters.EncounterKeys.load(home)
    linking = keys.linker is not None
    with NodeStore(home.store_path) as store:
        guard = (
            egress_guard(store, policy, linkage=linking)
            if identifying is None
            else EgressGuard.from_normalised(identifying, allowed_by_kind(policy, linkage=linking))
        )
        stream = _encounter_stream(store, factory, keys, guard, now, after, upto, withdraw=False)
        for chunk in stream.chunks():
            store.stage(chunk)
        return stream.plan(), stream.refused_subjects


def _plan_and_stage(
    home: Home,
    store: NodeStore,
    policy: Policy,
    after_chunk: Callable[[], None] | None,
    stagers: int,
) -> tuple[PublishPlan, Any]:
    factory = event_factory(home, policy)
    keys = encounters.EncounterKeys.load(home)
    now = datetime.now(UTC)
    # The policy that lets events out is archived before any of them.
    store.archive_policy(policy.sha256, policy.policy_id, policy.version, policy.canonical_json())
    shared = policy.exchanges.encounter_records.shared
    ranges = store.encounter_split(stagers) if shared and stagers > 1 else []
    with ExitStack() as workers:
        # Started first: their start-up overlaps the statistics planned here.
        parts = [
            workers.enter_context(StagerProcess(home.path, after, upto, now))
            for after, upto in ranges
        ]
        guard = egress_guard(store, policy, linkage=keys.linker is not None)
        plan = prepare_flow_events(store, factory, guard=guard, now=now)
        recipients = _intelligence_recipients(home, policy)
        # The guard keeps every refusal it makes: those past this mark are the
        # reference items', which count in the publish's ``refused`` too.
        mark = len(guard.refusals)
        staged, reference = plan_with_reference(
            store, factory, plan.events, FLOW_KIND, recipients=recipients, guard=guard
        )
        reference_refusals = tuple(guard.refusals[mark:])
        if staged or plan.suppression or plan.privacy:
            store.stage(staged, plan.suppression, plan.privacy)
        # The records held back depend on the flow release just staged (see
        # held_back_records): a worker starts reading only once it is committed.
        for part in parts:
            part.send_guard(guard.normalised_values)
        if parts:
            records = _finish_parts(store, factory, keys, guard, parts, now, after_chunk)
        else:
            stream = _encounter_stream(store, factory, keys, guard, now)
            for chunk in stream.chunks():
                store.stage(chunk)
                if after_chunk is not None:
                    after_chunk()
            records = stream.plan()
    plan = dataclasses.replace(
        plan,
        refused=plan.refused + len(reference_refusals) + records.refused,
        refusals=plan.refusals + reference_refusals + records.refusals,
        encounters=records,
        staged=len(staged) + records.staged,
    )
    return plan, reference


def _finish_parts(
    store: NodeStore,
    factory: EventFactory,
    keys: encounters.EncounterKeys,
    guard: EgressGuard,
    parts: list[StagerProcess],
    now: datetime,
    after_chunk: Callable[[], None] | None,
) -> EncounterPlan:
    """Wait for the stagers of every record-id range, then withdraw what no
    stored record produces any more (only the whole picture shows that)."""
    results = [part.finish(after_chunk) for part in parts]
    held = held_back_records(store, factory.policy, encounters.gazetteer(factory.policy.country))
    withdrawals = encounter_withdrawals(
        store,
        factory,
        pseudonym_key=keys.pseudonym_key,
        guard=guard,
        refused_subjects=[s for r in results for s in r.refused_subjects],
        now=now,
        held=held,
    )
    store.stage(withdrawals)
    refusals = tuple(Refusal(**d) for r in results for d in r.refused)
    return EncounterPlan(
        records=sum(r.records for r in results),
        new=sum(r.new for r in results),
        revised=sum(r.revised for r in results),
        withdrawn=len(withdrawals),
        refused=len(refusals),
        refusals=refusals,
        linkage_tokens=factory.policy.exchanges.encounter_records.linkage_tokens
        and keys.linker is not None,
        held_back=len(held),
    )


def _intelligence_recipients(home: Home, policy: Policy) -> dict[str, X25519PublicKey]:
    """Who this node's intelligence reports are sealed to, from its manifest."""
    rules = policy.exchange("IntelligenceReport")
    return trust.restricted_recipients(home, rules.audiences) if rules.shared else {}
