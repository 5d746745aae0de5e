"""The attacker's model of one block: what an audience knows of its counts as
a linear programme over classes of interchangeable atoms, the intervals it
leaves each hidden count, and the audit's verdict (``BlockAudit``). It is built
from a block's releases by ``node.policy.knowledge``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from node.policy.atoms import AtomKey, round_count
from node.policy.audit import LinearModel
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.intervals import Interval
from node.policy.ledger import CellMembers
from node.policy.relaxation import Relaxation

#: (release index, atom): the count of one atom at one release.
Var = tuple[int, AtomKey]

#: The audience of the flows that receives nothing else.
FLOWS_ONLY = ""


def protection_level(rules: FlowStatisticsRules) -> int:
    """The width every hidden count's feasible interval must keep."""
    return rules.protection if rules.protection is not None else rules.min_cell_size


def published_range(count: int, rules: FlowStatisticsRules) -> tuple[int, int]:
    """What a reader knows of a published cell's true count from its value."""
    base = rules.rounding
    shown = round_count(count, base, rules.min_cell_size)
    if base <= 1:
        return shown, shown
    low = max(shown - base // 2, rules.min_cell_size)
    return low, shown + base - base // 2 - 1


@dataclass(frozen=True)
class BlockAudit:
    """What the attacker's model found for one block: the narrowest interval of
    a hidden count (None when nothing is hidden) and how many hidden counts keep
    the protection level."""

    narrowest: tuple[Var, Interval] | None
    protected: int
    hidden: int
    passes: bool
    #: Hidden counts the history and margins alone pin tighter than the level.
    unavoidable: int = 0


class AttackerModel:
    """What one audience knows of one block's counts (see ``attacker_model``).

    Atoms that sit in the same facts in every release are interchangeable: an
    attacker cannot tell them apart, and moving the class's count from one
    member to another (in every release at once) keeps every fact true, sums
    of growing counts growing. So the programme has one unknown per class and
    release, and a member of a class of two or more ranges over [0, max of
    the class's count]; a class of one over [min, max] of its count.

    ``hide`` takes a published cell of the last release out of the model
    without building it again: its fact is dropped, and the classes whose
    atoms now sit in the same facts (they differed by that cell only) count
    as one, their unknowns summed. A model with the classes split finer is
    the same model: every fact holds all of such a group's unknowns or none,
    so any value of the group's sum can be put on one of them (integral when
    the sum is), and the range of each sum, the LP's and the integer one, is
    what the model built afresh would find for its one unknown."""

    def __init__(
        self,
        model: LinearModel[tuple[int, int]],
        targets: set[Var],
        class_of: dict[AtomKey, int],
        sizes: dict[int, int],
        truth: dict[Var, int],
        sums: Mapping[Var, frozenset[AtomKey]] | None = None,
        sum_levels: Mapping[Var, int] | None = None,
        cell_rows: Mapping[CellMembers, int] | None = None,
        signatures: Mapping[int, tuple[Any, ...]] | None = None,
        cell_facts: Mapping[CellMembers, int] | None = None,
    ) -> None:
        self.model = model
        #: The fact of the model each published cell of the last release is.
        self.cell_rows = dict(cell_rows or {})
        self._relaxation: Relaxation[tuple[int, int]] | None = None
        self.targets = targets
        self.class_of = class_of
        self.sizes = sizes
        self.truth = truth
        #: Sensitive table cells among the targets: (release, key) -> its atoms.
        #: Every class lies wholly inside or outside each of them.
        self.sums = dict(sums or {})
        self.sum_levels = dict(sum_levels or {})
        #: each class's signature (the facts its atoms are in, by release) and
        #: each published cell's index among the last release's facts
        self._signature = dict(signatures or {})
        self._cell_facts = dict(cell_facts or {})
        #: the classes that count as one since cells were hidden, by the
        #: lowest of them (a class alone is not listed)
        self._group: dict[int, list[int]] = {}
        self._by_signature: dict[tuple[Any, ...], list[int]] | None = None
        #: the unknowns of each group, as pairs (for ``component``)
        self._links: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self._cache: dict[tuple[int, int], Interval] = {}
        self._sum_cache: dict[Var, Interval] = {}
        self._releases = 1 + max((t for t, _ in truth), default=0)
        #: the true count of each (release, class): a feasible point of the model
        self._true: dict[tuple[int, int], int] = defaultdict(int)
        for (t, a), n in truth.items():
            self._true[(t, class_of[a])] += n

    def _key(self, v: Var) -> tuple[int, int]:
        return (v[0], self.class_of[v[1]])

    def _keys(self, v: Var) -> list[tuple[int, int]]:
        """The unknowns whose sum is atom ``v``'s class's count, the lowest first."""
        t, c = self._key(v)
        group = self._group.get(c)
        return [(t, c)] if group is None else [(t, d) for d in group]

    def hide(self, cell: CellMembers) -> None:
        """The model as if ``cell``, a published cell of the last release, had
        been hidden: what building it again without the cell finds (see the
        class docstring). The targets stay: a published cell is at or above
        the minimum, so hiding it makes no count sensitive."""
        row = self.cell_rows.pop(cell)
        index = self._cell_facts.pop(cell)
        self.model.drop(row)
        if self._relaxation is not None:
            self._relaxation.drop(row)
        if self._by_signature is None:
            self._by_signature = {sig: [c] for c, sig in self._signature.items()}
        touched: list[tuple[Any, ...]] = []
        for c in {self.class_of[a] for a in cell[1]}:
            old = self._signature[c]
            *earlier, (rows, grew, inside) = old
            new = (*earlier, (tuple(i for i in rows if i != index), grew, inside))
            self._signature[c] = new
            self._by_signature[old].remove(c)
            self._by_signature.setdefault(new, []).append(c)
            touched += [old, new]
        for sig in touched:
            classes = self._by_signature.get(sig)
            if not classes:
                self._by_signature.pop(sig, None)
                continue
            classes.sort()
            for c in classes:
                if len(classes) > 1:
                    self._group[c] = classes
                else:
                    self._group.pop(c, None)
        self._links = [
            ((t, group[0]), (t, c))
            for c, group in self._group.items()
            if c != group[0]
            for t in range(self._releases)
        ]
        self._cache.clear()
        self._sum_cache.clear()

    def members_of(self, v: Var) -> frozenset[AtomKey]:
        """The atoms a target counts: itself, or a table cell's."""
        return self.sums.get(v, frozenset({v[1]}))

    def level_of(self, v: Var) -> int:
        """The cell level a target belongs to: 0 for an atom, a table's below 0."""
        return self.sum_levels.get(v, 0)

    def _sum_keys(self, v: Var) -> list[tuple[int, int]]:
        return sorted({(v[0], self.class_of[a]) for a in self.sums[v]})

    def interval(self, v: Var) -> Interval:
        if v in self.sums:
            found = self._sum_cache.get(v)
            if found is None:
                found = self.model.sum_interval(self._sum_keys(v))
                self._sum_cache[v] = found
            return found
        keys = self._keys(v)
        key = keys[0]
        cached = self._cache.get(key)
        if cached is None:
            if len(keys) > 1:
                cached = Interval(0.0, self.model.sum_interval(keys).high)
            elif self.sizes[key[1]] == 1:
                cached = self.model.interval(key)
            else:
                cached = Interval(0.0, self.model.class_interval([key]).high)
            self._cache[key] = cached
        return cached

    def width_bound(self, v: Var, level: float) -> float:
        """The width of ``v``'s interval, or a lower bound of it that is at
        least ``level`` (the minimum lies at or below the true count, so a
        maximum ``level`` above it settles the question with one programme)."""
        if v in self.sums:
            return self.interval(v).width
        keys = self._keys(v)
        key = keys[0]
        cached = self._cache.get(key)
        if cached is not None:
            return cached.width
        if len(keys) > 1:
            true = sum(self._true[k] for k in keys)
            return true if true >= level else self.interval(v).width
        # the true counts and every integer point the solver met are feasible
        # points: the range of values seen lies inside the interval
        true = self._true[key]
        seen_lo, seen_hi = self.model.seen_range(key)
        if self.sizes[key[1]] > 1:
            if max(seen_hi, true) >= level:
                return max(seen_hi, true)  # the interval is [0, max]
            return self.interval(v).width
        spread = max(seen_hi, true) - min(seen_lo, true)
        if spread >= level:
            return spread
        high = -self.model.minimum({key: -1.0})
        if high - true >= level:
            return high - true
        return self.interval(v).width

    def _relaxed(self, v: Var) -> tuple[Relaxation[tuple[int, int]], list[tuple[int, int]], bool]:
        """The relaxation (built on first use), ``v``'s unknowns in it, and
        whether its range is measured from zero (a class of several atoms)."""
        if self._relaxation is None:
            self._relaxation = self.model.relaxation()
        if v in self.sums:
            return self._relaxation, list(self._sum_keys(v)), False
        keys = self._keys(v)
        return self._relaxation, keys, len(keys) > 1 or self.sizes[keys[0][1]] > 1

    def relaxed_binding(self, v: Var) -> tuple[float, set[int]]:
        """``relaxed_width(v)`` and the facts (``cell_rows`` values) whose
        dropping may widen it: those with a dual value at its optima."""
        relaxation, keys, from_zero = self._relaxed(v)
        return relaxation.binding(keys, from_zero=from_zero)

    def relaxed_width(self, v: Var, without: CellMembers | None = None) -> float:
        """The width of ``v``'s interval in the model's linear relaxation, with
        the published cell ``without`` of the last release taken out (a trial:
        what hiding it would leave; the classes are not formed again). Only
        for choosing what to hide: the check is ``width_bound``'s."""
        relaxation, keys, from_zero = self._relaxed(v)
        row = None if without is None else self.cell_rows[without]
        return relaxation.width(keys, from_zero=from_zero, without=row)

    def reach(self, v: Var) -> frozenset[tuple[int, int]]:
        """The unknowns linked to target ``v`` through the model's facts."""
        links = self._links
        if v not in self.sums:
            return self.model.component(self._key(v), links)
        keys: frozenset[tuple[int, int]] = frozenset()
        for k in self._sum_keys(v):
            if k not in keys:
                keys |= self.model.component(k, links)
        return keys

    def counts_in(self, keys: frozenset[tuple[int, int]], t: int, atoms: Iterable[AtomKey]) -> bool:
        """Whether any of ``atoms``' counts at release ``t`` is one of ``keys``."""
        return any((t, self.class_of[a]) in keys for a in atoms)

    def component(self, v: Var) -> set[Var]:
        """The counts (release, atom) linked to target ``v``."""
        keys = self.reach(v)
        return {(t, a) for (t, a) in self.truth if (t, self.class_of[a]) in keys}
