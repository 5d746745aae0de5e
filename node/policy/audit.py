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
(``LinearModel.seen_range``). ``SOLVER = "plain"`` solves every programme from
scratch with ``scipy.optimize.linprog`` / ``milp`` as before, for the
benchmarks and for the tests that compare the two.

The model knows nothing about flows: cells, sums and bounds only, so linked
tables or other exchanges can be written into it too. Variables fixed by a
single-variable equation are substituted first, and every interval is solved on
the connected component of its variable only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from highspy import _core as highs
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from node.errors import CorredorError

V = TypeVar("V", bound=Hashable)

INF = math.inf
_EPS = 1e-6

#: "fast": one warm-started HiGHS model per component; "plain": every programme
#: from scratch through scipy (the reference the tests and benchmarks compare with).
SOLVER = "fast"


@dataclass
class SolveStats:
    """Programmes solved in this process (for the benchmarks)."""

    solves: int = 0
    integer_solves: int = 0


STATS = SolveStats()


class AuditError(CorredorError):
    """The audit's model has no solution: what it was told is inconsistent."""


@dataclass(frozen=True)
class Interval:
    """The integer values a hidden count may take given what was published."""

    low: float
    high: float  # math.inf when nothing bounds it from above

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def exact(self) -> bool:
        return self.width == 0


@dataclass
class _Row(Generic[V]):
    coeffs: dict[V, float]
    lo: float
    hi: float


class LinearModel(Generic[V]):
    """Non-negative integer unknowns and linear facts an outsider knows about them."""

    def __init__(self) -> None:
        self._vars: dict[V, tuple[float, float]] = {}
        self._rows: list[_Row[V]] = []
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
        self._rows.append(_Row(dict(coeffs), lo, hi))
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
        self._rows[row] = _Row({}, -INF, INF)
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

    def __init__(self, variables: Mapping[V, tuple[float, float]], rows: list[_Row[V]]) -> None:
        self.bounds = dict(variables)
        self.fixed: dict[V, float] = {}
        work = [_Row(dict(r.coeffs), r.lo, r.hi) for r in rows]
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
        comp_rows: dict[V, list[_Row[V]]] = {}
        for row in self.rows:
            comp_rows.setdefault(find(next(iter(row.coeffs))), []).append(row)
        self._comp_rows = comp_rows
        self._matrices: dict[V, _Matrix[V] | _HighsMatrix[V]] = {}
        self._cache: dict[V, Interval] = {}

    def _peel(self, rows: list[_Row[V]]) -> None:
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
                if abs(self.fixed[v] - value) > _EPS:
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
            assert isinstance(matrix, _HighsMatrix)
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

    def _matrix(self, v: V) -> _Matrix[V] | _HighsMatrix[V]:
        root = self._find(v)
        matrix = self._matrices.get(root)
        if matrix is None:
            members = sorted(self._members[root], key=repr)
            rows = self._comp_rows.get(root, [])
            if SOLVER == "fast":
                matrix = _HighsMatrix(members, rows, self.bounds)
            else:
                matrix = _Matrix(members, rows, self.bounds)
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


class _Matrix(Generic[V]):
    """One component's constraints as sparse matrices, solved for one variable at a time."""

    def __init__(
        self, members: list[V], rows: list[_Row[V]], bounds: Mapping[V, tuple[float, float]]
    ) -> None:
        self.col = {v: i for i, v in enumerate(members)}
        n = len(members)
        self.lower = np.array([bounds[v][0] for v in members], dtype=float)
        self.upper = np.array([bounds[v][1] for v in members], dtype=float)
        eq_data: list[float] = []
        eq_idx: list[tuple[int, int]] = []
        eq_rhs: list[float] = []
        ub_data: list[float] = []
        ub_idx: list[tuple[int, int]] = []
        ub_rhs: list[float] = []
        for row in rows:
            cols = [(self.col[v], a) for v, a in row.coeffs.items()]
            if row.lo == row.hi:
                r = len(eq_rhs)
                for c, a in cols:
                    eq_idx.append((r, c))
                    eq_data.append(a)
                eq_rhs.append(row.lo)
                continue
            if row.hi < INF:
                r = len(ub_rhs)
                for c, a in cols:
                    ub_idx.append((r, c))
                    ub_data.append(a)
                ub_rhs.append(row.hi)
            if row.lo > -INF:
                r = len(ub_rhs)
                for c, a in cols:
                    ub_idx.append((r, c))
                    ub_data.append(-a)
                ub_rhs.append(-row.lo)
        self.a_eq = _sparse(eq_idx, eq_data, len(eq_rhs), n)
        self.b_eq = np.array(eq_rhs, dtype=float)
        self.a_ub = _sparse(ub_idx, ub_data, len(ub_rhs), n)
        self.b_ub = np.array(ub_rhs, dtype=float)
        self.n = n
        # the plain solver records no points (it is the reference)
        self.seen_lo = np.full(n, INF)
        self.seen_hi = np.full(n, -INF)

    def optimum(self, v: V, sense: float) -> float:
        """min of ``sense * v`` over the integer points of the model."""
        c = np.zeros(self.n)
        c[self.col[v]] = sense
        return self.solve(c)

    def solve(self, c: np.ndarray) -> float:
        """min of ``c @ x`` over the integer points of the model (-inf if unbounded)."""
        bounds = list(zip(self.lower, [None if u == INF else u for u in self.upper], strict=True))
        STATS.solves += 1
        result = linprog(
            c,
            A_ub=self.a_ub,
            b_ub=self.b_ub if self.b_ub.size else None,
            A_eq=self.a_eq,
            b_eq=self.b_eq if self.b_eq.size else None,
            bounds=bounds,
            method="highs",
        )
        if result.status == 3:  # unbounded
            return -INF
        if result.status != 0:
            raise AuditError(f"the audit's linear programme failed: {result.message}")
        value = float(result.fun)
        if abs(value - round(value)) <= _EPS:
            return float(round(value))
        return self._integer_optimum(c)

    def _integer_optimum(self, c: np.ndarray) -> float:
        STATS.integer_solves += 1
        constraints = []
        if self.a_eq is not None:
            constraints.append(LinearConstraint(self.a_eq, self.b_eq, self.b_eq))
        if self.a_ub is not None:
            constraints.append(LinearConstraint(self.a_ub, -np.inf, self.b_ub))
        result = milp(
            c,
            constraints=constraints,
            integrality=np.ones(self.n),
            bounds=Bounds(self.lower, self.upper),
        )
        if result.status != 0 or result.fun is None:
            raise AuditError(f"the audit's integer programme failed: {result.message}")
        return float(round(result.fun))


def _highs_lp(
    col: Mapping[V, int], rows: list[_Row[V]], bounds: Mapping[V, tuple[float, float]]
) -> highs.HighsLp:
    """The unknowns ``col`` (name -> column), their bounds and the facts as one
    HiGHS model, row-wise, with a zero objective."""
    n = len(col)
    inf = highs.kHighsInf
    lp = highs.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_ = np.array([bounds[v][0] for v in col], dtype=float)
    lp.col_upper_ = np.array([min(bounds[v][1], inf) for v in col], dtype=float)
    lp.row_lower_ = np.array([max(r.lo, -inf) for r in rows], dtype=float)
    lp.row_upper_ = np.array([min(r.hi, inf) for r in rows], dtype=float)
    starts = [0]
    index: list[int] = []
    value: list[float] = []
    for row in rows:
        for v, a in row.coeffs.items():
            index.append(col[v])
            value.append(a)
        starts.append(len(index))
    lp.a_matrix_.format_ = highs.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = len(rows)
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    return lp


def _highs_solver(lp: highs.HighsLp, *, integer: bool) -> highs._Highs:
    """A quiet single-threaded HiGHS holding ``lp``: for warm linear re-solves,
    or with every column integral."""
    h = highs._Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if not integer:
        # after a change of objective (or a dropped row) the last basis stays
        # primal feasible: the primal simplex goes on from it in a few pivots,
        # where the dual simplex (HiGHS's default) measured ~600 pivots a
        # solve, as from scratch
        h.setOptionValue("simplex_strategy", 4)
        # warm starts skip presolve anyway; the first solve of a component
        # is small enough that presolve costs more than it saves
        h.setOptionValue("presolve", "off")
    if h.passModel(lp) == highs.HighsStatus.kError:
        raise AuditError("the audit's model could not be built")
    if integer:
        n = lp.num_col_
        cols = np.arange(n, dtype=np.int32)
        kinds = np.array([highs.HighsVarType.kInteger] * n)
        h.changeColsIntegrality(n, cols, kinds)
    return h


class _HighsMatrix(Generic[V]):
    """One component as one HiGHS model, solved again and again with only the
    objective changed (each solve starts from the last optimal basis)."""

    def __init__(
        self, members: list[V], rows: list[_Row[V]], bounds: Mapping[V, tuple[float, float]]
    ) -> None:
        self.col = {v: i for i, v in enumerate(members)}
        self.n = len(members)
        self._lp = _highs_lp(self.col, rows, bounds)
        self._linear = _highs_solver(self._lp, integer=False)
        self._integer: highs._Highs | None = None
        self._row_of = {id(r): i for i, r in enumerate(rows)}
        self._dropped: list[int] = []
        #: optima found since the model last changed, by objective
        self._known: dict[bytes, float] = {}
        self._costs: dict[str, np.ndarray] = {}
        self.seen_lo = np.full(self.n, INF)
        self.seen_hi = np.full(self.n, -INF)

    def optimum(self, v: V, sense: float) -> float:
        """min of ``sense * v`` over the integer points of the model."""
        c = np.zeros(self.n)
        c[self.col[v]] = sense
        return self.solve(c)

    def drop(self, row: _Row[V]) -> None:
        """Free fact ``row`` of this component (see ``_Prepared.drop``)."""
        i = self._row_of[id(row)]
        inf = highs.kHighsInf
        self._known.clear()
        self._dropped.append(i)
        self._linear.changeRowBounds(i, -inf, inf)
        if self._integer is not None:
            self._integer.changeRowBounds(i, -inf, inf)

    def _set_cost(self, h: highs._Highs, key: str, c: np.ndarray) -> None:
        old = self._costs.get(key)
        changed = np.arange(self.n, dtype=np.int32) if old is None else np.flatnonzero(old != c)
        if changed.size:
            h.changeColsCost(changed.size, changed.astype(np.int32), c[changed])
        self._costs[key] = c.copy()

    def _see(self, x: np.ndarray) -> None:
        np.minimum(self.seen_lo, x, out=self.seen_lo)
        np.maximum(self.seen_hi, x, out=self.seen_hi)

    def solve(self, c: np.ndarray) -> float:
        """min of ``c @ x`` over the integer points of the model (-inf if unbounded)."""
        nonzero = np.flatnonzero(c)
        key = nonzero.tobytes() + c[nonzero].tobytes()
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self._solve(c)
        return known

    def _solve(self, c: np.ndarray) -> float:
        STATS.solves += 1
        h = self._linear
        self._set_cost(h, "lp", c)
        h.run()
        status = h.getModelStatus()
        if status == highs.HighsModelStatus.kUnbounded:
            return -INF
        if status == highs.HighsModelStatus.kUnboundedOrInfeasible:
            # presolve is off, so the simplex tells the two apart; be sure
            raise AuditError("the audit's linear programme is infeasible or unbounded")
        if status != highs.HighsModelStatus.kOptimal:
            raise AuditError(f"the audit's linear programme failed: {status.name}")
        x = np.asarray(h.getSolution().col_value, dtype=float)
        rounded = np.round(x)
        if np.all(np.abs(x - rounded) <= _EPS):
            # an integral optimal point: the LP bound is attained by an integer point
            self._see(rounded)
            return float(round(float(c @ rounded)))
        return self._integer_optimum(c)

    def _integer_optimum(self, c: np.ndarray) -> float:
        STATS.integer_solves += 1
        if self._integer is None:
            self._integer = _highs_solver(self._lp, integer=True)
            for i in self._dropped:
                self._integer.changeRowBounds(i, -highs.kHighsInf, highs.kHighsInf)
        h = self._integer
        self._set_cost(h, "mip", c)
        h.run()
        status = h.getModelStatus()
        if status != highs.HighsModelStatus.kOptimal:
            raise AuditError(f"the audit's integer programme failed: {status.name}")
        x = np.round(np.asarray(h.getSolution().col_value, dtype=float))
        self._see(x)
        return float(round(float(c @ x)))


class Relaxation(Generic[V]):
    """A model's linear relaxation, whole (nothing substituted), as one HiGHS
    model: a fact can be dropped for a moment and an objective's range solved
    again from the last basis, with no model built. For choosing which cell to
    hide (``node.policy.protect``), never for the audit itself: its ranges are
    the LP's, at least as wide as the integer ones the audit reports."""

    def __init__(self, variables: Mapping[V, tuple[float, float]], rows: list[_Row[V]]) -> None:
        self.col = {v: i for i, v in enumerate(variables)}
        self.n = len(self.col)
        lp = _highs_lp(self.col, rows, variables)
        self._row_lo = lp.row_lower_.copy()
        self._row_hi = lp.row_upper_.copy()
        self._h = _highs_solver(lp, integer=False)
        self._cost = np.zeros(self.n)

    def drop(self, row: int) -> None:
        """Forget fact ``row`` for good (its cell is hidden)."""
        inf = highs.kHighsInf
        self._row_lo[row] = -inf
        self._row_hi[row] = inf
        self._h.changeRowBounds(row, -inf, inf)

    def _objective(self, members: Iterable[V]) -> np.ndarray:
        c = np.zeros(self.n)
        for v in members:
            c[self.col[v]] = 1.0
        return c

    def _minimum(self, c: np.ndarray) -> float:
        changed = np.flatnonzero(self._cost != c).astype(np.int32)
        if changed.size:
            self._h.changeColsCost(changed.size, changed, c[changed])
            self._cost = c.copy()
        STATS.solves += 1
        self._h.run()
        status = self._h.getModelStatus()
        if status not in (highs.HighsModelStatus.kOptimal, highs.HighsModelStatus.kUnbounded):
            # the primal simplex can stall (HiGHS says "unknown"): solve
            # once more from scratch with the dual simplex
            STATS.solves += 1
            self._h.clearSolver()
            self._h.setOptionValue("simplex_strategy", 1)  # the dual simplex
            self._h.run()
            self._h.setOptionValue("simplex_strategy", 4)
            status = self._h.getModelStatus()
        if status == highs.HighsModelStatus.kUnbounded:
            return -INF
        if status != highs.HighsModelStatus.kOptimal:
            raise AuditError(f"the audit's relaxation failed: {status.name}")
        return float(self._h.getInfo().objective_function_value)

    def _dual_rows(self) -> set[int]:
        if self._h.getModelStatus() != highs.HighsModelStatus.kOptimal:
            return set(range(len(self._row_lo)))  # unbounded: no duals to go by
        dual = np.asarray(self._h.getSolution().row_dual, dtype=float)
        return {int(i) for i in np.flatnonzero(np.abs(dual) > 1e-9)}

    def binding(self, members: Iterable[V], *, from_zero: bool = False) -> tuple[float, set[int]]:
        """The LP width of the sum of ``members`` (see ``width``) and the facts
        whose dual value is not zero at its optima. Dropping any other fact
        leaves both optima as they are (the optimal point stays feasible, and
        the duals stay dual feasible, so neither bound can move), so only these
        can widen the range."""
        c = self._objective(members)
        high = -self._minimum(-c)
        rows = self._dual_rows()
        low = 0.0
        if not from_zero and high != INF:
            low = self._minimum(c)
            rows |= self._dual_rows()
        return high - low, rows

    def width(
        self, members: Iterable[V], *, from_zero: bool = False, without: int | None = None
    ) -> float:
        """The LP width of the sum of ``members`` (of its maximum alone when
        ``from_zero``), with fact ``without`` (a ``row_count`` index) dropped."""
        c = self._objective(members)
        inf = highs.kHighsInf
        if without is not None:
            self._h.changeRowBounds(without, -inf, inf)
        try:
            high = -self._minimum(-c)
            low = 0.0 if from_zero or high == INF else self._minimum(c)
        finally:
            if without is not None:
                self._h.changeRowBounds(
                    without, float(self._row_lo[without]), float(self._row_hi[without])
                )
        return high - low


def _sparse(
    idx: list[tuple[int, int]], data: list[float], rows: int, cols: int
) -> csr_matrix | None:
    if not rows:
        return None
    r = [i for i, _ in idx]
    c = [j for _, j in idx]
    return csr_matrix((data, (r, c)), shape=(rows, cols))
