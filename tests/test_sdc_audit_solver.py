"""The fast audit solver gives the same intervals as plain programmes.

The fast solver (one warm-started HiGHS model per component, integer points it
met reused as width bounds) must never report an interval other than the one
solving every programme from scratch does. Random models with a known integer
truth (so they are feasible): sums, ranges and "only grows" orders over a few
non-negative counts. The reference here is built by this test alone: the
whole model handed to ``scipy.optimize.milp`` once per bound, no substitution,
no components, no LP shortcut.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from node.policy import audit, intervals
from node.policy.audit import LinearModel

Fact = tuple[dict[int, float], float, float]


@contextmanager
def solver(name: str) -> Iterator[None]:
    old = audit.SOLVER
    audit.SOLVER = name
    try:
        yield
    finally:
        audit.SOLVER = old


@st.composite
def models(draw: st.DrawFn) -> tuple[int, list[Fact]]:
    n = draw(st.integers(2, 9))
    truth = [draw(st.integers(0, 12)) for _ in range(n)]
    facts: list[Fact] = []
    for _ in range(draw(st.integers(1, 9))):
        kind = draw(st.sampled_from(["sum", "sum", "range", "order", "weighted"]))
        if kind == "order":
            a, b = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
            if truth[a] <= truth[b]:
                facts.append(({a: 1.0, b: -1.0}, -np.inf, 0.0))
            continue
        members = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        coeffs = {
            m: (float(draw(st.sampled_from([1, 1, 2, -1]))) if kind == "weighted" else 1.0)
            for m in members
        }
        total = sum(c * truth[m] for m, c in coeffs.items())
        if kind == "range":
            lo = total - draw(st.integers(0, 3))
            hi = total + draw(st.integers(0, 3))
            facts.append((coeffs, lo, hi))
        else:
            facts.append((coeffs, total, total))
    return n, facts


def _build(n: int, facts: list[Fact]) -> LinearModel[int]:
    model: LinearModel[int] = LinearModel()
    for v in range(n):
        model.add_var(v)
    for coeffs, lo, hi in facts:
        model.add_range(coeffs, lo, hi)
    return model


def reference(n: int, facts: list[Fact], c: np.ndarray) -> float:
    """min of ``c @ x`` over the integer points, the whole model in one milp."""
    if not facts:
        a = np.zeros((1, n))
        cons = [LinearConstraint(a, -np.inf, np.inf)]
    else:
        a = np.zeros((len(facts), n))
        for i, (coeffs, _lo, _hi) in enumerate(facts):
            for v, k in coeffs.items():
                a[i, v] = k
        lo = np.array([f[1] for f in facts], dtype=float)
        hi = np.array([f[2] for f in facts], dtype=float)
        cons = [LinearConstraint(a, lo, hi)]
    # counts here stay below 12 * 9 * 2 when bounded at all: a box far above
    # that tells "unbounded" apart
    big = 1e6
    result = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(0, big))
    assert result.status == 0, result.message
    value = float(round(result.fun))
    return -np.inf if value <= -1000 else value


def lp_width(n: int, facts: list[Fact], members: list[int], *, from_zero: bool) -> float:
    """The width of the sum of ``members`` over the *linear* points of the model
    (its maximum alone when ``from_zero``), each bound one ``linprog`` of the
    whole model: the reference for the relaxation the protect loop chooses by."""
    c = np.zeros(n)
    c[members] = 1.0
    a = np.array([[coeffs.get(v, 0.0) for v in range(n)] for coeffs, _lo, _hi in facts])
    lo = np.array([f[1] for f in facts], dtype=float)
    hi = np.array([f[2] for f in facts], dtype=float)
    a_ub = np.vstack([a[hi < np.inf], -a[lo > -np.inf]]) if facts else None
    b_ub = np.concatenate([hi[hi < np.inf], -lo[lo > -np.inf]]) if facts else None
    box = 1e6  # counts here stay far below it when bounded at all

    def minimum(cost: np.ndarray) -> float:
        result = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=(0, box), method="highs")
        assert result.status == 0, result.message
        return float(result.fun)

    high = -minimum(-c)
    if high >= box / 10:
        return np.inf
    return high - (0.0 if from_zero else minimum(c))


def _same(a: float, b: float) -> bool:
    return a == b == np.inf or abs(a - b) <= 1e-6


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.data())
def test_the_relaxation_drops_a_fact_as_a_model_built_without_it(
    case: tuple[int, list[Fact]], data: st.DataObject
) -> None:
    """The protect loop tries a complement by switching one fact off in one warm
    relaxation and skips the facts with no dual value at the target's optima.
    Each trial must measure what a model built without that fact measures, a
    skipped fact must be one whose dropping changes nothing, and the fact must
    be back afterwards."""
    n, facts = case
    members = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    from_zero = data.draw(st.booleans())
    relaxation = _build(n, facts).relaxation()
    base, binding = relaxation.binding(members, from_zero=from_zero)
    assert _same(base, lp_width(n, facts, members, from_zero=from_zero))
    for row in range(len(facts)):
        without = facts[:row] + facts[row + 1 :]
        got = relaxation.width(members, from_zero=from_zero, without=row)
        assert _same(got, lp_width(n, without, members, from_zero=from_zero)), row
        if row not in binding:
            assert _same(got, base), f"fact {row} had no dual value but moved the range"
    assert _same(relaxation.width(members, from_zero=from_zero), base)


def reference_interval(n: int, facts: list[Fact], v: int) -> tuple[float, float]:
    c = np.zeros(n)
    c[v] = 1.0
    low = reference(n, facts, c)
    high = -reference(n, facts, -c)
    return low, (np.inf if high == np.inf else high)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(models(), st.randoms(use_true_random=False))
def test_fast_intervals_equal_the_plain_and_the_reference(
    case: tuple[int, list[Fact]], rnd: random.Random
) -> None:
    n, facts = case
    order = list(range(n))
    rnd.shuffle(order)  # the fast solver's answers must not depend on the order asked
    with solver("fast"):
        fast_model = _build(n, facts)
        fast = {v: fast_model.interval(v) for v in order}
        seen = {v: fast_model.seen_range(v) for v in order}
    with solver("plain"):
        plain_model = _build(n, facts)
        plain = {v: plain_model.interval(v) for v in range(n)}
    for v in range(n):
        low, high = reference_interval(n, facts, v)
        assert (fast[v].low, fast[v].high) == (low, high), (v, facts)
        # every point the fast solver reused is a feasible integer point
        lo_seen, hi_seen = seen[v]
        if lo_seen <= hi_seen:
            assert low <= lo_seen <= hi_seen <= high
        # the plain solver accepts an integral LP value without an integral
        # point; where it differs from the exact bound the fast one is exact
        assert plain[v].low <= fast[v].low and plain[v].high >= fast[v].high


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.data())
def test_fast_minimum_of_a_sum_equals_the_reference(
    case: tuple[int, list[Fact]], data: st.DataObject
) -> None:
    n, facts = case
    with solver("fast"):
        model = _build(n, facts)
        # warm the model with a few programmes first, as the audit does
        for v in range(n):
            model.interval(v)
        v0 = data.draw(st.integers(0, n - 1))
        comp = sorted(model.component(v0))
        members = data.draw(st.lists(st.sampled_from(comp), min_size=1, unique=True))
        coeffs = {m: float(data.draw(st.sampled_from([1, -1, 2]))) for m in members}
        prepared = model._prepare()  # the objective must stay in one component
        roots = {prepared._find(m) for m in members if m not in prepared.fixed}
        if len(roots) > 1:
            return
        got = model.minimum(coeffs)
    c = np.zeros(n)
    for m, k in coeffs.items():
        c[m] = k
    assert got == reference(n, facts, c)


def test_a_fractional_lp_optimum_is_solved_as_an_integer_programme() -> None:
    # 2x + 2y = 2 and x <= y: the LP minimum of y is 0.5, the integer one 1
    with solver("fast"):
        model: LinearModel[str] = LinearModel()
        model.add_range({"x": 2.0, "y": 2.0}, 2.0, 2.0)
        model.add_order("x", "y")
        before = intervals.STATS.integer_solves
        assert model.interval("y").low == 1.0
        assert intervals.STATS.integer_solves > before


def test_an_integral_lp_value_at_a_fractional_point_is_not_trusted() -> None:
    # w = 2x, x + y = 1, x = y: the LP's only point is x = y = 0.5, w = 1 (an
    # integral value), but no integer point exists: the audit must say the
    # model is inconsistent, not report w = 1
    with solver("fast"):
        model: LinearModel[str] = LinearModel()
        model.add_range({"w": 1.0, "x": -2.0}, 0.0, 0.0)
        model.add_range({"x": 1.0, "y": 1.0}, 1.0, 1.0)
        model.add_range({"x": 1.0, "y": -1.0}, 0.0, 0.0)
        with pytest.raises(intervals.AuditError):
            model.interval("w")
