"""Which published table answers a question, and how exact the answer is.

A country's flow statistics for a period are a set of *tables*: the national
total, week x nationality, week x nationality x sex x age band x previous
country, ... A cell of a table that sums over a dimension the policy publishes
carries the SDMX code ``_T`` there; a dimension the policy does not publish is
null. So a cell's *table* is the set of dimensions it gives a value for.

A question (a view) keeps some dimensions, e.g. flows keep ``nationality``,
country x week keeps none, corridor legs keep ``previous_country``. For each
country and period, ``resolve`` answers it from one table only:

- the table that keeps exactly those dimensions, when the country published
  it: its cells are the answer, and their status is the cell's (``exact``,
  ``rounded`` for obs_status E, ``noisy`` for N with its 95% interval);
- otherwise the least detailed table finer than the question: its cells are
  added up per answer, and the sum is a ``lower-bound`` (the table's
  suppressed cells are missing from it), unless an exact coarser total the
  country published shows that nothing is missing below it. Where such a total
  exists, the encounters it has beyond the cells shown are ``protected``: that
  number is a difference of two published numbers, so it reveals nothing.

One table per country and period: a ``_T`` cell is never added to the detail
cells it sums, and detail cells are never added up where the total exists.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from node.model.codes import CONTINENT, SUBREGION
from node.policy.atoms import coarser_period

_REGION_CONTINENT: dict[str, str] = {SUBREGION[c]: CONTINENT[c] for c in SUBREGION}


@dataclass(frozen=True)
class FlowCell:
    """One published cell an export may use (``node.report.regional.admitted_cells``)."""

    period: str
    period_type: str
    country: str
    nationality: str | None
    region: str | None
    previous_country: str | None
    count: int
    estimated: bool
    sex: str | None = None
    age_band: str | None = None
    #: SDMX OBS_STATUS: A normal, E rounded, N noisy (differential privacy).
    obs_status: str = "A"
    #: The 95% interval of a noisy count, as the country published it.
    ci95: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """Nationality, or ``[region]`` when the country published only the region."""
        return self.nationality or f"[{self.region}]"

    @property
    def continent(self) -> str | None:
        if self.nationality:
            return CONTINENT.get(self.nationality)
        return _REGION_CONTINENT.get(self.region or "")


#: The unit of every number in the picture: one record of one encounter, not a person.
UNIT = "encounters"
#: SDMX code of a dimension a cell sums over.
TOTAL = "_T"
#: Dimensions a flow cell can keep (``nationality`` includes the M49 region).
DIMENSIONS: tuple[str, ...] = ("nationality", "sex", "age_band", "previous_country")
#: Every status a number can have, from the most to the least exact.
STATUSES: tuple[str, ...] = ("exact", "rounded", "noisy", "lower-bound", "suppressed")
_RANK = {s: i for i, s in enumerate(STATUSES)}
#: z for a two-sided 95% interval, to combine independent noisy counts.
_Z95 = 1.959964


def total_label(audience: str) -> str:
    """What a total over countries covers in an export for ``audience``: the
    Secretariat holds everything the members released to it; anyone else sees
    the countries that released to it, which is not the region."""
    if audience == "TS":
        return "the region (countries reporting)"
    return "the countries releasing to this audience"


def total_short(audience: str) -> str:
    """Column or series name of that total in tables and charts."""
    return "Region" if audience == "TS" else f"Releasing to {audience}"


@dataclass(frozen=True)
class Number:
    """A count of encounters with its status."""

    count: int
    status: str = "exact"
    ci95: tuple[int, int] | None = None
    protected: int | None = None

    def fields(self) -> dict[str, Any]:
        """``status``, ``ci95`` and ``protected`` of a row (null when not applicable)."""
        return {
            "status": self.status,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
            "protected": self.protected,
        }

    def text(self) -> str:
        """The count as a table shows it: ``≥`` a lower bound, ``~`` rounded, ``±`` noisy
        (with the half-width of its 95% interval; ``≈`` when it came without one)."""
        if self.status == "lower-bound":
            return f"≥{self.count}"
        if self.status == "rounded":
            return f"~{self.count}"
        if self.status == "noisy":
            if self.ci95 is None:
                return f"≈{self.count}"
            return f"{self.count}±{max(self.count - self.ci95[0], self.ci95[1] - self.count)}"
        return str(self.count)


def combine(numbers: Iterable[Number]) -> Number:
    """The sum of numbers about disjoint encounters: the least exact status wins;
    independent noisy intervals add in quadrature (rounded outwards); the
    protected encounters add up when every lower bound knows its own."""
    parts = list(numbers)
    if not parts:
        return Number(0)
    count = sum(n.count for n in parts)
    status = max((n.status for n in parts), key=lambda s: _RANK[s])
    ci95 = None
    noisy = [n for n in parts if n.status == "noisy"]
    if status == "noisy" and all(n.ci95 is not None for n in noisy):
        half2 = 0.0
        for n in parts:
            if n.ci95 is not None:
                half2 += (max(n.count - n.ci95[0], n.ci95[1] - n.count)) ** 2
        half = math.sqrt(half2)
        ci95 = (max(0, math.floor(count - half)), math.ceil(count + half))
    protected = None
    bounds = [n for n in parts if n.status == "lower-bound"]
    if bounds and all(n.protected is not None for n in bounds):
        protected = sum(n.protected or 0 for n in bounds)
    return Number(count, status, ci95, protected)


def dimension_value(cell: FlowCell, dim: str) -> str | None:
    """The cell's value of a dimension: a code, ``_T``, or None (not published).
    A nationality the country coarsened to its region is ``[region]``."""
    if dim == "nationality":
        if cell.nationality == TOTAL or (not cell.nationality and cell.region == TOTAL):
            return TOTAL
        if cell.nationality:
            return cell.nationality
        return f"[{cell.region}]" if cell.region else None
    value: str | None = getattr(cell, dim)
    return value


def table_of(cell: FlowCell) -> frozenset[str]:
    """The dimensions a cell gives a value for (neither ``_T`` nor unpublished)."""
    return frozenset(
        d for d in DIMENSIONS if (v := dimension_value(cell, d)) is not None and v != TOTAL
    )


def number_of(cell: FlowCell) -> Number:
    """A published cell as a number: ``noisy`` (obs_status N), ``rounded`` (E) or ``exact``."""
    if cell.obs_status == "N":
        return Number(cell.count, "noisy", cell.ci95)
    if cell.estimated:
        return Number(cell.count, "rounded")
    return Number(cell.count, "exact")


@dataclass(frozen=True)
class Answer:
    """One number of a view for one country and period, with the cells it sums."""

    period: str
    period_type: str
    country: str
    key: tuple[str | None, ...]
    number: Number
    cells: tuple[FlowCell, ...]

    @property
    def first(self) -> FlowCell:
        return self.cells[0]


def _choose(
    tables: dict[frozenset[str], list[FlowCell]], want: frozenset[str]
) -> frozenset[str] | None:
    if want in tables:
        return want
    finer = [s for s in tables if s > want]
    if not finer:
        return None
    return min(finer, key=lambda s: (len(s), -sum(c.count for c in tables[s]), sorted(s)))


def resolve(cells: Sequence[FlowCell], keep: Sequence[str]) -> list[Answer]:
    """The answers to the question that keeps ``keep``, per country and period,
    each from the most precise table the country published (module docstring).
    A country that published no table keeping those dimensions gives none."""
    want = frozenset(keep)
    by_cp: dict[tuple[str, str], list[FlowCell]] = defaultdict(list)
    for c in cells:
        by_cp[(c.period, c.country)].append(c)
    out: list[Answer] = []
    for (period, country), group in by_cp.items():
        tables: dict[frozenset[str], list[FlowCell]] = defaultdict(list)
        for c in group:
            tables[table_of(c)].append(c)
        chosen = _choose(tables, want)
        if chosen is None:
            continue
        rows: dict[tuple[str | None, ...], list[FlowCell]] = defaultdict(list)
        for c in tables[chosen]:
            rows[tuple(dimension_value(c, d) for d in keep)].append(c)
        numbers: dict[tuple[str | None, ...], Number] = {}
        for key, cs in rows.items():
            n = combine(number_of(c) for c in cs)
            if chosen != want:
                n = Number(n.count, "lower-bound")
            numbers[key] = n
        if chosen != want:
            _complete_from_totals(numbers, rows, tables, keep, want)
        out.extend(
            Answer(period, group[0].period_type, country, key, numbers[key], tuple(rows[key]))
            for key in rows
        )
    return _without_overlaps(out)


def containing_periods(period: str) -> tuple[str, ...]:
    """The coarser periods a period label lies in, up the flows' own ladder
    (``node.policy.atoms.coarser_period``): an ISO week's month (of its
    Thursday) and quarter; a month's quarter; none for a quarter."""
    if "-Q" in period:
        return ()
    up = coarser_period(period, "iso_week" if "-W" in period else "month")
    return (up, *containing_periods(up))


def _without_overlaps(answers: list[Answer]) -> list[Answer]:
    """A country's answer for a coarse period (a month its detail was coarsened
    to) is left out where the same country answers the same row for a finer
    period inside it from another table (a week of its week x nationality
    table): that cell covers the week's encounters the month cell holds too, and
    a reader adding rows would count them twice. Week and month cells of the
    same table never overlap (a release is a partition of its atoms: a group is
    coarsened whole), so a month's answer stays beside weeks answered from
    that table (e.g. corridor legs summed from the detail)."""
    fine: dict[tuple[str, str, tuple[str | None, ...]], set[frozenset[str]]] = defaultdict(set)
    for a in answers:
        for coarse in containing_periods(a.period):
            fine[(a.country, coarse, a.key)].add(table_of(a.first))
    return [
        a
        for a in answers
        if not fine.get((a.country, a.period, a.key), set()) - {table_of(a.first)}
    ]


def _complete_from_totals(
    numbers: dict[tuple[str | None, ...], Number],
    rows: dict[tuple[str | None, ...], list[FlowCell]],
    tables: dict[frozenset[str], list[FlowCell]],
    keep: Sequence[str],
    want: frozenset[str],
) -> None:
    """Sums of detail cells checked against the finest exact total the country
    published above them: equal, and every cell exact, makes them exact; a
    single sum under a larger total learns how many encounters are protected."""
    coarser = [s for s in tables if s < want]
    if not coarser:
        return
    above = max(coarser, key=lambda s: (len(s), sorted(s)))
    for total in tables[above]:
        if number_of(total).status != "exact":
            continue
        under = [
            key
            for key in rows
            if all(dimension_value(total, d) == key[i] for i, d in enumerate(keep) if d in above)
        ]
        shown = sum(numbers[k].count for k in under)
        exact_cells = all(number_of(c).status == "exact" for k in under for c in rows[k])
        if shown == total.count and exact_cells:
            for k in under:
                numbers[k] = Number(numbers[k].count, "exact")
        elif shown < total.count and len(under) == 1:
            k = under[0]
            numbers[k] = Number(numbers[k].count, "lower-bound", None, total.count - shown)
