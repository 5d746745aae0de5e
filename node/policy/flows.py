"""Flow statistics: count raw encounters into cells, then suppress small ones.

A cell is one period and one combination of the policy's dimensions. Cells
below the policy's minimum size are suppressed: they are not sent at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from node.model.codes import age_at, age_band, iso_week, region_of
from node.policy.model import FlowStatisticsRules, PeriodType

#: Value of a dimension whose raw value is unknown (SDMX's "_U").
UNKNOWN = "_U"

#: What the engine needs of a raw record: nothing identifying.
#: (nationality, sex, date_of_birth, encounter_date, previous_country)
FlowInput = tuple[str, str, date, date, str | None]


@dataclass(frozen=True, order=True)
class FlowCell:
    """One statistic cell: period, dimension values in policy order, count."""

    period: str
    dimensions: tuple[tuple[str, str], ...]
    count: int

    def subject(self, country: str) -> str:
        dims = ",".join(f"{name}={value}" for name, value in self.dimensions)
        return f"FlowStatistic|{country}|{self.period}|{dims}"


def period_label(day: date, period: PeriodType) -> str:
    if period == "iso_week":
        return iso_week(day)
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _dimension_value(name: str, row: FlowInput) -> str:
    nationality, sex, born, encountered, previous = row
    if name == "nationality":
        return nationality
    if name == "nationality_region":
        return region_of(nationality)
    if name == "sex":
        return sex
    if name == "age_band":
        return age_band(age_at(born, encountered))
    if name == "previous_country":
        return previous or UNKNOWN
    raise ValueError(f"unknown flow dimension {name}")


def count_cells(rows: Iterable[FlowInput], rules: FlowStatisticsRules) -> list[FlowCell]:
    """Count rows into cells of the policy's period and dimensions."""
    names = tuple(rules.dimensions)
    counts: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for row in rows:
        key = tuple(_dimension_value(name, row) for name in names)
        counts[(period_label(row[3], rules.period), key)] += 1
    return sorted(
        FlowCell(period, tuple(zip(names, values, strict=True)), n)
        for (period, values), n in counts.items()
    )


def suppress_small_cells(
    cells: Iterable[FlowCell], min_cell_size: int
) -> tuple[list[FlowCell], list[FlowCell]]:
    """Split cells into (published, suppressed) by the minimum cell size."""
    published: list[FlowCell] = []
    suppressed: list[FlowCell] = []
    for cell in cells:
        (published if cell.count >= min_cell_size else suppressed).append(cell)
    return published, suppressed
