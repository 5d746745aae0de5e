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

import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from node.policy.atoms import AtomKey, FlowCell, FlowInput, Shape, atom_of, cell_dimensions
from node.policy.attacker import protection_level, published_range
from node.policy.audit import LinearModel
from node.policy.block import BlockRelease
from node.policy.intervals import AuditError
from node.policy.ledger import (
    BlockLedger,
    CellMembers,
    ForeignBlock,
    Margins,
    PastRelease,
    shape_of,
)
from node.policy.model import FlowStatisticsRules

log = logging.getLogger("corredor.policy")

#: A variable of the joint model (a tagged tuple; see ``_JointModel``).
Var = tuple[Hashable, ...]


def rules_of_shape(
    rules: FlowStatisticsRules,
    shape: tuple[str, ...],
    rounding: int | None = None,
    margins: Margins | None = None,
) -> FlowStatisticsRules:
    """The flow rules a ledger entry was made under (its shape), the rest
    current; ``margins``: the shape's margins exactly, when the entry kept them."""
    if tuple(shape) == shape_of(rules) and rounding in (None, rules.rounding):
        return rules
    minimum, period, dimensions, coarsen, listed_margins, *rest = shape
    names = dimensions.split(",") if dimensions else []
    # the sixth element, "tables:...", lists the tables beside the detail (see
    # ``shape_of``); a shape without it published the detail only
    tables: list[list[str]] | None = None
    if rest:
        listed = rest[0].removeprefix("tables:")
        tables = [names, *([t.split(",") if t else [] for t in listed.split(";")])]
    return rules.model_copy(
        update={
            "min_cell_size": int(minimum),
            "period": period,
            "dimensions": names,
            "coarsen": coarsen.split(",") if coarsen else [],
            # "" is both [] and [[]]: unless the entry kept them exactly, the
            # stricter reading (a public total)
            "margins": [m.split(",") if m else [] for m in listed_margins.split(";")]
            if margins is None or ";".join(",".join(m) for m in margins) != listed_margins
            else [list(m) for m in margins],
            "rounding": rules.rounding if rounding is None else rounding,
            "tables": tables,
        }
    )


def foreign_blocks(
    rules: FlowStatisticsRules, ledger: Mapping[str, BlockLedger]
) -> list[ForeignBlock]:
    """Every block of the ledger released under another shape than ``rules'``,
    and every block of an older shape the entries carry (of any shape: after
    a change and back, the first era's releases are foreign to the second's
    history), once each."""
    shape = shape_of(rules)
    out: dict[str, ForeignBlock] = {}

    def keep(fb: ForeignBlock) -> None:
        out.setdefault(json.dumps(fb.to_data(), sort_keys=True), fb)

    for block, entry in sorted(ledger.items()):
        for fb in entry.foreign:
            keep(fb)
        if entry.shape != shape:
            old = rules_of_shape(rules, entry.shape, margins=entry.margins)
            era = 1 + max((fb.era for fb in entry.foreign), default=0)
            keep(
                ForeignBlock(
                    entry.shape,
                    old.rounding,
                    protection_level(old),
                    block,
                    entry.releases(),
                    era,
                    entry.margins,
                )
            )
    return list(out.values())


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


@dataclass
class _Target:
    level: int
    describe: dict[str, Any]


@dataclass
class _Step:
    """One release on the timeline: its rules, its counts and its cells."""

    rules: FlowStatisticsRules
    position: int  # which key of a joint atom is this shape's (-1: the current shape)
    atoms: Mapping[AtomKey, int]
    cells: tuple[CellMembers, ...]
    describe: dict[str, Any]


#: (atom of the current shape, atom of each older shape) of a joint count.
JointKey = tuple[AtomKey, tuple[AtomKey, ...]]


class _JointModel:
    """The facts an audience has about the joint counts (see the module text).

    The timeline is every release of every shape, oldest first: the older
    shapes' blocks by era (the order of the changes), then the current shape's
    earlier releases, then now. ``("J", r, j)`` is joint count ``j`` at release
    ``r``, for every release whose atoms hold ``j``'s atom of its shape (it
    is 0 elsewhere); ``("T", r, atom)`` is an atom of release ``r``'s shape,
    the sum of its joint counts. A joint count only grows along the timeline."""

    def __init__(
        self,
        rules: FlowStatisticsRules,
        steps: list[_Step],
        joint: Mapping[JointKey, int],
        partial: frozenset[tuple[int, AtomKey]] = frozenset(),
    ) -> None:
        self.rules = rules
        self.steps = steps
        self.partial = partial
        self.now_index = len(steps)
        self.now: dict[AtomKey, int] = defaultdict(int)
        for (atom, _olds), n in joint.items():
            self.now[atom] += n
        self.joint = joint
        self.counts_now: dict[tuple[int, AtomKey], int] = defaultdict(int)
        for (atom, olds), n in joint.items():
            self.counts_now[(-1, atom)] += n
            for s, old in enumerate(olds):
                self.counts_now[(s, old)] += n
        now_step = _Step(rules, -1, self.now, (), {"shape": "new", "block": None, "release": "now"})
        self.timeline = [*steps, now_step]
        self.members: dict[tuple[int, AtomKey], list[Var]] = defaultdict(list)
        chains: dict[JointKey, list[int]] = defaultdict(list)
        for r, step in enumerate(self.timeline):
            for j in joint:
                atom = j[0] if step.position < 0 else j[1][step.position]
                if atom in step.atoms:
                    self.members[(r, atom)].append(("J", r, j))
                    chains[j].append(r)
        self.targets: dict[Var, _Target] = {}
        self._static: list[tuple[dict[Var, float], float, float]] = []
        #: Facts an audience may learn later (an older shape's margins now): in
        #: the model a release is checked with, never in the floor of what
        #: hiding cannot widen (they are not known yet, so nothing is pinned
        #: by them already).
        self._assumed: list[tuple[dict[Var, float], float, float]] = []
        for j, chain in chains.items():
            for a, b in itertools.pairwise(chain):
                if self._grew(a, b, j):
                    self._static.append(({("J", a, j): 1.0, ("J", b, j): -1.0}, -float("inf"), 0.0))
        for r, step in enumerate(self.timeline):
            self._release(r, step)
        # every older shape's atoms now, below that shape's minimum
        older = {st.position: st.rules for st in steps}
        for (position, atom), n in self.counts_now.items():
            old_rules = older.get(position)
            if position < 0 or old_rules is None or n >= old_rules.min_cell_size:
                continue
            var: Var = ("T", self.now_index, (position, atom))
            parts = [("J", self.now_index, j) for j in joint if j[1][position] == atom]
            self._static.append(({var: 1.0} | dict.fromkeys(parts, -1.0), 0.0, 0.0))
            self.targets[var] = _Target(
                protection_level(old_rules),
                {"shape": "old", "block": None, "release": "now", "atom": atom, "rules": old_rules},
            )
        # An older shape's margins stay public now: they are the statistics
        # office's tables, which do not stop with the node's policy, and a
        # return to that shape publishes them again over today's counts (with
        # counts that only grow, they pin what a release in between left
        # open). Only whole margins: one whose atoms lie partly in blocks
        # outside the check is left out (a part of a total is no public fact).
        # (A shape's margins "" read as [[]], the stricter reading, for its own
        # releases; as a later fact it is left out: no margin is as likely.)
        for position, old_rules in older.items():
            if position < 0 or old_rules.margins in ([], [[]]):
                continue
            old_now = {a: n for (p, a), n in self.counts_now.items() if p == position}
            by_old: dict[AtomKey, list[Var]] = defaultdict(list)
            for j in joint:
                by_old[j[1][position]].append(("J", self.now_index, j))
            for group in Shape(old_rules).margin_groups(old_now):
                if any((position, a) in partial for a in group):
                    continue
                total = sum(old_now[a] for a in group)
                members = [v for a in group for v in by_old[a]]
                self._assumed.append((dict.fromkeys(members, 1.0), total, total))

    def _grew(self, a: int, b: int, j: JointKey) -> bool:
        """Whether the atom that holds ``j`` at ``a`` is no larger now (a
        correction that removed a record breaks "counts only grow", and no
        fact false of the data may enter the model)."""
        step = self.timeline[a]
        atom = j[0] if step.position < 0 else j[1][step.position]
        return step.atoms[atom] <= self.counts_now[(step.position, atom)]

    def _sum(self, r: int, atoms: Iterable[AtomKey]) -> list[Var]:
        return [v for a in atoms for v in self.members.get((r, a), ())]

    def _release(self, r: int, step: _Step) -> None:
        rules = step.rules
        level = protection_level(rules)
        for _lv, members in step.cells:
            count = sum(step.atoms[a] for a in members)
            self._static.append(
                (dict.fromkeys(self._sum(r, members), 1.0), *published_range(count, rules))
            )
        shape = Shape(rules)
        for group in shape.margin_groups(step.atoms):
            total = sum(step.atoms[a] for a in group)
            self._static.append((dict.fromkeys(self._sum(r, group), 1.0), total, total))
        # the cells of the other tables below the minimum (never published):
        # sums of atoms, sensitive like an atom (the current release's too)
        for (table, key), table_atoms in sorted(shape.table_cells(step.atoms).items()):
            if sum(step.atoms[a] for a in table_atoms) >= rules.min_cell_size:
                continue
            sum_var: Var = ("S", r, (table, key))
            self._static.append(
                ({sum_var: 1.0} | dict.fromkeys(self._sum(r, table_atoms), -1.0), 0.0, 0.0)
            )
            self.targets[sum_var] = _Target(
                level, step.describe | {"atom": key, "rules": rules, "table": True}
            )
        alone = {a for _lv, m in step.cells if len(m) == 1 for a in m}
        for atom, n in step.atoms.items():
            if n >= rules.min_cell_size or (r != self.now_index and atom in alone):
                continue
            var: Var = ("T", r, atom)
            self._static.append(({var: 1.0} | dict.fromkeys(self._sum(r, [atom]), -1.0), 0.0, 0.0))
            if r != self.now_index:
                self.targets[var] = _Target(level, step.describe | {"atom": atom, "rules": rules})

    # -- the current release -------------------------------------------------------

    def cell_vars(self, members: Iterable[AtomKey]) -> list[Var]:
        return self._sum(self.now_index, members)

    def model(
        self, cells: Mapping[str, list[CellMembers]], assumed: bool = True
    ) -> LinearModel[Var]:
        """The model with ``cells`` published now; ``assumed``: with the facts
        an audience may learn later."""
        model: LinearModel[Var] = LinearModel()
        for coeffs, lo, hi in (*self._static, *(self._assumed if assumed else ())):
            model.add_range(coeffs, lo, hi)
        for members_list in cells.values():
            for _lv, members in members_list:
                count = sum(self.now[a] for a in members)
                model.add_sum_range(
                    self._sum(self.now_index, members), *published_range(count, self.rules)
                )
        return model

    def current_targets(self, cells: Mapping[str, list[CellMembers]]) -> dict[Var, _Target]:
        out = dict(self.targets)
        alone = {a for ms in cells.values() for _lv, m in ms if len(m) == 1 for a in m}
        level = protection_level(self.rules)
        for atom, n in self.now.items():
            if atom not in alone and n < self.rules.min_cell_size:
                out[("T", self.now_index, atom)] = _Target(
                    level,
                    {
                        "shape": "new",
                        "block": None,
                        "release": "now",
                        "atom": atom,
                        "rules": self.rules,
                    },
                )
        return out


def _describe(target: _Target, low: float, high: float) -> dict[str, Any]:
    d = target.describe
    rules: FlowStatisticsRules = d["rules"]
    period, values = d["atom"]
    return {
        "shape": d["shape"],
        "block": d["block"],
        "release": d["release"],
        "period": period,
        # a table cell's carry _T where it sums (nationality_region for a region)
        "dimensions": cell_dimensions(rules.dimensions, values),
        "low": int(low),
        "high": None if high == float("inf") else int(high),
        "protection": target.level,
        "determinable": low == high,
    }


@dataclass
class _Linked:
    """The joint model of the blocks of the current shape that an older
    shape's releases overlap, and what links them."""

    model: _JointModel
    #: blocks of the current shape in the model
    linked: set[str]
    #: block of the current shape -> the foreign blocks (indices) it overlaps
    overlaps: dict[str, set[int]]
    #: the foreign blocks (indices) any linked block overlaps
    used: list[int]


def _link(
    rows: Iterable[FlowInput],
    rules: FlowStatisticsRules,
    foreign: list[ForeignBlock],
    history_of: Callable[[str], tuple[PastRelease, ...]],
) -> _Linked:
    """Count ``rows`` at their joint keys and write every release of the
    older shapes and of the current one (``history_of`` a block) that the
    overlap links into one joint model."""
    shapes = sorted({fb.shape for fb in foreign})
    first_of = {s: next(fb for fb in foreign if fb.shape == s) for s in shapes}
    old_rules = {
        s: rules_of_shape(rules, s, first_of[s].rounding, first_of[s].margins) for s in shapes
    }
    for s in shapes:
        fbs = [fb for fb in foreign if fb.shape == s]
        old_rules[s] = old_rules[s].model_copy(update={"protection": fbs[0].protection})
    shape_now = Shape(rules)
    atom_to_foreign: dict[tuple[int, AtomKey], int] = {}
    for i, fb in enumerate(foreign):
        si = shapes.index(fb.shape)
        for past in fb.releases:
            for old_atom in past.atoms:
                atom_to_foreign.setdefault((si, old_atom), i)
    joint: dict[tuple[AtomKey, tuple[AtomKey, ...]], int] = defaultdict(int)
    overlaps: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        atom = atom_of(row, rules)
        olds = tuple(atom_of(row, old_rules[s]) for s in shapes)
        joint[(atom, olds)] += 1
        for si, old in enumerate(olds):
            hit = atom_to_foreign.get((si, old))
            if hit is not None:
                overlaps[shape_now.block_of(atom)].add(hit)
    used = sorted({i for ids in overlaps.values() for i in ids})
    # only the joint atoms of blocks that overlap an old release take part;
    # every block when an older shape has margins the current one does not
    # publish: a return to that shape publishes them over blocks first released
    # since, and they must not pin what those releases leave open
    linked = set(overlaps)
    current = shape_of(rules)
    if any(s[4] and s[4] != current[4] for s in shapes if s != current):
        linked = {shape_now.block_of(k[0]) for k in joint}
    # (shape, atom) of the older shapes' atoms some of whose records lie outside
    partial = frozenset(
        (si, old)
        for k in joint
        if shape_now.block_of(k[0]) not in linked
        for si, old in enumerate(k[1])
    )
    joint = {k: n for k, n in joint.items() if shape_now.block_of(k[0]) in linked}
    steps: list[_Step] = []
    for i in sorted(used, key=lambda i: (foreign[i].era, foreign[i].shape, foreign[i].block)):
        fb = foreign[i]
        for t, past in enumerate(fb.releases):
            steps.append(
                _Step(
                    old_rules[fb.shape],
                    shapes.index(fb.shape),
                    past.atoms,
                    past.cells,
                    {"shape": "old", "block": fb.block, "release": t + 1},
                )
            )
    for block in sorted(linked):
        for t, past in enumerate(history_of(block)):
            steps.append(
                _Step(
                    rules,
                    -1,
                    past.atoms,
                    past.cells,
                    {"shape": "new", "block": block, "release": t + 1},
                )
            )
    return _Linked(_JointModel(rules, steps, joint, partial), linked, overlaps, used)


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

    link = _link(rows, rules, foreign, history_of)
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
) -> ShapeAudit:
    """The attacker's model over every release of every shape in ``ledger``
    (the current shape's and the older ones' its entries carry), on the
    node's records now: each sensitive count's interval against its level.
    A count the margins alone pin as tightly (every release's cells taken out,
    the margins and what counts that grow tell kept) is the country's own
    publication, as in ``knowledge.audit_releases``. Nothing is hidden or changed:
    this is what ``policy audit`` reports for a home whose policy changed shape."""
    out = ShapeAudit()
    foreign = foreign_blocks(rules, ledger)
    if not foreign:
        return out
    rows = list(rows)

    def history_of(block: str) -> tuple[PastRelease, ...]:
        entry = ledger.get(block)
        if entry is None or entry.shape != shape_of(rules):
            return ()  # an entry of an older shape is among the foreign blocks
        return entry.releases()

    link = _link(rows, rules, foreign, history_of)
    out.foreign_blocks = len(link.used)
    if not link.used:
        return out
    jm = link.model
    bare_steps = [replace(step, cells=()) for step in jm.steps]
    joint = jm.joint
    try:
        model = jm.model({})
        widths = {v: model.interval(v) for v in sorted(jm.targets, key=repr)}
        bare: LinearModel[Var] | None = None
        for v, iv in widths.items():
            target = jm.targets[v]
            out.hidden += 1
            described = _describe(target, iv.low, iv.high)
            if out.narrowest is None or iv.width < _width(out.narrowest):
                out.narrowest = described
            if iv.width >= target.level:
                out.protected += 1
                continue
            if bare is None:
                bare = _JointModel(rules, bare_steps, joint, jm.partial).model({})
            if bare.interval(v).width <= iv.width:
                out.protected += 1
                continue
            out.failing.append(described)
    except AuditError:
        log.warning("the audit across policy shapes is inconsistent; it cannot pass")
        out.consistent = False
    return out


def _width(described: Mapping[str, Any]) -> float:
    high = described["high"]
    return float("inf") if high is None else float(high - described["low"])


def _hide_until_safe(
    jm: _JointModel,
    cells: dict[str, list[CellMembers]],
    fresh: set[str],
    shape_now: Shape,
    check: ShapeCheck,
) -> None:
    """Hide cells of ``cells`` (of the blocks in ``fresh``) until every target
    keeps its level or what hiding all of them would leave; see the module."""

    def widths_of(
        model: LinearModel[Var],
        targets: Mapping[Var, _Target],
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
            check.exposed = [_describe(targets[v], *widths[v]) for v in sorted(failing, key=repr)]
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
