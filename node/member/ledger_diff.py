"""What changed since the last publish, kind by kind, against the ledger.

New subjects are revision 1, changed ones get the next revision, subjects that
can no longer be published are withdrawn; every event passes the egress guard
first (built here once per publish run: the node's identifying values and the
fields the policy lets each kind carry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node.member.event_factory import ENCOUNTER_KIND, FLOW_KIND, EventFactory, EventSpec
from node.policy.guard import EgressGuard, Refusal
from node.policy.model import Policy
from node.policy.records import allowed_fields
from node.store.node_store import NodeStore, StagedEvent


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def allowed_by_kind(policy: Policy, *, linkage: bool = False) -> dict[str, frozenset[str]]:
    """The body fields the policy lets each kind carry."""
    return {
        FLOW_KIND: policy.exchanges.flow_statistics.output_fields(),
        ENCOUNTER_KIND: allowed_fields(policy.exchanges.encounter_records, linkage),
    }


def egress_guard(store: NodeStore, policy: Policy, *, linkage: bool = False) -> EgressGuard:
    """The guard for one publish run: the node's identifying values, normalised
    once, and the fields the policy allows per kind."""
    return EgressGuard(store.identifying_values(), allowed_by_kind(policy, linkage=linkage))


@dataclass
class LedgerDiff:
    """One kind's diff against its ledger: the events built and what they count."""

    events: list[StagedEvent] = field(default_factory=list)
    new: int = 0
    revised: int = 0
    withdrawn: int = 0
    refused: list[Refusal] = field(default_factory=list)
    #: Subjects the guard refused (a refused subject published before is withdrawn).
    refused_subjects: list[str] = field(default_factory=list)


def diff_stream(
    kind: str,
    candidates: Iterable[tuple[str, dict[str, Any]]],
    ledger: Mapping[str, tuple[int, str | None]],
    guard: EgressGuard,
    tally: LedgerDiff,
    *,
    withdraw: bool = True,
) -> Iterator[EventSpec]:
    """New subjects at revision 1, changed ones at the next revision, vanished
    ones withdrawn (once every candidate is seen, unless ``withdraw`` is off
    because the candidates are only part of the kind); every event through the
    egress guard first. Counts go to ``tally`` as the stream is read."""
    current: set[str] = set()
    for subject, body in candidates:
        refusal = guard.problem(kind, subject, body)
        if refusal is not None:
            guard.admit(kind, subject, body)  # logs it, without the value
            tally.refused.append(refusal)
            tally.refused_subjects.append(subject)
            continue
        current.add(subject)
        content = _canonical(body)
        previous = ledger.get(subject)
        if previous is not None and previous[1] == content:
            continue
        if previous is None:
            tally.new += 1
            yield subject, 1, body, content
        else:
            tally.revised += 1
            yield subject, previous[0] + 1, body, content
    if withdraw:
        yield from ledger_withdrawals(kind, current, ledger, guard, tally)


def ledger_withdrawals(
    kind: str,
    current: set[str],
    ledger: Mapping[str, tuple[int, str | None]],
    guard: EgressGuard,
    tally: LedgerDiff,
) -> Iterator[EventSpec]:
    """A withdrawal for every live subject of the ledger no longer current."""
    for subject, (last_revision, last_content) in sorted(ledger.items()):
        if subject not in current and last_content is not None:
            if not guard.admit(kind, subject, None):
                continue
            tally.withdrawn += 1
            yield subject, last_revision + 1, None, None


def diff_against_ledger(
    kind: str,
    candidates: list[tuple[str, dict[str, Any]]],
    ledger: Mapping[str, tuple[int, str | None]],
    factory: EventFactory,
    guard: EgressGuard,
    now: datetime,
) -> LedgerDiff:
    """Every event of the diff, built (see ``diff_stream``)."""
    out = LedgerDiff()
    out.events = factory.build_many(
        kind, list(diff_stream(kind, candidates, ledger, guard, out)), now
    )
    return out
