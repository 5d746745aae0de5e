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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node.model.codes import corridor_sort_key
from node.report.audience import Scope, admits
from node.report.tables import Answer, Number, combine, resolve
from node.report.tables import FlowCell as FlowCell
from node.store.picture import PictureStore

#: Origins the 2016 conclusions single out: from other continents, and from
#: the Caribbean outside the RCM.
EXTRACONTINENTAL: tuple[str, ...] = ("Africa", "Asia")
CARIBBEAN_EXTRAREGIONAL: tuple[str, ...] = ("CUB", "HTI")


def admitted_cells(store: PictureStore, scope: Scope, view: str = "flows") -> list[FlowCell]:
    """The current flow cells whose events admit the scope's audience and purpose."""
    uses = store.uses()
    purpose = scope.purpose_for(view)
    return held_cells(
        store, lambda event_id: admits(uses.get(event_id), scope.audience, purpose, scope.now)
    )


def held_cells(
    store: PictureStore, keep: Callable[[str], bool] = lambda event_id: True
) -> list[FlowCell]:
    """The current flow cells of the picture whose event ids ``keep`` accepts
    (a noisy cell with the 95% interval its event carried)."""
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
            r["sex"],
            r["age_band"],
            r["obs_status"] or "A",
            (int(r["ci95_low"]), int(r["ci95_high"]))
            if r["ci95_low"] is not None and r["ci95_high"] is not None
            else None,
        )
        for r in store.flow_cells()
        if keep(r["event_id"])
    ]


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
    #: Each country's number with its status (the counts of ``by_country``).
    numbers: dict[str, Number] = field(default_factory=dict)
    #: The total with its status: the least exact of the numbers it adds.
    total_number: Number = field(default_factory=lambda: Number(0))

    def as_dict(self, countries: list[str]) -> dict[str, Any]:
        status = self.total_number.status
        return {
            "period": self.period,
            "nationality": self.nationality,
            "countries": {c: self.by_country.get(c) for c in countries},
            "total": self.total,
            "obs_status": "N" if status == "noisy" else "E" if self.estimated else "A",
            "numbers": {
                c: ({"count": self.numbers[c].count, **self.numbers[c].fields()}
                    if c in self.numbers else None)
                for c in countries
            },
            **self.total_number.fields(),
            "total_countries": [c for c in countries if c in self.numbers],
        }


def nationality_answers(cells: list[FlowCell]) -> list[Answer]:
    """Period × country × nationality, each from the most precise table published."""
    return resolve(cells, ("nationality",))


def regional_rows(cells: list[FlowCell]) -> tuple[list[str], list[RegionalRow]]:
    """(countries in corridor order, rows by period then descending total).

    Each country's count is its most precise published number for the period
    and nationality (``node.report.tables``). A country with no published cell
    in a row shows None: it reported none, or suppressed them, or did not
    release them to this audience; the total is over the shown counts only, so
    it never carries what a country held back."""
    grid: dict[tuple[str, str], dict[str, Number]] = defaultdict(dict)
    for a in nationality_answers(cells):
        grid[(a.period, a.first.label)][a.country] = a.number
    countries = sorted({c.country for c in cells}, key=corridor_sort_key)
    rows = []
    for (period, label), numbers in grid.items():
        total = combine(numbers.values())
        rows.append(
            RegionalRow(
                period, label, {c: n.count for c, n in numbers.items()}, total.count,
                any(n.status == "rounded" for n in numbers.values()), dict(numbers), total,
            )
        )
    rows.sort(key=lambda r: (r.period, -r.total, r.nationality))
    return countries, rows


# -- trends: totals, change, top nationalities, origin groups ------------------------


def _change(now: int, before: int | None) -> dict[str, Any]:
    if before is None:
        return {"previous": None, "change": None, "change_pct": None}
    pct = None if before == 0 else round(100.0 * (now - before) / before, 1)
    return {"previous": before, "change": now - before, "change_pct": pct}


def origin_group(cell: FlowCell) -> str | None:
    """``extracontinental`` (Africa, Asia), ``caribbean`` (Cuba, Haiti) or
    ``other``; None for a cell a country published only as the Caribbean
    region, which holds Cuba and Haiti with other Caribbean nationalities."""
    if cell.nationality in CARIBBEAN_EXTRAREGIONAL:
        return "caribbean"
    if cell.continent in EXTRACONTINENTAL:
        return "extracontinental"
    if not cell.nationality and cell.region == "Caribbean":
        return None
    return "other"


def country_totals(cells: list[FlowCell]) -> dict[tuple[str, str], Number]:
    """(period, country) -> the country's total: its national total where it
    published one, else the sum of its least detailed table (a lower bound)."""
    return {(a.period, a.country): a.number for a in resolve(cells, ())}


def trends(cells: list[FlowCell], last: int = 0, top: int = 5) -> dict[str, Any]:
    """Weekly totals with the change from the previous week, regionally and by
    country; the top nationalities of the latest week; and extracontinental
    against extraregional Caribbean origins, week by week."""
    series = weekly(cells)
    all_periods = sorted({c.period for c in series})
    periods = all_periods[-last:] if last > 0 else all_periods
    by_country: dict[str, dict[str, Number]] = defaultdict(dict)
    for (p, country), n in country_totals(series).items():
        by_country[country][p] = n
    region: dict[str, Number] = {}
    region_countries: dict[str, list[str]] = {}
    for p in all_periods:
        members = [c for c in sorted(by_country, key=corridor_sort_key) if p in by_country[c]]
        region[p] = combine(by_country[c][p] for c in members)
        region_countries[p] = members
    by_nat: dict[str, dict[str, list[Number]]] = defaultdict(lambda: defaultdict(list))
    groups: dict[str, dict[str, list[Number]]] = defaultdict(lambda: defaultdict(list))
    # Encounters of a country and week in no group: its suppressed nationality
    # cells (its exact total minus the nationality numbers shown) and the
    # Caribbean region. Where there are any, every group of that week may miss
    # some, so the groups are lower bounds.
    attributed: Counter[tuple[str, str]] = Counter()
    unattributed: set[str] = set()
    for a in nationality_answers(series):
        by_nat[a.period][a.first.label].append(a.number)
        group = origin_group(a.first)
        if group is None or a.number.status == "lower-bound":
            unattributed.add(a.period)
        if group is not None:
            groups[a.period][group].append(a.number)
            attributed[(a.period, a.country)] += a.number.count
    for country, numbers in by_country.items():
        for week, n in numbers.items():
            # (Under a rounded or noisy total a gap says nothing: the parts keep theirs.)
            if n.status == "exact" and n.count != attributed[(week, country)]:
                unattributed.add(week)

    def previous(p: str) -> str | None:
        i = all_periods.index(p)
        return all_periods[i - 1] if i > 0 else None

    def prev_value(numbers: dict[str, Number], p: str) -> int | None:
        q = previous(p)
        if q is None:
            return None
        return numbers[q].count if q in numbers else 0

    rows = []
    for p in periods:
        rows.append({"period": p, "reporting_country": "_T", "count": region[p].count,
                     **_change(region[p].count, prev_value(region, p)),
                     **region[p].fields(), "countries": region_countries[p]})
        for country in sorted(by_country, key=corridor_sort_key):
            if p in by_country[country]:
                n = by_country[country][p]
                rows.append({"period": p, "reporting_country": country, "count": n.count,
                             **_change(n.count, prev_value(by_country[country], p)),
                             **n.fields()})
    latest = periods[-1] if periods else None
    top_rows = []
    if latest is not None:
        before = previous(latest)
        now = {label: combine(ns) for label, ns in by_nat[latest].items()}
        for label, n in sorted(now.items(), key=lambda kv: (-kv[1].count, kv[0]))[:top]:
            prev = None if before is None else combine(by_nat[before].get(label, [])).count
            top_rows.append({"period": latest, "nationality": label, "count": n.count,
                             **_change(n.count, prev), **n.fields()})
    origin_rows = []
    for p in periods:
        row: dict[str, Any] = {"period": p}
        status: dict[str, Any] = {}
        for g in ("extracontinental", "caribbean", "other"):
            n = combine(groups[p].get(g, []))
            row[g] = n.count
            status[f"{g}_status"] = "lower-bound" if p in unattributed else n.status
        origin_rows.append({**row, **status})
    return {"totals": rows, "top_nationalities": top_rows, "origins": origin_rows}


# -- corridors ---------------------------------------------------------------------


def route_legs(cells: list[FlowCell], periods: list[str] | None = None) -> list[dict[str, Any]]:
    """(previous country → reporting country) with the count over ``periods``,
    from each country's most precise table that keeps the previous country."""
    wanted = set(periods) if periods is not None else None
    legs: dict[tuple[str, str], list[Number]] = defaultdict(list)
    for a in resolve(cells, ("previous_country",)):
        previous = a.key[0]
        if previous and (wanted is None or a.period in wanted):
            legs[(previous, a.country)].append(a.number)
    summed = {leg: combine(ns) for leg, ns in legs.items()}
    return [
        {"from": a, "to": b, "count": n.count, **n.fields()}
        for (a, b), n in sorted(
            summed.items(),
            key=lambda kv: (corridor_sort_key(kv[0][1]), -kv[1].count, kv[0][0]),
        )
    ]


def leg_people(
    store: PictureStore, scope: Scope, k: int, periods: list[str] | None = None
) -> dict[tuple[str, str], int | None]:
    """(previous country, reporting country) -> distinct linked people with an
    encounter record on that leg (linkage tokens), or None when fewer than
    ``k`` share it: encounters are not persons, and a small count of people is
    as identifying as a small cell."""
    uses = store.uses()
    purpose = scope.purpose_for("corridors")
    wanted = set(periods) if periods is not None else None
    people: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in store.view("encounter_view"):
        token = r.get("linkage_token")
        previous = r.get("previous_country")
        if not token or not previous or not admits(
            uses.get(r["_event_id"]), scope.audience, purpose, scope.now
        ):
            continue
        if wanted is not None and str(r.get("encounter_period") or "") not in wanted:
            continue
        people[(str(previous), r["reporting_country"])].add(str(token))
    return {leg: (len(ts) if len(ts) >= k else None) for leg, ts in people.items()}


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


# -- coverage -----------------------------------------------------------------------

#: The question each view asks of a country's tables: the dimensions it keeps.
COVERAGE_VIEWS: dict[str, tuple[str, ...]] = {
    "flows": ("nationality",),
    "trends": (),
    "corridors": ("previous_country",),
}


def coverage(cells: list[FlowCell]) -> list[dict[str, Any]]:
    """For each country, its encounters (the sum of its totals per period: exact
    where it published national totals) and, per view, how many of them the
    view shows as exact numbers, and their share."""
    totals = country_totals(cells)
    answers = {view: resolve(cells, keep) for view, keep in COVERAGE_VIEWS.items()}
    out = []
    for country in sorted({c.country for c in cells}, key=corridor_sort_key):
        own = combine(n for (_, c), n in totals.items() if c == country)
        views = {}
        for view, found in answers.items():
            exact = sum(
                a.number.count for a in found
                if a.country == country and a.number.status == "exact"
            )
            views[view] = {
                "exact": exact,
                "share": round(exact / own.count, 4) if own.count else None,
            }
        out.append({"country": country, "encounters": own.count,
                    "encounters_status": own.status, "views": views})
    return out
