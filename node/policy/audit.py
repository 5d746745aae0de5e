"""The interval audit: how narrowly an outsider can pin every hidden count.

What an audience knows about the hidden counts is written as a linear model:

- one variable per unknown non-negative count (a cell of one release, say);
- ``sum of these variables = a published total`` for every published cell,
  every public margin and every count another exchange implies;
- ``lo <= sum <= hi`` for what is known only within a range (a rounded count,
  the records of a group when some were held back);
- ``x_u <= x_v`` for counts that only grow (the same cell in a later release).

For every hidden variable the audit solves two linear programmes (minimise and
maximise it subject to all of the above) with HiGHS. That is the feasible
interval; a hidden cell is protected when the interval is at least as wide as
the protection level.

Integers. Counts are integers, and an attacker may use that: the integer
interval can be narrower than the LP's. The audit therefore reports the integer
interval: when the LP's optimal point is integral its value is also the integer
optimum (the LP bound is attained by a feasible integer point, and no integer
point can beat the LP); otherwise the bound is solved again as a mixed-integer
programme, so the reported bounds are the exact integer bounds, never wider
than an attacker's.

Speed. Each component is one HiGHS model (``highspy``), built once and solved
again with only the objective changed, so every programme after the first
starts from the previous optimal basis (a few simplex pivots instead of a solve
from scratch); the mixed-integer model of a component is built only when an LP
optimum is fractional. Every integral optimal point found is a feasible integer
point of the model, so the spread of the values a count took over those points
is a lower bound of its interval's width that costs nothing
(``LinearModel.seen_range``; ``node.policy.solver_highs``). ``SOLVER =
"plain"`` solves every programme from scratch with ``scipy.optimize.linprog``
/ ``milp`` as before (``node.policy.solver_plain``), for the benchmarks and for
the tests that compare the two; it is read here, so it is set on this module.

The model knows nothing about flows: cells, sums and bounds only, so linked
tables or other exchanges can be written into it too. Variables fixed by a
single-variable equation are substituted first, and every interval is solved on
the connected component of its variable only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from node.policy.intervals import EPS, INF, AuditError, Interval, Row, V
from node.policy.relaxation import Relaxation
from node.policy.solver_highs import HighsComponent
from node.policy.solver_plain import PlainComponent

#: "fast": one warm-started HiGHS model per component; "plain": every programme
#: from scratch through scipy (the reference the tests and benchmarks compare with).
SOLVER = "fast"


class LinearModel(Generic[V]):
    """Non-negative integer unknowns and linear facts an outsider knows about them."""

    def __init__(self) -> None:
        self._vars: dict[V, tuple[float, float]] = {}
        self._rows: list[Row[V]] = []
        self._prepared: _Prepared[V] | None = None
        self._graph: tuple[list[V], dict[V, int], np.ndarray, np.ndarray] | None = None

    # -- building ------------------------------------------------------------

    def add_var(self, v: V, lo: float = 0.0, hi: float = INF) -> None:
        old = self._vars.get(v)
        if old is not None:
            lo, hi = max(lo, old[0]), min(hi, old[1])
        self._vars[v] = (lo, hi)
        self._prepared = None
        self._graph = None

    def __contains__(self, v: object) -> bool:
        return v in self._vars

    @property
    def variables(self) -> list[V]:
        return list(self._vars)

    def add_range(self, coeffs: Mapping[V, float], lo: float, hi: float) -> None:
        """``lo <= sum(coeff * v) <= hi``; unknown variables are added (>= 0)."""
        for v in coeffs:
            if v not in self._vars:
                self.add_var(v)
        self._rows.append(Row(dict(coeffs), lo, hi))
        self._prepared = None
        self._graph = None

    def add_sum(self, members: Iterable[V], total: float) -> None:
        """The sum of ``members`` is known to be ``total`` (a published cell)."""
        self.add_range(dict.fromkeys(members, 1.0), total, total)

    def add_sum_range(self, members: Iterable[V], lo: float, hi: float) -> None:
        self.add_range(dict.fromkeys(members, 1.0), lo, hi)

    def add_order(self, smaller: V, larger: V) -> None:
        """``smaller <= larger`` (a count that can only grow)."""
        self.add_range({smaller: 1.0, larger: -1.0}, -INF, 0.0)

    def drop(self, row: int) -> None:
        """Forget fact ``row`` (a ``row_count`` index): the model is as if it
        had never been told it, and every other fact keeps its index."""
        had = bool(self._rows[row].coeffs)
        self._rows[row] = Row({}, -INF, INF)
        if had and self._prepared is not None and not self._prepared.drop(row):
            self._prepared = None

    @property
    def row_count(self) -> int:
        """How many facts were added: the index the next one will have."""
        return len(self._rows)

    def relaxation(self) -> Relaxation[V]:
        """The model's linear relaxation as one warm HiGHS model (see ``Relaxation``)."""
        return Relaxation(self._vars, self._rows)

    # -- solving -------------------------------------------------------------

    def _prepare(self) -> _Prepared[V]:
        if self._prepared is None:
            self._prepared = _Prepared(self._vars, self._rows)
        return self._prepared

    def component(self, v: V, links: Iterable[tuple[V, V]] = ()) -> frozenset[V]:
        """The variables linked to ``v`` through the model's facts (before any
        is substituted: a fixed variable still reaches the cells that fixed it),
        and through ``links`` (pairs the caller counts as one: its unknowns
        may split one count)."""
        if self._graph is None:
            names = list(self._vars)
            col = {u: i for i, u in enumerate(names)}
            rows = [i for i, row in enumerate(self._rows) for _ in row.coeffs]
            cols = [col[u] for row in self._rows for u in row.coeffs]
            at = (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))
            self._graph = (names, col, *at)
        names, col, rows_at, cols_at = self._graph
        if v not in col:
            return frozenset({v})
        n = len(names)
        # one graph of unknowns and facts (a dropped fact has none left)
        alive = np.array([bool(row.coeffs) for row in self._rows], dtype=bool)
        keep = alive[rows_at] if rows_at.size else np.zeros(0, dtype=bool)
        pairs = [(col[a], col[b]) for a, b in links if a in col and b in col]
        src = np.concatenate([cols_at[keep], np.array([a for a, _ in pairs], dtype=np.int64)])
        dst = np.concatenate([n + rows_at[keep], np.array([b for _, b in pairs], dtype=np.int64)])
        size = n + len(self._rows)
        graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(size, size))
        _, labels = connected_components(graph, directed=False)
        mine = np.flatnonzero(labels[:n] == labels[col[v]])
        return frozenset(names[i] for i in mine)

    def interval(self, v: V) -> Interval:
        return self._prepare().interval(v)

    def intervals(self, targets: Iterable[V]) -> dict[V, Interval]:
        prepared = self._prepare()
        return {v: prepared.interval(v) for v in targets}

    def minimum(self, objective: Mapping[V, float]) -> float:
        """min of ``sum(coeff * v)`` over the model's integer points (-inf if
        unbounded); every variable of ``objective`` in one component."""
        return self._prepare().minimum(objective)

    def sum_interval(self, members: Iterable[V]) -> Interval:
        """The integer interval of the sum of ``members`` (a hidden table cell, a
        sum of counts), whatever components they lie in."""
        return self._prepare().sum_interval(list(dict.fromkeys(members)))

    def seen_range(self, v: V) -> tuple[float, float]:
        """The lowest and highest value ``v`` took over the integer points of
        the model the solver met so far ((inf, -inf) if none): the interval of
        ``v`` holds this range, so a caller may settle "at least this wide"
        without a programme."""
        return self._prepare().seen_range(v)

    def class_interval(self, members: Iterable[V]) -> Interval:
        """The interval of each one of ``members``, variables the caller knows
        to be interchangeable: each appears in the same facts with the same
        coefficient as the others, or, for counts over time, whole chains
        ``x_1 <= x_2 <= ...`` of them do. Then moving all of the class's sum
        onto one member, or off it onto another, keeps every fact true (sums of
        growing counts grow), so each member ranges over [0, max of the sum]:
        one programme for the class instead of two per member."""
        group = list(dict.fromkeys(members))
        if len(group) == 1:
            return self.interval(group[0])
        prepared = self._prepare()
        if any(v in prepared.fixed for v in group):
            raise AuditError("an interchangeable class holds a fixed count")
        return Interval(0.0, prepared.max_of_sum(group))


class _Prepared(Generic[V]):
    """The model after substituting fixed variables, split into components."""

    def __init__(self, variables: Mapping[V, tuple[float, float]], rows: list[Row[V]]) -> None:
        self.bounds = dict(variables)
        self.fixed: dict[V, float] = {}
        work = [Row(dict(r.coeffs), r.lo, r.hi) for r in rows]
        self._work = work
        self._peel(work)
        self.rows = [r for r in work if r.coeffs]
        parent: dict[V, V] = {}

        def find(x: V) -> V:
            while parent.get(x, x) != x:
                parent[x] = parent.get(parent[x], parent[x])
                x = parent[x]
            return x

        for row in self.rows:
            first, *others = row.coeffs
            root = find(first)
            for other in others:
                r2 = find(other)
                if r2 != root:
                    parent[r2] = root
        self._find = find
        comps: dict[V, list[V]] = {}
        for v in self.bounds:
            if v not in self.fixed:
                comps.setdefault(find(v), []).append(v)
        self._members = {root: frozenset(vs) for root, vs in comps.items()}
        comp_rows: dict[V, list[Row[V]]] = {}
        for row in self.rows:
            comp_rows.setdefault(find(next(iter(row.coeffs))), []).append(row)
        self._comp_rows = comp_rows
        self._matrices: dict[V, PlainComponent[V] | HighsComponent[V]] = {}
        self._cache: dict[V, Interval] = {}

    def _peel(self, rows: list[Row[V]]) -> None:
        """Fix variables that an equation with one unknown left pins, repeatedly."""
        index: dict[V, list[int]] = {}
        for i, row in enumerate(rows):
            for v in row.coeffs:
                index.setdefault(v, []).append(i)
        queue = [i for i, r in enumerate(rows) if len(r.coeffs) == 1 and r.lo == r.hi]
        while queue:
            row = rows[queue.pop()]
            if len(row.coeffs) != 1 or row.lo != row.hi:
                continue
            ((v, a),) = row.coeffs.items()
            value = row.lo / a
            row.coeffs.clear()
            if v in self.fixed:
                if abs(self.fixed[v] - value) > EPS:
                    raise AuditError("the audit model is inconsistent (a count fixed twice)")
                continue
            self.fixed[v] = value
            for j in index[v]:
                other = rows[j]
                coeff = other.coeffs.pop(v, None)
                if coeff is None:
                    continue
                other.lo -= coeff * value
                other.hi -= coeff * value
                if len(other.coeffs) == 1 and other.lo == other.hi:
                    queue.append(j)
        # Single-variable ranges become bounds.
        for row in rows:
            if len(row.coeffs) == 1:
                ((v, a),) = row.coeffs.items()
                lo, hi = (row.lo / a, row.hi / a) if a > 0 else (row.hi / a, row.lo / a)
                old = self.bounds[v]
                self.bounds[v] = (max(old[0], lo), min(old[1], hi))
                row.coeffs.clear()

    def drop(self, row: int) -> bool:
        """Forget fact ``row`` (an index of the model's facts) in place: True
        when that could be done, False when the model must be prepared again
        (the fact fixed or bounded a count, or the plain solver is in use).
        A fact left after substitution is a row of its component's model:
        its bounds go to infinity there and the last basis stays (still
        primal feasible), and the integer points met stay feasible. The
        component may now fall apart into independent pieces; solving them
        as one gives the same ranges."""
        work = self._work[row]
        if not work.coeffs or SOLVER != "fast":
            return False
        work.lo, work.hi = -INF, INF
        matrix = self._matrices.get(self._find(next(iter(work.coeffs))))
        if matrix is not None:
            assert isinstance(matrix, HighsComponent)
            matrix.drop(work)
        self._cache.clear()
        return True

    def seen_range(self, v: V) -> tuple[float, float]:
        if v in self.fixed:
            return self.fixed[v], self.fixed[v]
        matrix = self._matrices.get(self._find(v))
        if matrix is None:
            return INF, -INF
        i = matrix.col[v]
        return float(matrix.seen_lo[i]), float(matrix.seen_hi[i])

    def component_of(self, v: V) -> frozenset[V]:
        if v in self.fixed:
            return frozenset({v})
        return self._members[self._find(v)]

    def _matrix(self, v: V) -> PlainComponent[V] | HighsComponent[V]:
        root = self._find(v)
        matrix = self._matrices.get(root)
        if matrix is None:
            members = sorted(self._members[root], key=repr)
            rows = self._comp_rows.get(root, [])
            if SOLVER == "fast":
                matrix = HighsComponent(members, rows, self.bounds)
            else:
                matrix = PlainComponent(members, rows, self.bounds)
            self._matrices[root] = matrix
        return matrix

    def minimum(self, objective: Mapping[V, float]) -> float:
        constant = sum(self.fixed[v] * a for v, a in objective.items() if v in self.fixed)
        free = {v: a for v, a in objective.items() if v not in self.fixed}
        if not free:
            return constant
        first = next(iter(free))
        matrix = self._matrix(first)
        c = np.zeros(matrix.n)
        for v, a in free.items():
            if self._find(v) != self._find(first):
                raise AuditError("an objective spans two components")
            c[matrix.col[v]] = a
        return constant + matrix.solve(c)

    def max_of_sum(self, group: list[V]) -> float:
        matrix = self._matrix(group[0])
        objective = np.zeros(matrix.n)
        for v in group:
            if self._find(v) != self._find(group[0]):
                raise AuditError("an interchangeable class spans two components")
            objective[matrix.col[v]] = -1.0
        return -matrix.solve(objective)

    def sum_interval(self, group: list[V]) -> Interval:
        # components are independent: the bounds of the sum are the sums of
        # each component's bounds
        low = high = sum(self.fixed[v] for v in group if v in self.fixed)
        by_component: dict[V, list[V]] = {}
        for v in group:
            if v not in self.fixed:
                by_component.setdefault(self._find(v), []).append(v)
        for members in by_component.values():
            matrix = self._matrix(members[0])
            c = np.zeros(matrix.n)
            for v in members:
                c[matrix.col[v]] = 1.0
            low += matrix.solve(c)
            high -= matrix.solve(-c)
        return Interval(low, high)

    def interval(self, v: V) -> Interval:
        if v in self.fixed:
            return Interval(self.fixed[v], self.fixed[v])
        cached = self._cache.get(v)
        if cached is None:
            matrix = self._matrix(v)
            low = matrix.optimum(v, +1.0)
            high = -matrix.optimum(v, -1.0)
            cached = Interval(low, high)
            self._cache[v] = cached
        return cached
