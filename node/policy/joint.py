"""The joint model of releases under several policy shapes: joint atoms (a
record's key under every shape involved) and the facts every release of every
shape tells about them (``JointModel``), linked from a node's records and its
ledger (``link_shapes``). What is done with it is ``node.policy.shapes``."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from node.policy.atoms import AtomKey, FlowInput, Shape, atom_of, cell_dimensions
from node.policy.attacker import protection_level, published_range
from node.policy.audit import LinearModel
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.foreign import rules_of_shape
from node.policy.ledger import CellMembers, ForeignBlock, PastRelease, shape_of

#: A variable of the joint model (a tagged tuple; see ``JointModel``).
Var = tuple[Hashable, ...]


@dataclass
class Target:
    level: int
    describe: dict[str, Any]


@dataclass
class Step:
    """One release on the timeline: its rules, its counts and its cells."""

    rules: FlowStatisticsRules
    position: int  # which key of a joint atom is this shape's (-1: the current shape)
    atoms: Mapping[AtomKey, int]
    cells: tuple[CellMembers, ...]
    describe: dict[str, Any]


#: (atom of the current shape, atom of each older shape) of a joint count.
JointKey = tuple[AtomKey, tuple[AtomKey, ...]]


class JointModel:
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
        steps: list[Step],
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
        now_step = Step(rules, -1, self.now, (), {"shape": "new", "block": None, "release": "now"})
        self.timeline = [*steps, now_step]
        self.members: dict[tuple[int, AtomKey], list[Var]] = defaultdict(list)
        chains: dict[JointKey, list[int]] = defaultdict(list)
        for r, step in enumerate(self.timeline):
            for j in joint:
                atom = j[0] if step.position < 0 else j[1][step.position]
                if atom in step.atoms:
                    self.members[(r, atom)].append(("J", r, j))
                    chains[j].append(r)
        self.targets: dict[Var, Target] = {}
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
            self.targets[var] = Target(
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

    def _release(self, r: int, step: Step) -> None:
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
            self.targets[sum_var] = Target(
                level, step.describe | {"atom": key, "rules": rules, "table": True}
            )
        alone = {a for _lv, m in step.cells if len(m) == 1 for a in m}
        for atom, n in step.atoms.items():
            if n >= rules.min_cell_size or (r != self.now_index and atom in alone):
                continue
            var: Var = ("T", r, atom)
            self._static.append(({var: 1.0} | dict.fromkeys(self._sum(r, [atom]), -1.0), 0.0, 0.0))
            if r != self.now_index:
                self.targets[var] = Target(level, step.describe | {"atom": atom, "rules": rules})

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

    def current_targets(self, cells: Mapping[str, list[CellMembers]]) -> dict[Var, Target]:
        out = dict(self.targets)
        alone = {a for ms in cells.values() for _lv, m in ms if len(m) == 1 for a in m}
        level = protection_level(self.rules)
        for atom, n in self.now.items():
            if atom not in alone and n < self.rules.min_cell_size:
                out[("T", self.now_index, atom)] = Target(
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


def describe_target(target: Target, low: float, high: float) -> dict[str, Any]:
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
class Linked:
    """The joint model of the blocks of the current shape that an older
    shape's releases overlap, and what links them."""

    model: JointModel
    #: blocks of the current shape in the model
    linked: set[str]
    #: block of the current shape -> the foreign blocks (indices) it overlaps
    overlaps: dict[str, set[int]]
    #: the foreign blocks (indices) any linked block overlaps
    used: list[int]


def link_shapes(
    rows: Iterable[FlowInput],
    rules: FlowStatisticsRules,
    foreign: list[ForeignBlock],
    history_of: Callable[[str], tuple[PastRelease, ...]],
) -> Linked:
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
    steps: list[Step] = []
    for i in sorted(used, key=lambda i: (foreign[i].era, foreign[i].shape, foreign[i].block)):
        fb = foreign[i]
        for t, past in enumerate(fb.releases):
            steps.append(
                Step(
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
                Step(
                    rules,
                    -1,
                    past.atoms,
                    past.cells,
                    {"shape": "new", "block": block, "release": t + 1},
                )
            )
    return Linked(JointModel(rules, steps, joint, partial), linked, overlaps, used)
