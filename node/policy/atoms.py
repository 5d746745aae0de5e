"""Flow statistics' cells: count raw encounters into atoms, label them, and
find the keys of an atom at each level of the policy's ladders and tables.

Vocabulary:

- an **atom** is the finest cell: one period of the policy's type and one value
  of every dimension, counted from raw records;
- a **block** is the unit released and protected together: the period, or the
  coarser period when the policy lets small cells climb the period ladder (a
  week belongs to the month of its Thursday, as ISO 8601 puts a week in a year);
- a **release** of a block is a partition of its atoms into published cells
  (fine atoms or coarsened groups) and hidden atoms (suppressed).

What is released of a block is decided in ``node.policy.block``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from node.model.codes import age_at, age_band, iso_week, region_of
from node.policy.flow_rules import FlowStatisticsRules, PeriodType

#: Value of a dimension whose raw value is unknown (SDMX's "_U").
UNKNOWN = "_U"
#: Value of a dimension a table cell sums over (SDMX's "_T", total).
TOTAL = "_T"
#: Inside the engine only: a table cell's key holds this prefix and the region
#: in the nationality position of a table by region of nationality.
_REGION_TOTAL = "_T/"

#: What the engine needs of a raw record: nothing identifying.
#: (nationality, sex, date_of_birth, encounter_date, previous_country)
FlowInput = tuple[str, str, date, date, str | None]

#: (fine period label, dimension values in policy order)
AtomKey = tuple[str, tuple[str, ...]]

_NEXT_PERIOD: dict[str, PeriodType] = {"iso_week": "month", "month": "quarter"}


@dataclass(frozen=True, order=True)
class FlowCell:
    """One published statistic cell: period, dimension values, count."""

    period: str
    dimensions: tuple[tuple[str, str], ...]
    count: int
    period_type: str = "iso_week"
    estimated: bool = False  # rounded
    coarsened: bool = False
    #: A noisy count (differential privacy, node.policy.privacy): its 95%
    #: interval, the noise scale and the measurement's epsilon.
    ci95: tuple[int, int] | None = None
    noise_scale: float | None = None
    epsilon: float | None = None
    #: A cell of a table other than the detail (it carries _T where it sums).
    table: bool = False

    def subject(self, country: str) -> str:
        dims = ",".join(f"{name}={value}" for name, value in self.dimensions)
        return f"FlowStatistic|{country}|{self.period}|{dims}"


def cell_dimensions(names: Iterable[str], values: Iterable[str]) -> dict[str, str]:
    """The dimensions of an atom's or a table cell's key by name, as a label
    carries them (a table by region of nationality names nationality_region)."""
    out: dict[str, str] = {}
    for name, value in zip(names, values, strict=True):
        if value.startswith(_REGION_TOTAL):
            out["nationality_region"] = value[len(_REGION_TOTAL) :]
        else:
            out[name] = value
    return out


def period_label(day: date, period: PeriodType) -> str:
    if period == "iso_week":
        return iso_week(day)
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def coarser_period(label: str, period: PeriodType) -> str:
    """The label one step up the period ladder: week -> month (of its Thursday),
    month -> quarter."""
    if period == "iso_week":
        year, week = label.split("-W")
        return period_label(date.fromisocalendar(int(year), int(week), 4), "month")
    if period == "month":
        year, month = label.split("-")
        return f"{year}-Q{(int(month) - 1) // 3 + 1}"
    raise ValueError("quarter is the top of the period ladder")


def dimension_value(name: str, row: FlowInput) -> str:
    """The value of one flow dimension for a raw record (``_U`` for no previous country)."""
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


def atom_of(row: FlowInput, rules: FlowStatisticsRules) -> AtomKey:
    """The finest flow cell one raw record counts in."""
    values = tuple(dimension_value(name, row) for name in rules.dimensions)
    return (period_label(row[3], rules.period), values)


def count_atoms(rows: Iterable[FlowInput], rules: FlowStatisticsRules) -> Counter[AtomKey]:
    """Count rows into the finest cells of the policy's period and dimensions."""
    names = tuple(rules.dimensions)
    counts: Counter[AtomKey] = Counter()
    for row in rows:
        key = tuple(dimension_value(name, row) for name in names)
        counts[(period_label(row[3], rules.period), key)] += 1
    return counts


def count_cells(rows: Iterable[FlowInput], rules: FlowStatisticsRules) -> list[FlowCell]:
    """Count rows into cells of the policy's period and dimensions (no protection)."""
    names = tuple(rules.dimensions)
    return sorted(
        FlowCell(period, tuple(zip(names, values, strict=True)), n, rules.period)
        for (period, values), n in count_atoms(rows, rules).items()
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


def round_count(count: int, base: int, minimum: int) -> int:
    """Nearest multiple of ``base`` (halves up), never below ``minimum``."""
    if base <= 1:
        return count
    rounded = ((count + base // 2) // base) * base
    floor = -(-minimum // base) * base
    return max(rounded, floor)


# -- the ladders ----------------------------------------------------------------


class Shape:
    """Keys of an atom at each ladder level, and the labels of coarse cells."""

    def __init__(self, rules: FlowStatisticsRules) -> None:
        self.rules = rules
        self.names = tuple(rules.dimensions)
        self.ladders = tuple(rules.coarsen)
        self._nat = self.names.index("nationality") if "nationality" in self.names else -1
        self._memo: dict[tuple[AtomKey, int], tuple[str, tuple[str, ...]]] = {}
        #: The tables other than the detail: cell level -(i + 1) is tables[i].
        self.tables = rules.table_list()
        self._table_pos: list[tuple[tuple[int, ...], bool]] = []
        for table in self.tables:
            positions: list[int] = []
            by_region = False
            for d in table:
                if d == "nationality_region" and d not in self.names:
                    by_region = True  # the region of the nationality dimension
                else:
                    positions.append(self.names.index(d))
            self._table_pos.append((tuple(positions), by_region))

    def block_of(self, atom: AtomKey) -> str:
        if "period" in self.ladders:
            return coarser_period(atom[0], self.rules.period)
        return atom[0]

    def table_key(self, atom: AtomKey, table: int) -> AtomKey:
        """The key of the cell of ``tables[table]`` that counts ``atom``: TOTAL in
        the positions it sums over (a region, marked, for a table by region)."""
        positions, by_region = self._table_pos[table]
        period, values = atom
        out = [TOTAL] * len(values)
        for p in positions:
            out[p] = values[p]
        if by_region:
            out[self._nat] = _REGION_TOTAL + region_of(values[self._nat])
        return (period, tuple(out))

    def table_cells(self, atoms: Iterable[AtomKey]) -> dict[tuple[int, AtomKey], set[AtomKey]]:
        """(table, key) -> the atoms each table cell sums."""
        out: dict[tuple[int, AtomKey], set[AtomKey]] = defaultdict(set)
        for atom in atoms:
            for i in range(len(self.tables)):
                out[(i, self.table_key(atom, i))].add(atom)
        return out

    def key_at(self, atom: AtomKey, level: int) -> tuple[str, tuple[str, ...]]:
        if level < 0:
            return self.table_key(atom, -level - 1)
        memo = self._memo.get((atom, level))
        if memo is not None:
            return memo
        period, values = atom
        steps = self.ladders[:level]
        if "period" in steps:
            period = coarser_period(period, self.rules.period)
        if "nationality" in steps and self._nat >= 0:
            values = (*values[: self._nat], region_of(values[self._nat]), *values[self._nat + 1 :])
        key = (period, values)
        self._memo[(atom, level)] = key
        return key

    def cell(self, level: int, key: tuple[str, tuple[str, ...]], count: int) -> FlowCell:
        rounded = round_count(count, self.rules.rounding, self.rules.min_cell_size)
        if level < 0:
            dims: list[tuple[str, str]] = []
            for name, value in zip(self.names, key[1], strict=True):
                if value.startswith(_REGION_TOTAL):
                    dims.append(("nationality_region", value[len(_REGION_TOTAL) :]))
                else:
                    dims.append((name, value))
            return FlowCell(
                key[0],
                tuple(dims),
                rounded,
                self.rules.period,
                estimated=self.rules.rounding > 1,
                table=True,
            )
        steps = self.ladders[:level]
        period_type: str = self.rules.period
        if "period" in steps:
            period_type = _NEXT_PERIOD[self.rules.period]
        names = tuple(
            "nationality_region" if (n == "nationality" and "nationality" in steps) else n
            for n in self.names
        )
        return FlowCell(
            key[0],
            tuple(zip(names, key[1], strict=True)),
            rounded,
            period_type,
            estimated=self.rules.rounding > 1,
            coarsened=level > 0,
        )

    def margin_groups(self, atoms: Iterable[AtomKey]) -> list[frozenset[AtomKey]]:
        groups: dict[tuple[int, str, tuple[str, ...]], set[AtomKey]] = defaultdict(set)
        for i, margin in enumerate(self.rules.margins):
            positions = [self.names.index(d) for d in margin]
            for atom in atoms:
                groups[(i, atom[0], tuple(atom[1][p] for p in positions))].add(atom)
        return [frozenset(g) for g in groups.values()]
