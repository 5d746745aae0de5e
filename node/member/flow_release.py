"""The flow statistics a publish lets out: the release planned, then its events.

``plan_flow_release`` asks the release engine (``node.policy.release``) what
the flow-statistics rules publish and hide now, against the last release;
``prepare_flow_events`` turns the published cells into the events that bring
the topic up to date (``node.member.ledger_diff``), each through the egress
guard, with the suppression or privacy ledger to stage beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from node.member.event_factory import FLOW_KIND, EventFactory
from node.member.ledger_diff import diff_against_ledger, egress_guard
from node.member.record_release import EncounterPlan
from node.policy import dp_budget
from node.policy.atoms import FlowCell
from node.policy.guard import EgressGuard, Refusal
from node.policy.ledger import BlockLedger
from node.policy.model import Policy
from node.policy.release import FlowRelease, release_flows
from node.store.node_store import NodeStore, PrivacyStaging, StagedEvent

_PERIOD_TYPES = {"iso_week": "ISO_WEEK", "month": "MONTH", "quarter": "QUARTER"}


@dataclass(frozen=True)
class PublishPlan:
    """What one publish run would send, before anything is written."""

    events: list[StagedEvent]
    cells: int
    published_cells: int
    suppressed_cells: int
    new: int
    revised: int
    withdrawn: int
    coarsened_cells: int = 0
    secondary_suppressed: int = 0
    refused: int = 0
    refusals: tuple[Refusal, ...] = ()
    #: (kind, block) -> suppression ledger entry, staged with the events.
    suppression: Mapping[tuple[str, str], str] = field(default_factory=dict)
    release: FlowRelease | None = None
    #: The encounter records staged with this plan (set by a publish).
    encounters: EncounterPlan | None = None
    #: Noisy trees and privacy budget spent, staged with the events
    #: (method: differential_privacy); None under suppression.
    privacy: PrivacyStaging | None = None
    #: Every event a publish staged: statistics after holds, reference items
    #: and encounter records (set by a publish; ``events`` holds only the first).
    staged: int = 0


def flow_body(cell: FlowCell, country: str, policy: Policy) -> dict[str, Any]:
    dims = dict(cell.dimensions)
    return {
        "reporting_country": country,
        "period": cell.period,
        "period_type": _PERIOD_TYPES[cell.period_type],
        "nationality": dims.get("nationality"),
        "nationality_region": dims.get("nationality_region"),
        "sex": dims.get("sex"),
        "age_band": dims.get("age_band"),
        "previous_country": dims.get("previous_country"),
        "count": cell.count,
        "obs_status": "E" if cell.estimated else "A",
    } | _noise_fields(cell)


def _noise_fields(cell: FlowCell) -> dict[str, Any]:
    """FlowStatistic v2's fields of a noisy cell (obs_status N); none for an
    exact or rounded one, whose body stays as v1 wrote it (same content, so no
    revision is sent for it on upgrade)."""
    if cell.ci95 is None:
        return {}
    return {
        "obs_status": "N",
        "ci95_low": cell.ci95[0],
        "ci95_high": cell.ci95[1],
        "noise_mechanism": "discrete_laplace",
        "noise_scale": cell.noise_scale,
        "epsilon": cell.epsilon,
    }


def plan_flow_release(store: NodeStore, policy: Policy, today: date | None = None) -> FlowRelease:
    """What the flow-statistics rules publish and hide now, against the last release."""
    rules = policy.exchanges.flow_statistics
    if rules.method == "differential_privacy":
        states = store.privacy_states(dp_budget.EXCHANGE)
        return release_flows(store.iter_flow_inputs(), rules, privacy_states=states, today=today)
    ledger = {
        block: BlockLedger.from_json(entry)
        for block, entry in store.suppression_ledger(FLOW_KIND).items()
    }
    return release_flows(store.iter_flow_inputs(), rules, ledger)


def privacy_staging(store: NodeStore, policy: Policy, release: FlowRelease) -> PrivacyStaging:
    """What a noisy release writes to the privacy ledger, once the budget of
    every audience is checked (``dp_budget.PrivacyBudgetExceeded`` otherwise)."""
    assert release.private is not None
    rules = policy.exchanges.flow_statistics
    new = dp_budget.check_budget(
        rules, release.private.spends, store.privacy_charged(dp_budget.EXCHANGE)
    )
    return PrivacyStaging(
        dp_budget.EXCHANGE,
        dict(release.private.states),
        [(s.audience, s.period, s.measurement, s.epsilon) for s in new],
    )


def prepare_flow_events(
    store: NodeStore,
    factory: EventFactory,
    now: datetime | None = None,
    *,
    guard: EgressGuard | None = None,
) -> PublishPlan:
    """Plan the flow-statistic events that bring the topic up to date: cells the
    policy publishes after coarsening, primary and secondary suppression and
    rounding, each through the egress guard."""
    now = now or datetime.now(UTC)
    policy = factory.policy
    rules = policy.exchanges.flow_statistics
    country = factory.country
    guard = guard or egress_guard(store, policy)
    ledger = store.ledger(FLOW_KIND)
    if not rules.shared:
        diff = diff_against_ledger(FLOW_KIND, [], ledger, factory, guard, now)
        return PublishPlan(diff.events, 0, 0, 0, 0, 0, diff.withdrawn)
    release = plan_flow_release(store, policy, now.date())
    staging = privacy_staging(store, policy, release) if release.private is not None else None
    candidates = [
        (cell.subject(country), flow_body(cell, country, policy)) for cell in release.cells
    ]
    diff = diff_against_ledger(FLOW_KIND, candidates, ledger, factory, guard, now)
    summary = release.summary()
    return PublishPlan(
        diff.events,
        summary["cells"],
        summary["published_cells"] - len(diff.refused),
        summary["suppressed_cells"],
        diff.new,
        diff.revised,
        diff.withdrawn,
        coarsened_cells=summary["coarsened_cells"],
        secondary_suppressed=summary["secondary_suppressed"],
        refused=len(diff.refused),
        refusals=tuple(diff.refused),
        suppression={
            (FLOW_KIND, block): b.ledger.to_json()
            for block, b in release.blocks.items()
            if b.ledger is not None
        },
        release=release,
        privacy=staging,
    )
