"""What the interval audit (``node.policy.audit``) is made of: its facts
(``Row``), the interval it finds for a hidden count, its error, and the count
of programmes solved, shared by its solvers (``node.policy.solver_plain``,
``node.policy.solver_highs``, ``node.policy.relaxation``)."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from node.errors import CorredorError

V = TypeVar("V", bound=Hashable)

INF = math.inf
EPS = 1e-6


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
class Row(Generic[V]):
    coeffs: dict[V, float]
    lo: float
    hi: float
