"""The fast solver of the interval audit (``SOLVER = "fast"`` in
``node.policy.audit``): one component as one HiGHS model (``highspy``), built
once and solved again with only the objective changed, each solve from the
last optimal basis; the mixed-integer model is built only when an LP optimum
is fractional."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic

import numpy as np
from highspy import _core as highs

from node.policy.intervals import EPS, INF, STATS, AuditError, Row, V


def highs_lp(
    col: Mapping[V, int], rows: list[Row[V]], bounds: Mapping[V, tuple[float, float]]
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


def highs_solver(lp: highs.HighsLp, *, integer: bool) -> highs._Highs:
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


class HighsComponent(Generic[V]):
    """One component as one HiGHS model, solved again and again with only the
    objective changed (each solve starts from the last optimal basis)."""

    def __init__(
        self, members: list[V], rows: list[Row[V]], bounds: Mapping[V, tuple[float, float]]
    ) -> None:
        self.col = {v: i for i, v in enumerate(members)}
        self.n = len(members)
        self._lp = highs_lp(self.col, rows, bounds)
        self._linear = highs_solver(self._lp, integer=False)
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

    def drop(self, row: Row[V]) -> None:
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
        if np.all(np.abs(x - rounded) <= EPS):
            # an integral optimal point: the LP bound is attained by an integer point
            self._see(rounded)
            return float(round(float(c @ rounded)))
        return self._integer_optimum(c)

    def _integer_optimum(self, c: np.ndarray) -> float:
        STATS.integer_solves += 1
        if self._integer is None:
            self._integer = highs_solver(self._lp, integer=True)
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
