"""A model's linear relaxation as one warm HiGHS model (``Relaxation``): for
choosing which cell to hide, never for the audit itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic

import numpy as np
from highspy import _core as highs

from node.policy.intervals import INF, STATS, AuditError, Row, V
from node.policy.solver_highs import highs_lp, highs_solver


class Relaxation(Generic[V]):
    """A model's linear relaxation, whole (nothing substituted), as one HiGHS
    model: a fact can be dropped for a moment and an objective's range solved
    again from the last basis, with no model built. For choosing which cell to
    hide (``node.policy.protect``), never for the audit itself: its ranges are
    the LP's, at least as wide as the integer ones the audit reports."""

    def __init__(self, variables: Mapping[V, tuple[float, float]], rows: list[Row[V]]) -> None:
        self.col = {v: i for i, v in enumerate(variables)}
        self.n = len(self.col)
        lp = highs_lp(self.col, rows, variables)
        self._row_lo = lp.row_lower_.copy()
        self._row_hi = lp.row_upper_.copy()
        self._h = highs_solver(lp, integer=False)
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
