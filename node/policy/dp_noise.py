"""The mechanism of a differentially private release (``node.policy.privacy``):
OpenDP's discrete Laplace noise, its scale and epsilon for a policy, the exact
half-widths of the published intervals, and the binary-tree counter's nodes."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from node.policy.dp_domain import privacy_rules, tables_of
from node.policy.flow_rules import FlowStatisticsRules

#: The confidence of every published interval.
CONFIDENCE = 0.95

#: Integer noise for a vector of true values at a scale: OpenDP's by default.
NoiseSource = Callable[[list[int], float], list[int]]


def levels(revisions: int) -> int:
    """Nodes of the tree a leaf belongs to (one per level)."""
    return revisions.bit_length()


def scale_for(rules: FlowStatisticsRules) -> float:
    """The discrete Laplace scale that makes one period's tree, every table and
    revision included, cost ``epsilon_per_release``."""
    privacy = privacy_rules(rules)
    return levels(privacy.revisions) * len(tables_of(rules)) / privacy.epsilon_per_release


def _measurement(scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale
    )


def epsilon_of(rules: FlowStatisticsRules) -> float:
    """OpenDP's privacy map of one period's tree: the epsilon an L1 change of
    ``levels * tables`` (one record, every node it is in) costs at the scale."""
    privacy = privacy_rules(rules)
    sensitivity = levels(privacy.revisions) * len(tables_of(rules))
    return float(_measurement(scale_for(rules)).map(sensitivity))


def opendp_noise(values: list[int], scale: float) -> list[int]:
    """``values`` with OpenDP's discrete Laplace noise of ``scale`` added."""
    if not values:
        return []
    return [int(v) for v in _measurement(scale)(values)]


@lru_cache(maxsize=256)
def _sum_pmf(draws: int, scale: float) -> tuple[int, np.ndarray]:
    """(offset, pmf) of the sum of ``draws`` independent discrete Laplace
    draws of ``scale``, truncated where the tail is below 1e-13."""
    q = math.exp(-1.0 / scale)
    reach = math.ceil(30.0 * scale) + 1
    xs = np.arange(-reach, reach + 1)
    one = (1 - q) / (1 + q) * q ** np.abs(xs)
    pmf = one
    for _ in range(draws - 1):
        pmf = np.convolve(pmf, one)
    return (len(pmf) - 1) // 2, pmf


def half_width(draws: int, scale: float, confidence: float = CONFIDENCE) -> int:
    """The smallest ``h`` with P(|noise| <= h) >= ``confidence`` for the sum of
    ``draws`` discrete Laplace draws of ``scale`` (exact, from the pmf)."""
    if draws <= 0:
        return 0
    mid, pmf = _sum_pmf(draws, scale)
    mass = float(pmf[mid])
    h = 0
    while mass < confidence:
        h += 1
        mass += float(pmf[mid - h] + pmf[mid + h])
    return h


def published_half_width(draws: int, scale: float, confidence: float = CONFIDENCE) -> int:
    """The half-width of a published interval: the smallest ``h`` that keeps
    ``confidence`` also for a cell published only because its noisy value is
    above 0 (true count 0: covered unless the noise is above ``h``, given that
    it is above 0), i.e. two-sided tail <= (1 - confidence) * (1 - P(noise = 0)).
    For every other published cell that is at least as safe."""
    if draws <= 0:
        return 0
    mid, pmf = _sum_pmf(draws, scale)
    zero = float(pmf[mid])
    return half_width(draws, scale, 1.0 - (1.0 - confidence) * (1.0 - zero))


def coverage(draws: int, scale: float, h: int) -> float:
    """P(|noise| <= h) for the sum of ``draws`` draws of ``scale``."""
    mid, pmf = _sum_pmf(draws, scale)
    return float(pmf[max(0, mid - h) : mid + h + 1].sum())


def prefix_nodes(t: int) -> list[tuple[int, int]]:
    """The tree nodes (level, index) whose ranges make up leaves 1..t; node
    (j, i) covers leaves (i - 1) * 2**j + 1 .. i * 2**j."""
    out: list[tuple[int, int]] = []
    start = 0
    for j in reversed(range(t.bit_length())):
        if t >> j & 1:
            out.append((j, (start >> j) + 1))
            start += 1 << j
    return out
