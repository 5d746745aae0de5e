"""Alerts: the latest week against a baseline of the weeks before it, by a
Poisson upper tail, for every country, nationality and route leg.

Computed, like every number of the picture, only from the cells the export's
audience is admitted to (the disclosure rule in ``node.report.regional``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from node.model.codes import corridor_sort_key
from node.report.regional import nationality_answers, weekly
from node.report.tables import Answer, Number, combine, resolve
from node.report.tables import FlowCell as FlowCell


@dataclass(frozen=True)
class AlertMethod:
    """Latest week against the mean of the ``baseline`` weeks before it.

    A series alerts when its latest count is at least ``min_count``, at least
    ``min_ratio`` times the baseline mean, and the one-sided Poisson upper-tail
    probability P(X ≥ latest | mean) is below ``p_value``. The ratio guards
    against the overdispersion of real flows (Poisson alone flags small wobbles
    of large series); the minimum count against noise in small ones."""

    baseline: int = 6
    min_count: int = 20
    min_ratio: float = 1.5
    p_value: float = 0.001

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": "poisson-upper-tail",
            "baseline_periods": self.baseline,
            "min_count": self.min_count,
            "min_ratio": self.min_ratio,
            "p_value": self.p_value,
        }


def poisson_log_upper_tail(x: int, mean: float) -> float:
    """ln P(X ≥ x) for X ~ Poisson(mean), summed in log space: no overflow for
    the thousands a week the largest flows reach, and no underflow to 0 for a
    surge far in the tail."""
    if x <= 0:
        return 0.0
    if mean <= 0:
        return -math.inf
    log_mean = math.log(mean)

    def log_term(k: int) -> float:
        return k * log_mean - mean - math.lgamma(k + 1)

    if x <= mean:
        # At or below the mean the tail is large; one minus the lower part.
        lower = sum(math.exp(log_term(k)) for k in range(x))
        return math.log(max(1.0 - lower, 1e-300))
    first = log_term(x)
    total = 0.0  # sum of exp(log_term(k) - first): terms shrink for k > mean
    k = x
    while True:
        rel = math.exp(log_term(k) - first)
        total += rel
        if rel < 1e-17 * total or k > x + 10 * (x + 10):
            break
        k += 1
    return min(0.0, first + math.log(total))


def poisson_upper_tail(x: int, mean: float) -> float:
    """P(X ≥ x) for X ~ Poisson(mean) (0.0 only when below the smallest float)."""
    return math.exp(poisson_log_upper_tail(x, mean))


def _alert_series(
    cells: list[FlowCell], numbers: dict[tuple[str, str, str], list[Number]] | None = None
) -> dict[tuple[str, str], Counter[str]]:
    """Weekly counts of each nationality and corridor leg, each country's from
    its most precise table (a total is never added to the cells it sums);
    ``numbers`` collects each (kind, series, period)'s numbers, for their status."""
    series: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    week_cells = weekly(cells)
    found: list[tuple[str, str, Answer]] = [
        ("nationality", a.first.label, a) for a in nationality_answers(week_cells)
    ]
    found += [
        ("corridor", f"{a.key[0]}>{a.country}", a)
        for a in resolve(week_cells, ("previous_country",))
        if a.key[0]
    ]
    for kind, name, a in found:
        series[(kind, name)][a.period] += a.number.count
        if numbers is not None:
            numbers.setdefault((kind, name, a.period), []).append(a.number)
    return series


def alerts(cells: list[FlowCell], method: AlertMethod | None = None) -> dict[str, Any]:
    """Nationalities and corridor legs whose latest week rose far above their
    baseline (``AlertMethod``). Every series is evaluated at the latest week
    of the picture; a series absent that week counts 0."""
    method = method or AlertMethod()
    periods = sorted({c.period for c in weekly(cells)})
    out: dict[str, Any] = {"method": method.as_dict(), "period": None, "alerts": []}
    if len(periods) < 2:
        return out
    latest = periods[-1]
    window = periods[-1 - method.baseline : -1]
    out["period"] = latest
    out["baseline"] = window
    # Compare like with like: only countries with weekly cells in every week of
    # the window and the latest week (a country that coarsened some weeks to a
    # month would otherwise look like a surge when its weekly cells return).
    reported: dict[str, set[str]] = defaultdict(set)
    for c in weekly(cells):
        reported[c.country].add(c.period)
    needed = {*window, latest}
    steady = sorted((c for c, ps in reported.items() if needed <= ps), key=corridor_sort_key)
    out["countries"] = steady
    out["countries_left_out"] = sorted(set(reported) - set(steady), key=corridor_sort_key)
    found: list[dict[str, Any]] = []
    numbers: dict[tuple[str, str, str], list[Number]] = {}
    series = _alert_series([c for c in cells if c.country in set(steady)], numbers)
    for (kind, name), counts in series.items():
        x = counts.get(latest, 0)
        base = [counts.get(p, 0) for p in window]
        mean = sum(base) / len(base)
        sd = math.sqrt(sum((b - mean) ** 2 for b in base) / len(base))
        log_p = poisson_log_upper_tail(x, max(mean, 1.0))
        p = math.exp(log_p)
        ratio = x / max(mean, 1.0)
        if x >= method.min_count and ratio >= method.min_ratio and p < method.p_value:
            found.append(
                {
                    "kind": kind,
                    "series": name,
                    "period": latest,
                    "count": x,
                    "baseline_mean": round(mean, 1),
                    "baseline_sd": round(sd, 1),
                    "ratio": round(ratio, 2),
                    "p_value": float(f"{p:.3g}"),
                    "log10_p_value": round(log_p / math.log(10), 1),
                    **combine(numbers.get((kind, name, latest), [])).fields(),
                }
            )
    found.sort(key=lambda a: (a["log10_p_value"], -a["ratio"], a["kind"], a["series"]))
    out["alerts"] = found
    return out
