"""The common regional picture computed for one audience: flows, trends,
corridors, alerts and regional totals.

Everything here is computed from the flow cells (and encounter records) the
export's audience is admitted to (``node.report.audience``) and from nothing
else. That is the aggregator's disclosure rule:

    every number in an export for audience A is a sum of published cells
    whose events admit A.

Each country protected its own hidden cells against everything it published to
A (its cells, its public margins, its previous release). A sum of those
published cells adds no equation an outsider did not already have, so no
combination of countries, periods or nationalities in the export can reveal a
cell a country suppressed, nor one it did not release to A (embargoed,
expired, or for other audiences). ``tests/test_regional_disclosure.py`` checks
this with the linear-algebra test the countries' own suppression uses.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from node.model.codes import CONTINENT, SUBREGION, corridor_sort_key
from node.report.audience import Scope, admits
from node.store.picture import PictureStore

#: Origins the 2016 conclusions single out: from other continents, and from
#: the Caribbean outside the RCM.
EXTRACONTINENTAL: tuple[str, ...] = ("Africa", "Asia")
CARIBBEAN_EXTRAREGIONAL: tuple[str, ...] = ("CUB", "HTI")
_REGION_CONTINENT: dict[str, str] = {SUBREGION[c]: CONTINENT[c] for c in SUBREGION}


@dataclass(frozen=True)
class FlowCell:
    """One published cell an export may use."""

    period: str
    period_type: str
    country: str
    nationality: str | None
    region: str | None
    previous_country: str | None
    count: int
    estimated: bool

    @property
    def label(self) -> str:
        """Nationality, or ``[region]`` when the country published only the region."""
        return self.nationality or f"[{self.region}]"

    @property
    def continent(self) -> str | None:
        if self.nationality:
            return CONTINENT.get(self.nationality)
        return _REGION_CONTINENT.get(self.region or "")


def admitted_cells(store: PictureStore, scope: Scope, view: str = "flows") -> list[FlowCell]:
    """The current flow cells whose events admit the scope's audience and purpose."""
    uses = store.uses()
    purpose = scope.purpose_for(view)
    return [
        FlowCell(
            r["period"],
            r["period_type"],
            r["reporting_country"],
            r["nationality"],
            r["nationality_region"],
            r["previous_country"],
            int(r["count"]),
            r["obs_status"] == "E",
        )
        for r in store.flow_cells()
        if admits(uses.get(r["event_id"]), scope.audience, purpose, scope.now)
        # table cells (issue 16: "_T" where they sum) are left to the views
        # that answer from tables; these views add up the detail, as before
        and not is_table_cell(r)
    ]


_DIMENSIONS = ("nationality", "nationality_region", "sex", "age_band", "previous_country")


def is_table_cell(row: dict[str, Any]) -> bool:
    """Whether a flow cell is a table's total (``_T`` in a dimension it sums over)."""
    return any(row.get(d) == "_T" for d in _DIMENSIONS)


def weekly(cells: list[FlowCell]) -> list[FlowCell]:
    """Cells of ISO-week periods: trends and alerts compare like with like (a
    cell coarsened to a month or quarter stays in the tables, not the series)."""
    return [c for c in cells if c.period_type.upper() == "ISO_WEEK" or "-W" in c.period]


def last_periods(cells: list[FlowCell], last: int) -> list[str]:
    periods = sorted({c.period for c in cells})
    return periods[-last:] if last > 0 else periods


# -- regional totals ----------------------------------------------------------------


@dataclass(frozen=True)
class RegionalRow:
    """One period × nationality: each country's published count and the
    regional total, which is the sum of exactly the counts shown."""

    period: str
    nationality: str
    by_country: dict[str, int]
    total: int
    estimated: bool

    def as_dict(self, countries: list[str]) -> dict[str, Any]:
        return {
            "period": self.period,
            "nationality": self.nationality,
            "countries": {c: self.by_country.get(c) for c in countries},
            "total": self.total,
            "obs_status": "E" if self.estimated else "A",
        }


def regional_rows(cells: list[FlowCell]) -> tuple[list[str], list[RegionalRow]]:
    """(countries in corridor order, rows by period then descending total).

    A country with no published cell in a row shows None: it reported none, or
    suppressed them, or did not release them to this audience; the total is
    over the shown counts only, so it never carries what a country held back."""
    grid: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    estimated: set[tuple[str, str]] = set()
    for c in cells:
        grid[(c.period, c.label)][c.country] += c.count
        if c.estimated:
            estimated.add((c.period, c.label))
    countries = sorted({c.country for c in cells}, key=corridor_sort_key)
    rows = [
        RegionalRow(period, label, dict(counts), sum(counts.values()), (period, label) in estimated)
        for (period, label), counts in grid.items()
    ]
    rows.sort(key=lambda r: (r.period, -r.total, r.nationality))
    return countries, rows


# -- trends: totals, change, top nationalities, origin groups ------------------------


def _change(now: int, before: int | None) -> dict[str, Any]:
    if before is None:
        return {"previous": None, "change": None, "change_pct": None}
    pct = None if before == 0 else round(100.0 * (now - before) / before, 1)
    return {"previous": before, "change": now - before, "change_pct": pct}


def origin_group(cell: FlowCell) -> str:
    """``extracontinental`` (Africa, Asia), ``caribbean`` (Cuba, Haiti) or ``other``."""
    if cell.nationality in CARIBBEAN_EXTRAREGIONAL:
        return "caribbean"
    if cell.continent in EXTRACONTINENTAL:
        return "extracontinental"
    return "other"


def trends(cells: list[FlowCell], last: int = 0, top: int = 5) -> dict[str, Any]:
    """Weekly totals with the change from the previous week, regionally and by
    country; the top nationalities of the latest week; and extracontinental
    against extraregional Caribbean origins, week by week."""
    series = weekly(cells)
    all_periods = sorted({c.period for c in series})
    periods = all_periods[-last:] if last > 0 else all_periods
    total: Counter[str] = Counter()
    by_country: dict[str, Counter[str]] = defaultdict(Counter)
    by_nat: dict[str, Counter[str]] = defaultdict(Counter)
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for c in series:
        total[c.period] += c.count
        by_country[c.country][c.period] += c.count
        by_nat[c.period][c.label] += c.count
        groups[c.period][origin_group(c)] += c.count

    def previous(p: str) -> str | None:
        i = all_periods.index(p)
        return all_periods[i - 1] if i > 0 else None

    def prev_value(counter: Counter[str], p: str) -> int | None:
        q = previous(p)
        return None if q is None else counter.get(q, 0)

    rows = []
    for p in periods:
        rows.append({"period": p, "reporting_country": "_T", "count": total[p],
                     **_change(total[p], prev_value(total, p))})
        for country in sorted(by_country, key=corridor_sort_key):
            if p in by_country[country]:
                n = by_country[country][p]
                rows.append({"period": p, "reporting_country": country, "count": n,
                             **_change(n, prev_value(by_country[country], p))})
    latest = periods[-1] if periods else None
    top_rows = []
    if latest is not None:
        before = previous(latest)
        for label, n in sorted(by_nat[latest].items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
            prev = None if before is None else by_nat[before].get(label, 0)
            top_rows.append({"period": latest, "nationality": label, "count": n,
                             **_change(n, prev)})
    origin_rows = [
        {
            "period": p,
            "extracontinental": groups[p]["extracontinental"],
            "caribbean": groups[p]["caribbean"],
            "other": groups[p]["other"],
        }
        for p in periods
    ]
    return {"totals": rows, "top_nationalities": top_rows, "origins": origin_rows}


# -- corridors ---------------------------------------------------------------------


def route_legs(cells: list[FlowCell], periods: list[str] | None = None) -> list[dict[str, Any]]:
    """(previous country → reporting country) with the count over ``periods``."""
    wanted = set(periods) if periods is not None else None
    legs: Counter[tuple[str, str]] = Counter()
    for c in cells:
        if c.previous_country and (wanted is None or c.period in wanted):
            legs[(c.previous_country, c.country)] += c.count
    return [
        {"from": a, "to": b, "count": n}
        for (a, b), n in sorted(
            legs.items(),
            key=lambda kv: (corridor_sort_key(kv[0][1]), -kv[1], kv[0][0]),
        )
    ]


def routes(store: PictureStore, scope: Scope, k: int) -> dict[str, Any]:
    """The most common multi-country routes: encounter records that share a
    linkage token, in order of their encounter period, as the list of
    reporting countries. A route is shown only when at least ``k`` people
    share it; the rest are counted, not shown."""
    uses = store.uses()
    purpose = scope.purpose_for("corridors")
    by_person: dict[str, list[tuple[str, str]]] = defaultdict(list)
    records = 0
    for r in store.view("encounter_view"):
        token = r.get("linkage_token")
        if not token or not admits(uses.get(r["_event_id"]), scope.audience, purpose, scope.now):
            continue
        records += 1
        by_person[token].append((str(r.get("encounter_period") or ""), r["reporting_country"]))
    shapes: Counter[tuple[str, ...]] = Counter()
    for visits in by_person.values():
        path: list[str] = []
        for _, country in sorted(visits):
            if not path or path[-1] != country:
                path.append(country)
        if len(path) >= 2:
            shapes[tuple(path)] += 1
    shown = [
        {"route": list(path), "people": n}
        for path, n in sorted(shapes.items(), key=lambda kv: (-kv[1], kv[0]))
        if n >= k
    ]
    return {
        "k": k,
        "records": records,
        "people_linked": len(by_person),
        "multi_country_people": sum(shapes.values()),
        "routes": shown,
        "people_in_hidden_routes": sum(n for n in shapes.values() if n < k),
    }


# -- alerts -------------------------------------------------------------------------


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


def _alert_series(cells: list[FlowCell]) -> dict[tuple[str, str], Counter[str]]:
    series: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for c in weekly(cells):
        series[("nationality", c.label)][c.period] += c.count
        if c.previous_country:
            series[("corridor", f"{c.previous_country}>{c.country}")][c.period] += c.count
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
    series = _alert_series([c for c in cells if c.country in set(steady)])
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
                }
            )
    found.sort(key=lambda a: (a["log10_p_value"], -a["ratio"], a["kind"], a["series"]))
    out["alerts"] = found
    return out
