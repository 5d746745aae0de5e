"""Secondary suppression: hide more published cells of a block's release
until the attacker's model of every audience leaves every hidden count an
interval at least the protection level wide (``protect``)."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping

from node.policy.atoms import AtomKey, Shape
from node.policy.attacker import FLOWS_ONLY, AttackerModel, BlockAudit, Var, protection_level
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.knowledge import attacker_model
from node.policy.ledger import CellMembers, KnownSum, PastRelease

log = logging.getLogger("corredor.policy")


def protect(
    atoms: dict[AtomKey, int],
    published: list[CellMembers],
    rules: FlowStatisticsRules,
    shape: Shape,
    history: tuple[PastRelease, ...],
    known: Mapping[str, tuple[KnownSum, ...]],
) -> tuple[list[CellMembers], BlockAudit]:
    """Hide more published cells until, for every audience, every hidden count
    of this and every earlier release of the block keeps an interval at least
    the protection level wide (or as wide as the earlier releases and the public
    margins alone leave it: hiding now cannot widen that).

    Rule: take the narrowest failing interval; among the published cells of this
    release linked to it, hide the smallest (by count) that widens it, trying
    the four smallest in turn; if none does, hide the smallest. Repeat."""
    level = protection_level(rules)
    audiences = [FLOWS_ONLY, *sorted(a for a in known if a != FLOWS_ONLY)]
    current = list(published)
    changed = True
    audits: dict[str, BlockAudit] = {}
    while changed:
        changed = False
        for audience in audiences:
            current, hid, audits[audience] = _protect_for(
                atoms, current, rules, shape, history, known, audience, level
            )
            changed |= hid and len(audiences) > 1
    return current, _merge(audits)


def _summary(
    model: AttackerModel,
    widths: Mapping[Var, float],
    level: int,
    need: Callable[[Var], float],
) -> BlockAudit:
    if not widths:
        return BlockAudit(None, 0, 0, True)
    narrow = min(widths, key=lambda v: (widths[v], v))
    protected = sum(1 for w in widths.values() if w >= level)
    unavoidable = sum(1 for v, w in widths.items() if w < level and w >= need(v))
    return BlockAudit(
        (narrow, model.interval(narrow)),
        protected + unavoidable,
        len(widths),
        True,
        unavoidable,
    )


def _merge(audits: Mapping[str, BlockAudit]) -> BlockAudit:
    first = audits[FLOWS_ONLY]
    narrowest = min(
        (a.narrowest for a in audits.values() if a.narrowest is not None),
        key=lambda n: n[1].width,
        default=None,
    )
    return BlockAudit(
        narrowest,
        first.protected,
        first.hidden,
        all(a.passes for a in audits.values()),
        first.unavoidable,
    )


def _protect_for(
    atoms: dict[AtomKey, int],
    published: list[CellMembers],
    rules: FlowStatisticsRules,
    shape: Shape,
    history: tuple[PastRelease, ...],
    known: Mapping[str, tuple[KnownSum, ...]],
    audience: str,
    level: int,
) -> tuple[list[CellMembers], bool, BlockAudit]:
    t_now = len(history)
    current = list(published)
    base_release = PastRelease(atoms, (), dict(known))
    baseline_model = attacker_model((*history, base_release), rules, shape, audience)
    floor: dict[Var, float] = {}

    def need(v: Var) -> float:
        if v not in floor:
            floor[v] = min(level, baseline_model.interval(v).width)
        return floor[v]

    order: dict[CellMembers, tuple[int, int, list[AtomKey]]] = {}

    def smallest(c: CellMembers) -> tuple[int, int, list[AtomKey]]:
        found = order.get(c)
        if found is None:
            found = order[c] = (sum(atoms[a] for a in c[1]), c[0], sorted(c[1]))
        return found

    hid_any = False
    # built once: each cell hidden is taken out of it in place (``hide``)
    model = attacker_model(
        (*history, PastRelease(atoms, tuple(current), dict(known))), rules, shape, audience
    )
    widths: dict[Var, float] = {}
    # Hiding a cell only takes a fact away, so every interval can only widen: a
    # width measured on an earlier model is a lower bound of the width now.
    # ``fresh`` holds the widths measured on the current model. The narrowest
    # failing count is found by measuring again the lowest stale one until the
    # lowest is fresh: the same target as measuring every width again, since a
    # fresh width below every stale lower bound is below every width.
    fresh: set[Var] = set()

    def fails(v: Var) -> bool:
        return widths[v] < level and widths[v] < need(v)

    # Hiding takes no count in or out of the targets (a published cell is at
    # or above the minimum), and measuring a count changes its width only:
    # the failing ones are found once and kept in order of width.
    targets = model.targets
    for v in targets:
        widths[v] = model.width_bound(v, level)
        fresh.add(v)
    failing = [(widths[v], v) for v in targets if fails(v)]
    heapq.heapify(failing)
    while True:
        target: Var | None = None
        while failing:
            _, lowest = heapq.heappop(failing)
            if lowest in fresh:
                target = lowest
                break
            widths[lowest] = model.width_bound(lowest, level)
            fresh.add(lowest)
            if fails(lowest):
                heapq.heappush(failing, (widths[lowest], lowest))
        if target is None:
            # counts pinned by what this release cannot hide: measured now
            for v in targets:
                if v not in fresh and widths[v] < level:
                    widths[v] = model.width_bound(v, level)
            return current, hid_any, _summary(model, widths, level, need)
        reach = model.reach(target)
        candidates = sorted(
            (c for c in current if model.counts_in(reach, t_now, c[1])), key=smallest
        )
        if not candidates:
            # Only earlier releases, margins and other exchanges reach it:
            # nothing this release hides changes that (need() said otherwise,
            # which would be a solver inconsistency). Say so without values.
            log.warning("a hidden count of block period %s stays narrow", target[1][0])
            floor[target] = widths[target]
            continue
        candidates = _complement_order(model.members_of(target), model.level_of(target), candidates)
        chosen = _choose(model, target, candidates[:_TRIALS])
        current = [c for c in current if c is not chosen]
        hid_any = True
        model.hide(chosen)
        heapq.heappush(failing, (widths[target], target))  # failing until measured again
        # table cells are not atoms of ``reach``: their widths are stale too
        fresh = {
            v for v in fresh if v not in model.sums and not model.counts_in(reach, v[0], (v[1],))
        }


def _choose(model: AttackerModel, target: Var, candidates: list[CellMembers]) -> CellMembers:
    """The first of ``candidates`` whose hiding widens ``target``'s interval in
    the linear relaxation of ``model`` (the first of all when none does). Only
    a choice: the release is checked by the exact integer solve on the model
    after each hiding (``AttackerModel.hide``: the model built again without
    the cell), so a poor choice hides more cells, never lets a narrow one out."""
    base, binding = model.relaxed_binding(target)
    for candidate in candidates:
        # a fact with no dual value at the optima cannot move them
        if model.cell_rows[candidate] not in binding:
            continue
        if model.relaxed_width(target, candidate) > base + 1e-6:
            return candidate
    return candidates[0]


#: How many cells, best first, are tried for the one that widens a narrow count
#: (when none does, the first is hidden).
_TRIALS = 40


def _complement_order(
    target: frozenset[AtomKey], level: int, candidates: list[CellMembers]
) -> list[CellMembers]:
    """The published cells to try hiding for a narrow ``target`` (its atoms and
    its table's level), best first. A count is pinned through the published
    cells that overlap it (its parents: a nationality's total, the national
    total, a coarsened month): hiding a sibling, a cell apart from the target
    that overlaps one of its parents, is what widens it, preferably a sibling
    in the target's own table (another nationality's total, or the same
    nationality's in another week; another detail cell beside a detail cell).
    Then the other siblings, then the parents themselves, then whatever else
    is linked; smallest first within each."""
    parents = [c[1] for c in candidates if c[1] & target]
    near: set[AtomKey] = set().union(*parents) if parents else set()

    def rank(c: CellMembers) -> int:
        sibling = not (c[1] & target) and bool(c[1] & near)
        if sibling and (c[0] == level or (c[0] >= 0 and level >= 0)):
            return 0
        if sibling:
            return 1
        if c[1] & target:
            return 2
        return 3

    return sorted(candidates, key=rank)  # stable: smallest first within a rank
