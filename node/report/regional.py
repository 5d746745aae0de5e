"""The common regional picture computed for one audience: the admitted flow
cells, regional totals, each country's totals and coverage. The views built
on them are ``node.report.trends``, ``node.report.corridors`` and
``node.report.alerts``.

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

from collections import defaultdict
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
                c: (
                    {"count": self.numbers[c].count, **self.numbers[c].fields()}
                    if c in self.numbers
                    else None
                )
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
                period,
                label,
                {c: n.count for c, n in numbers.items()},
                total.count,
                any(n.status == "rounded" for n in numbers.values()),
                dict(numbers),
                total,
            )
        )
    rows.sort(key=lambda r: (r.period, -r.total, r.nationality))
    return countries, rows


def country_totals(cells: list[FlowCell]) -> dict[tuple[str, str], Number]:
    """(period, country) -> the country's total: its national total where it
    published one, else the sum of its least detailed table (a lower bound)."""
    return {(a.period, a.country): a.number for a in resolve(cells, ())}


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
                a.number.count for a in found if a.country == country and a.number.status == "exact"
            )
            views[view] = {
                "exact": exact,
                "share": round(exact / own.count, 4) if own.count else None,
            }
        out.append(
            {
                "country": country,
                "encounters": own.count,
                "encounters_status": own.status,
                "views": views,
            }
        )
    return out
