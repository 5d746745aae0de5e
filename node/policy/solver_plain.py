"""The plain solver of the interval audit (``SOLVER = "plain"`` in
``node.policy.audit``): every programme of a component solved from scratch
with ``scipy.optimize.linprog`` / ``milp``, the reference the tests and
benchmarks compare the fast one (``node.policy.solver_highs``) with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import csr_matrix

from node.policy.intervals import EPS, INF, STATS, AuditError, Row, V


class PlainComponent(Generic[V]):
    """One component's constraints as sparse matrices, solved for one variable at a time."""

    def __init__(
        self, members: list[V], rows: list[Row[V]], bounds: Mapping[V, tuple[float, float]]
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
        if abs(value - round(value)) <= EPS:
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


def _sparse(
    idx: list[tuple[int, int]], data: list[float], rows: int, cols: int
) -> csr_matrix | None:
    if not rows:
        return None
    r = [i for i, _ in idx]
    c = [j for _, j in idx]
    return csr_matrix((data, (r, c)), shape=(rows, cols))
