"""Trends: weekly totals and their change, regionally and by country, the
top nationalities, and extracontinental against Caribbean origins.

Computed, like every number of the picture, only from the cells the export's
audience is admitted to (the disclosure rule in ``node.report.regional``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from node.model.codes import corridor_sort_key
from node.report.regional import (
    CARIBBEAN_EXTRAREGIONAL,
    EXTRACONTINENTAL,
    country_totals,
    nationality_answers,
    weekly,
)
from node.report.tables import FlowCell as FlowCell
from node.report.tables import Number, combine


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
        rows.append(
            {
                "period": p,
                "reporting_country": "_T",
                "count": region[p].count,
                **_change(region[p].count, prev_value(region, p)),
                **region[p].fields(),
                "countries": region_countries[p],
            }
        )
        for country in sorted(by_country, key=corridor_sort_key):
            if p in by_country[country]:
                n = by_country[country][p]
                rows.append(
                    {
                        "period": p,
                        "reporting_country": country,
                        "count": n.count,
                        **_change(n.count, prev_value(by_country[country], p)),
                        **n.fields(),
                    }
                )
    latest = periods[-1] if periods else None
    top_rows = []
    if latest is not None:
        before = previous(latest)
        now = {label: combine(ns) for label, ns in by_nat[latest].items()}
        for label, n in sorted(now.items(), key=lambda kv: (-kv[1].count, kv[0]))[:top]:
            prev = None if before is None else combine(by_nat[before].get(label, [])).count
            top_rows.append(
                {
                    "period": latest,
                    "nationality": label,
                    "count": n.count,
                    **_change(n.count, prev),
                    **n.fields(),
                }
            )
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
