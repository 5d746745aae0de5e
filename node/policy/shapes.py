"""Releases under another policy shape stay in the attacker's model.

A policy's *shape* is what its flow cells depend on besides the counts:
minimum cell size, period, dimensions, ladders and margins. When it changes,
the cells already published under the old shape stay on the topics (withdrawn
ones included), so an audience can combine them with the new ones: a week the
old release coarsened into its month, by sex, is pinned by the new release's
week total (without sex) minus the old release's other weeks of that sex.

The blocks of two shapes do not line up (another period, other dimensions), so
the check works over **joint atoms**: the node recounts its raw records at the
key each record has under *every* shape involved (the current one and each
older one), which is the common refinement of all of them. Then:

- each old-shape release is written over its own atoms at its own time (its
  published cells, its public margins, counts that grow from one release to
  the next), exactly as the ledger holds it;
- the current release is written over the current shape's atoms, each the sum
  of its joint atoms; every release of the current shape before it, likewise;
- an old atom's count at its last release is at most its count now (the sum
  of the joint atoms it covers): records are append-only. The same holds for
  the current shape's earlier releases;
- the sensitive counts are those of every release of every shape (below its
  minimum and not published as a cell of its own), and every old atom's count
  now when it is below the old minimum.

While one of them is narrower than its protection level (and than hiding all
of the current cells would leave it), the engine hides one more cell of the
current release, as ``protect.protect`` does: among the cells linked to the
narrowest failing count, the smallest that widens it (trying the four
smallest), else the smallest. The cells so hidden are reported
(``ShapeCheck.held_back``), and the counts that would have been exposed without
them (``ShapeCheck.exposed``): ``policy diff`` names both.

Unknown to the ledger of an older shape: its rounding base and protection level
(entries written before they were kept); the current policy's are assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from node.policy.atoms import FlowCell, FlowInput, Shape
from node.policy.audit import LinearModel
from node.policy.block import BlockRelease
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.foreign import foreign_blocks
from node.policy.intervals import AuditError
from node.policy.joint import JointModel, Target, Var, describe_target, link_shapes
from node.policy.ledger import BlockLedger, CellMembers, ForeignBlock, PastRelease, shape_of

log = logging.getLogger("corredor.policy")


@dataclass
class ShapeCheck:
    """What the check across shapes found and did in one release."""

    #: Counts that the current release, as first decided, would have left
    #: narrower than their protection level: (description, low, high, level).
    exposed: list[dict[str, Any]] = field(default_factory=list)
    #: Cells of the current release hidden to keep the older releases safe.
    held_back: list[FlowCell] = field(default_factory=list)
    #: How many blocks of older shapes the check read.
    foreign_blocks: int = 0


def protect_across_shapes(
    rows: list[FlowInput],
    rules: FlowStatisticsRules,
    blocks: dict[str, BlockRelease],
    foreign: list[ForeignBlock],
    fresh: set[str],
) -> ShapeCheck:
    """Hide cells of the blocks released now (``fresh``) until no count of
    an older-shape release, nor of this one, is narrower than its protection
    level given every release of every shape; record the foreign blocks each
    block overlaps in its ledger entry. ``blocks`` is changed in place."""
    check = ShapeCheck()
    if not foreign:
        return check

    def history_of(block: str) -> tuple[PastRelease, ...]:
        ledger = blocks[block].ledger if block in blocks else None
        history = ledger.releases() if ledger is not None else ()
        if block in fresh:
            history = history[:-1]  # the last is this release, decided below
        return history

    link = link_shapes(rows, rules, foreign, history_of)
    check.foreign_blocks = len(link.used)
    if not link.used:
        return check
    jm, linked, overlaps = link.model, link.linked, link.overlaps
    shape_now = Shape(rules)
    cells = {b: list(blocks[b].cells) for b in sorted(linked)}
    try:
        _hide_until_safe(jm, cells, fresh, shape_now, check)
    except AuditError:
        # The facts contradict each other: a correction removed records in a
        # way the growth check above did not see. Nothing of the linked blocks
        # released now is sent rather than anything unchecked (no values logged).
        log.warning("the check across policy shapes is inconsistent; linked cells held back")
        for b in sorted(cells):
            if b in fresh:
                for level, members in cells[b]:
                    check.held_back.append(
                        shape_now.cell(
                            level,
                            shape_now.key_at(next(iter(members)), level),
                            sum(jm.now[a] for a in members),
                        )
                    )
                cells[b] = []
    for block in linked:
        _update_block(
            blocks[block],
            cells[block],
            [foreign[i] for i in sorted(overlaps[block])],
            block in fresh,
        )
    check.held_back.sort()
    return check


@dataclass
class ShapeAudit:
    """What the attacker's model across shapes finds in what a node already
    published (``audit_across_shapes``)."""

    #: How many blocks of older shapes the model read.
    foreign_blocks: int = 0
    #: Sensitive counts of every release of every shape in the model.
    hidden: int = 0
    #: Of them, those that keep their level or that the margins alone pin.
    protected: int = 0
    #: The narrowest of them (``policy diff``'s description), None if none.
    narrowest: dict[str, Any] | None = None
    #: Those narrower than their level and than the margins alone leave them.
    failing: list[dict[str, Any]] = field(default_factory=list)
    #: False when the facts contradict each other (a correction removed
    #: records after a release): then nothing could be judged, and it fails.
    consistent: bool = True

    @property
    def passes(self) -> bool:
        return self.consistent and not self.failing


def audit_across_shapes(
    rows: Iterable[FlowInput],
    rules: FlowStatisticsRules,
    ledger: Mapping[str, BlockLedger],
) -> ShapeAudit | None:
    """The attacker's model over every release of every shape in ``ledger``
    (the current shape's and the older ones' its entries carry), on the
    node's records now: each sensitive count's interval against its level.
    A count the margins alone pin as tightly (every release's cells taken out,
    the margins and what counts that grow tell kept) is the country's own
    publication, as in ``knowledge.audit_releases``. Nothing is hidden or changed:
    this is what ``policy audit`` reports for a home whose policy changed shape;
    None when every release in ``ledger`` is of the current shape (``rows`` is
    then not read)."""
    foreign = foreign_blocks(rules, ledger)
    if not foreign:
        return None
    out = ShapeAudit()

    def history_of(block: str) -> tuple[PastRelease, ...]:
        entry = ledger.get(block)
        if entry is None or entry.shape != shape_of(rules):
            return ()  # an entry of an older shape is among the foreign blocks
        return entry.releases()

    link = link_shapes(rows, rules, foreign, history_of)
    out.foreign_blocks = len(link.used)
    if not link.used:
        return out
    jm = link.model
    bare_steps = [replace(step, cells=()) for step in jm.steps]
    joint = jm.joint
    try:
        model = jm.model({})
        bare: LinearModel[Var] | None = None
        narrowest = float("inf")
        for v in sorted(jm.targets, key=repr):
            iv = model.interval(v)
            target = jm.targets[v]
            out.hidden += 1
            described = describe_target(target, iv.low, iv.high)
            if out.narrowest is None or iv.width < narrowest:
                out.narrowest, narrowest = described, iv.width
            if iv.width >= target.level:
                out.protected += 1
                continue
            if bare is None:
                bare = JointModel(rules, bare_steps, joint, jm.partial).model({})
            if bare.interval(v).width <= iv.width:
                out.protected += 1
                continue
            out.failing.append(described)
    except AuditError:
        log.warning("the audit across policy shapes is inconsistent; it cannot pass")
        out.consistent = False
    return out


def _hide_until_safe(
    jm: JointModel,
    cells: dict[str, list[CellMembers]],
    fresh: set[str],
    shape_now: Shape,
    check: ShapeCheck,
) -> None:
    """Hide cells of ``cells`` (of the blocks in ``fresh``) until every target
    keeps its level or what hiding all of them would leave; see the module."""

    def widths_of(
        model: LinearModel[Var],
        targets: Mapping[Var, Target],
        widths: dict[Var, tuple[float, float]],
    ) -> None:
        for v in targets:
            if v not in widths:
                iv = model.interval(v)
                widths[v] = (iv.low, iv.high)

    baseline_cells = {b: ([] if b in fresh else cells[b]) for b in cells}
    base_model = jm.model(baseline_cells, assumed=False)
    base_targets = jm.current_targets(baseline_cells)
    floor: dict[Var, float] = {}

    def need(v: Var, level: int) -> float:
        if v not in floor:
            if v in base_targets:
                iv = base_model.interval(v)
                floor[v] = min(level, iv.high - iv.low)
            else:  # published alone only now: hiding it brings it back
                floor[v] = level
        return floor[v]

    model = jm.model(cells)
    widths: dict[Var, tuple[float, float]] = {}
    first = True
    while True:
        targets = jm.current_targets(cells)
        widths_of(model, targets, widths)
        failing = [
            v
            for v, tg in targets.items()
            if (w := widths[v][1] - widths[v][0]) < tg.level and w < need(v, tg.level)
        ]
        if first:
            check.exposed = [
                describe_target(targets[v], *widths[v]) for v in sorted(failing, key=repr)
            ]
            first = False
        if not failing:
            break
        target = min(failing, key=lambda v: (widths[v][1] - widths[v][0], repr(v)))
        reach = model.component(target)
        candidates = sorted(
            (
                (b, c)
                for b in sorted(cells)
                if b in fresh
                for c in cells[b]
                if any(v in reach for v in jm.cell_vars(c[1]))
            ),
            key=lambda bc: (sum(jm.now[a] for a in bc[1][1]), bc[1][0], sorted(bc[1][1])),
        )
        if not candidates:
            floor[target] = widths[target][1] - widths[target][0]
            continue
        chosen = candidates[0]
        old_width = widths[target][1] - widths[target][0]
        for b, c in candidates[:4]:
            trial = jm.model({k: [x for x in v if x is not c] for k, v in cells.items()})
            iv = trial.interval(target)
            if iv.high - iv.low > old_width:
                chosen = (b, c)
                break
        b, c = chosen
        cells[b] = [x for x in cells[b] if x is not c]
        level, members = c
        check.held_back.append(
            shape_now.cell(
                level, shape_now.key_at(next(iter(members)), level), sum(jm.now[a] for a in members)
            )
        )
        model = jm.model(cells)
        for v in reach:
            widths.pop(v, None)


def _update_block(
    release: BlockRelease, cells: list[CellMembers], overlapping: list[ForeignBlock], fresh: bool
) -> None:
    """Put the cells kept and the foreign blocks read into the block's release
    and its ledger entry."""
    hidden_now = sum(len(m) for _, m in release.cells) - sum(len(m) for _, m in cells)
    release.cells = list(cells)
    release.secondary += hidden_now
    release.coarsened = sum(1 for level, _ in cells if level > 0)
    ledger = release.ledger
    if ledger is None:
        return
    history = ledger.releases()
    if fresh and history:
        last = history[-1]
        history = (*history[:-1], PastRelease(last.atoms, tuple(cells), last.known))
    release.ledger = replace(
        ledger,
        cells=tuple(cells),
        secondary=ledger.secondary + hidden_now,
        history=history,
        foreign=tuple(overlapping),
    )
