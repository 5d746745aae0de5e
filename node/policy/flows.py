"""Flow statistics: count raw encounters into cells, coarsen, suppress, round.

Vocabulary:

- an **atom** is the finest cell: one period of the policy's type and one value
  of every dimension, counted from raw records;
- a **block** is the unit released and protected together: the period, or the
  coarser period when the policy lets small cells climb the period ladder (a
  week belongs to the month of its Thursday, as ISO 8601 puts a week in a year);
- a **release** of a block is a partition of its atoms into published cells
  (fine atoms or coarsened groups) and hidden atoms (suppressed).

Steps, per block (``release_block``):

1. *coarsen before suppress*: for each ladder in ``coarsen`` (period: week >
   month > quarter; nationality: country > UN M49 region), the group of cells
   sharing a coarser key is merged into one cell when any of them is below the
   minimum. A group is merged whole, so no published cell overlaps another and a
   coarse cell never sits beside the fine cells it covers;
2. *primary suppression*: cells still below the minimum are hidden;
3. *secondary suppression*: an outsider knows the published cells, the margins
   the policy declares public, and the previous release of the same block
   (from the suppression ledger), where an atom whose count did not change is
   the same unknown in both. While any small atom can be determined exactly
   from those equations (``node.policy.disclosure``), one more published cell in
   the equations that reach it is hidden, the smallest that removes the
   leak first. A group coarsened in the previous release is merged again, and a
   group whose atoms were published one by one before is not merged now;
4. *rounding*: published counts go to the nearest multiple of the base, never
   below the minimum (obs_status ``E``).
"""

from __future__ import annotations

import heapq
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from node.model.codes import age_at, age_band, iso_week, region_of
from node.policy.audit import Interval, LinearModel, Relaxation
from node.policy.model import FlowStatisticsRules, PeriodType

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

log = logging.getLogger("corredor.policy")


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


# -- the ledger of one block --------------------------------------------------------

#: (level, atoms) of one published cell.
CellMembers = tuple[int, frozenset[AtomKey]]
#: (atoms, lowest, highest) of a sum another exchange revealed to an audience.
KnownSum = tuple[frozenset[AtomKey], int, int]

#: A block takes at most this many releases; after that it is frozen and its
#: last release is sent again as it is, whatever late records arrive (so the
#: ledger, and the audit of a block, stay bounded).
MAX_RELEASES = 8


@dataclass(frozen=True)
class PastRelease:
    """One release of a block as its audience saw it, with the counts behind it."""

    atoms: dict[AtomKey, int]
    cells: tuple[CellMembers, ...]
    #: Sums the encounter records sent to the same audience revealed (by audience).
    known: dict[str, tuple[KnownSum, ...]] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {
            "atoms": [[p, list(v), n] for (p, v), n in sorted(self.atoms.items())],
            "cells": [
                [level, sorted([p, list(v)] for p, v in members)] for level, members in self.cells
            ],
            "known": {
                audience: [[sorted([p, list(v)] for p, v in m), lo, hi] for m, lo, hi in sums]
                for audience, sums in sorted(self.known.items())
            },
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PastRelease:
        def members(items: list[Any]) -> frozenset[AtomKey]:
            return frozenset((p, tuple(v)) for p, v in items)

        return cls(
            {(p, tuple(v)): int(n) for p, v, n in data["atoms"]},
            tuple((int(level), members(m)) for level, m in data["cells"]),
            {
                audience: tuple((members(m), int(lo), int(hi)) for m, lo, hi in sums)
                for audience, sums in data.get("known", {}).items()
            },
        )


@dataclass(frozen=True)
class ForeignBlock:
    """Every release of one block made under an older policy shape, kept in the
    ledger entries of the blocks of the current shape it overlaps so that their
    releases are checked against it (``node.policy.shapes``)."""

    shape: tuple[str, ...]  # see ``shape_of``
    rounding: int
    protection: int
    block: str  # its block under that shape
    releases: tuple[PastRelease, ...]
    #: Order of the shape changes: a block of era 2 was released after those of era 1.
    era: int = 1
    #: The shape's margins exactly (None: kept before they were; the shape's
    #: margins field reads "" as a public total, the stricter reading).
    margins: Margins | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "era": self.era,
            "shape": list(self.shape),
            "rounding": self.rounding,
            "protection": self.protection,
            "block": self.block,
            "history": [r.to_data() for r in self.releases],
        }
        if self.margins is not None:
            data["margins"] = [list(m) for m in self.margins]
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ForeignBlock:
        return cls(
            tuple(data["shape"]),
            int(data["rounding"]),
            int(data["protection"]),
            str(data["block"]),
            tuple(PastRelease.from_data(r) for r in data["history"]),
            int(data.get("era", 1)),
            _margins_from(data.get("margins")),
        )


#: A shape's public margins exactly: each the dimensions it keeps.
Margins = tuple[tuple[str, ...], ...]


def margins_of(rules: FlowStatisticsRules) -> Margins:
    return tuple(tuple(m) for m in rules.margins)


def _margins_from(data: Any) -> Margins | None:
    return None if data is None else tuple(tuple(str(d) for d in m) for m in data)


@dataclass(frozen=True)
class BlockLedger:
    """Every release of one block, kept at home to protect the next one.

    Holds counts derived from raw data: it never leaves the node. ``atoms`` and
    ``cells`` are the last release's; ``history`` holds every release made under
    the current shape, oldest first, the last one included."""

    shape: tuple[str, ...]  # minimum, period, dimensions, ladders, margins: changed = afresh
    atoms: dict[AtomKey, int]
    cells: tuple[CellMembers, ...]  # (level, members) of published cells
    primary: int = 0
    secondary: int = 0
    history: tuple[PastRelease, ...] = ()
    #: Blocks released under older shapes that this block overlaps.
    foreign: tuple[ForeignBlock, ...] = ()
    #: The shape's margins exactly (None in an entry written before they were
    #: kept: "" in ``shape`` is then read as a public total).
    margins: Margins | None = None

    def releases(self) -> tuple[PastRelease, ...]:
        """Every release, oldest first (an entry from before the history was
        kept holds its last release only)."""
        return self.history or (PastRelease(self.atoms, self.cells),)

    @property
    def frozen(self) -> bool:
        return len(self.releases()) >= MAX_RELEASES

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "shape": list(self.shape),
            "primary": self.primary,
            "secondary": self.secondary,
            "history": [r.to_data() for r in self.releases()],
        }
        if self.foreign:
            data["foreign"] = [f.to_data() for f in self.foreign]
        if self.margins is not None:
            data["margins"] = [list(m) for m in self.margins]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BlockLedger:
        data = json.loads(text)
        if "history" in data:
            history = tuple(PastRelease.from_data(r) for r in data["history"])
        else:  # an entry written before every release was kept
            history = (PastRelease.from_data(data),)
        last = history[-1]
        return cls(
            tuple(data["shape"]),
            last.atoms,
            last.cells,
            int(data.get("primary", 0)),
            int(data.get("secondary", 0)),
            history,
            tuple(ForeignBlock.from_data(f) for f in data.get("foreign", ())),
            _margins_from(data.get("margins")),
        )


def shape_of(rules: FlowStatisticsRules) -> tuple[str, ...]:
    """What a release's cells depend on besides the counts; a ledger entry made
    under another shape is not reused."""
    shape: tuple[str, ...] = (
        str(rules.min_cell_size),
        rules.period,
        ",".join(rules.dimensions),
        ",".join(rules.coarsen),
        ";".join(",".join(m) for m in rules.margins),
    )
    tables = rules.table_list()
    if tables:  # a policy without tables keeps the shape it had before them
        shape += ("tables:" + ";".join(",".join(t) for t in tables),)
    return shape


# -- one block ------------------------------------------------------------------------


@dataclass
class BlockRelease:
    block: str
    atoms: dict[AtomKey, int]
    cells: list[CellMembers]  # published (level, members)
    primary: int = 0  # atoms hidden because their cell stayed below the minimum
    secondary: int = 0  # atoms hidden to protect others
    coarsened: int = 0  # published cells above the finest level
    #: Cells of the tables other than the detail: published ones are in
    #: ``cells`` at a negative level; these are the hidden ones.
    table_primary: int = 0  # below the minimum
    table_secondary: int = 0  # hidden to protect others
    ledger: BlockLedger | None = None
    #: The audit of this release: narrowest hidden interval and how many are protected.
    audit: BlockAudit | None = None

    @property
    def hidden(self) -> set[AtomKey]:
        covered = {a for level, members in self.cells if level >= 0 for a in members}
        return set(self.atoms) - covered

    @property
    def table_cells(self) -> int:
        return sum(1 for level, _ in self.cells if level < 0)


def release_block(
    block: str,
    atoms: dict[AtomKey, int],
    rules: FlowStatisticsRules,
    previous: BlockLedger | None = None,
    known: Mapping[str, Iterable[KnownSum]] | None = None,
) -> BlockRelease:
    """Decide what of one block is published; see the module docstring.

    ``known`` holds, per audience of the flows, the sums of atoms another
    exchange sent to that audience reveals (encounter records' counts)."""
    shape = Shape(rules)
    minimum = rules.min_cell_size
    if previous is not None and previous.shape != shape_of(rules):
        previous = None
    known_now = {a: tuple(sums) for a, sums in (known or {}).items() if sums}
    if previous is not None and (
        previous.frozen or (previous.atoms == atoms and previous.releases()[-1].known == known_now)
    ):
        # Nothing changed since the last release (publishing the same cells
        # again tells nobody anything new), or the block has had all the
        # releases it may have: its last release is sent again as it was.
        # Nothing outside the block can have changed its attacker's model:
        # the model holds the block's own atoms only (every table counts at
        # the fine period, and a week lies in the month of its Thursday;
        # margins are taken within the block; other exchanges' sums come per
        # block, compared just above; atoms of other blocks are independent
        # unknowns), and a shape change drops ``previous`` above.
        # tests/test_sdc_skip.py holds it to the exact audit.
        table_sums = [
            sum(previous.atoms[a] for a in m) for m in shape.table_cells(previous.atoms).values()
        ]
        table_primary = sum(1 for n in table_sums if n < minimum)
        return BlockRelease(
            block,
            dict(previous.atoms),
            list(previous.cells),
            primary=previous.primary,
            secondary=previous.secondary,
            coarsened=sum(1 for level, _ in previous.cells if level > 0),
            table_primary=table_primary,
            table_secondary=len(table_sums)
            - table_primary
            - sum(1 for level, _ in previous.cells if level < 0),
            ledger=previous,
        )
    prev_level: dict[AtomKey, int] = {}
    if previous is not None:
        for level, members in previous.cells:
            if level < 0:
                continue  # a table cell: not a level of the detail's ladders
            for atom in members:
                prev_level[atom] = level
    forced = {
        (level, shape.key_at(next(iter(members)), level))
        for level, members in (previous.cells if previous else ())
        if level > 0
    }

    level_of = dict.fromkeys(atoms, 0)
    for level in range(1, len(shape.ladders) + 1):
        groups: dict[tuple[str, tuple[str, ...]], list[AtomKey]] = defaultdict(list)
        for atom in atoms:
            groups[shape.key_at(atom, level)].append(atom)
        for key, group in groups.items():
            cell_sums: Counter[tuple[int, tuple[str, tuple[str, ...]]]] = Counter()
            for atom in group:
                lv = level_of[atom]
                cell_sums[(lv, shape.key_at(atom, lv))] += atoms[atom]
            small = any(n < minimum for n in cell_sums.values())
            blocked = any(prev_level.get(a, level) < level for a in group)
            if ((level, key) in forced or small) and not blocked:
                for atom in group:
                    level_of[atom] = level

    by_cell: dict[tuple[int, tuple[str, tuple[str, ...]]], set[AtomKey]] = defaultdict(set)
    for atom, level in level_of.items():
        by_cell[(level, shape.key_at(atom, level))].add(atom)
    published: list[CellMembers] = []
    primary = 0
    for (level, _key), cell_atoms in sorted(by_cell.items()):
        if sum(atoms[a] for a in cell_atoms) < minimum:
            primary += len(cell_atoms)
        else:
            published.append((level, frozenset(cell_atoms)))
    # the other tables: a cell below the minimum is hidden like an atom
    table_primary = 0
    for (table, _key), table_atoms in sorted(shape.table_cells(atoms).items()):
        if sum(atoms[a] for a in table_atoms) < minimum:
            table_primary += 1
        else:
            published.append((-table - 1, frozenset(table_atoms)))
    table_candidates = sum(1 for level, _ in published if level < 0)

    history = previous.releases() if previous is not None else ()
    published, audit = protect(atoms, published, rules, shape, history, known_now)
    secondary = len(atoms) - primary - sum(len(m) for lv, m in published if lv >= 0)
    release = BlockRelease(
        block,
        dict(atoms),
        published,
        primary=primary,
        secondary=secondary,
        coarsened=sum(1 for level, _ in published if level > 0),
        table_primary=table_primary,
        table_secondary=table_candidates - sum(1 for level, _ in published if level < 0),
        audit=audit,
    )
    this = PastRelease(dict(atoms), tuple(published), known_now)
    release.ledger = BlockLedger(
        shape_of(rules),
        dict(atoms),
        tuple(published),
        primary,
        secondary,
        (*history, this),
        previous.foreign if previous is not None else (),
        margins_of(rules),
    )
    return release


# -- the audit of a block -------------------------------------------------------------

#: (release index, atom): the count of one atom at one release.
Var = tuple[int, AtomKey]

#: The audience of the flows that receives nothing else.
FLOWS_ONLY = ""


def protection_level(rules: FlowStatisticsRules) -> int:
    """The width every hidden count's feasible interval must keep."""
    return rules.protection if rules.protection is not None else rules.min_cell_size


def published_range(count: int, rules: FlowStatisticsRules) -> tuple[int, int]:
    """What a reader knows of a published cell's true count from its value."""
    base = rules.rounding
    shown = round_count(count, base, rules.min_cell_size)
    if base <= 1:
        return shown, shown
    low = max(shown - base // 2, rules.min_cell_size)
    return low, shown + base - base // 2 - 1


@dataclass(frozen=True)
class BlockAudit:
    """What the attacker's model found for one block: the narrowest interval of
    a hidden count (None when nothing is hidden) and how many hidden counts keep
    the protection level."""

    narrowest: tuple[Var, Interval] | None
    protected: int
    hidden: int
    passes: bool
    #: Hidden counts the history and margins alone pin tighter than the level.
    unavoidable: int = 0


class AttackerModel:
    """What one audience knows of one block's counts (see ``attacker_model``).

    Atoms that sit in the same facts in every release are interchangeable: an
    attacker cannot tell them apart, and moving the class's count from one
    member to another (in every release at once) keeps every fact true, sums
    of growing counts growing. So the programme has one unknown per class and
    release, and a member of a class of two or more ranges over [0, max of
    the class's count]; a class of one over [min, max] of its count.

    ``hide`` takes a published cell of the last release out of the model
    without building it again: its fact is dropped, and the classes whose
    atoms now sit in the same facts (they differed by that cell only) count
    as one, their unknowns summed. A model with the classes split finer is
    the same model: every fact holds all of such a group's unknowns or none,
    so any value of the group's sum can be put on one of them (integral when
    the sum is), and the range of each sum, the LP's and the integer one, is
    what the model built afresh would find for its one unknown."""

    def __init__(
        self,
        model: LinearModel[tuple[int, int]],
        targets: set[Var],
        class_of: dict[AtomKey, int],
        sizes: dict[int, int],
        truth: dict[Var, int],
        sums: Mapping[Var, frozenset[AtomKey]] | None = None,
        sum_levels: Mapping[Var, int] | None = None,
        cell_rows: Mapping[CellMembers, int] | None = None,
        signatures: Mapping[int, tuple[Any, ...]] | None = None,
        cell_facts: Mapping[CellMembers, int] | None = None,
    ) -> None:
        self.model = model
        #: The fact of the model each published cell of the last release is.
        self.cell_rows = dict(cell_rows or {})
        self._relaxation: Relaxation[tuple[int, int]] | None = None
        self.targets = targets
        self.class_of = class_of
        self.sizes = sizes
        self.truth = truth
        #: Sensitive table cells among the targets: (release, key) -> its atoms.
        #: Every class lies wholly inside or outside each of them.
        self.sums = dict(sums or {})
        self.sum_levels = dict(sum_levels or {})
        #: each class's signature (the facts its atoms are in, by release) and
        #: each published cell's index among the last release's facts
        self._signature = dict(signatures or {})
        self._cell_facts = dict(cell_facts or {})
        #: the classes that count as one since cells were hidden, by the
        #: lowest of them (a class alone is not listed)
        self._group: dict[int, list[int]] = {}
        self._by_signature: dict[tuple[Any, ...], list[int]] | None = None
        #: the unknowns of each group, as pairs (for ``component``)
        self._links: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self._cache: dict[tuple[int, int], Interval] = {}
        self._sum_cache: dict[Var, Interval] = {}
        self._releases = 1 + max((t for t, _ in truth), default=0)
        #: the true count of each (release, class): a feasible point of the model
        self._true: dict[tuple[int, int], int] = defaultdict(int)
        for (t, a), n in truth.items():
            self._true[(t, class_of[a])] += n

    def _key(self, v: Var) -> tuple[int, int]:
        return (v[0], self.class_of[v[1]])

    def _keys(self, v: Var) -> list[tuple[int, int]]:
        """The unknowns whose sum is atom ``v``'s class's count, the lowest first."""
        t, c = self._key(v)
        group = self._group.get(c)
        return [(t, c)] if group is None else [(t, d) for d in group]

    def hide(self, cell: CellMembers) -> None:
        """The model as if ``cell``, a published cell of the last release, had
        been hidden: what building it again without the cell finds (see the
        class docstring). The targets stay: a published cell is at or above
        the minimum, so hiding it makes no count sensitive."""
        row = self.cell_rows.pop(cell)
        index = self._cell_facts.pop(cell)
        self.model.drop(row)
        if self._relaxation is not None:
            self._relaxation.drop(row)
        if self._by_signature is None:
            self._by_signature = {sig: [c] for c, sig in self._signature.items()}
        touched: list[tuple[Any, ...]] = []
        for c in {self.class_of[a] for a in cell[1]}:
            old = self._signature[c]
            *earlier, (rows, grew, inside) = old
            new = (*earlier, (tuple(i for i in rows if i != index), grew, inside))
            self._signature[c] = new
            self._by_signature[old].remove(c)
            self._by_signature.setdefault(new, []).append(c)
            touched += [old, new]
        for sig in touched:
            classes = self._by_signature.get(sig)
            if not classes:
                self._by_signature.pop(sig, None)
                continue
            classes.sort()
            for c in classes:
                if len(classes) > 1:
                    self._group[c] = classes
                else:
                    self._group.pop(c, None)
        self._links = [
            ((t, group[0]), (t, c))
            for c, group in self._group.items()
            if c != group[0]
            for t in range(self._releases)
        ]
        self._cache.clear()
        self._sum_cache.clear()

    def members_of(self, v: Var) -> frozenset[AtomKey]:
        """The atoms a target counts: itself, or a table cell's."""
        return self.sums.get(v, frozenset({v[1]}))

    def level_of(self, v: Var) -> int:
        """The cell level a target belongs to: 0 for an atom, a table's below 0."""
        return self.sum_levels.get(v, 0)

    def _sum_keys(self, v: Var) -> list[tuple[int, int]]:
        return sorted({(v[0], self.class_of[a]) for a in self.sums[v]})

    def interval(self, v: Var) -> Interval:
        if v in self.sums:
            found = self._sum_cache.get(v)
            if found is None:
                found = self.model.sum_interval(self._sum_keys(v))
                self._sum_cache[v] = found
            return found
        keys = self._keys(v)
        key = keys[0]
        cached = self._cache.get(key)
        if cached is None:
            if len(keys) > 1:
                cached = Interval(0.0, self.model.sum_interval(keys).high)
            elif self.sizes[key[1]] == 1:
                cached = self.model.interval(key)
            else:
                cached = Interval(0.0, self.model.class_interval([key]).high)
            self._cache[key] = cached
        return cached

    def width_bound(self, v: Var, level: float) -> float:
        """The width of ``v``'s interval, or a lower bound of it that is at
        least ``level`` (the minimum lies at or below the true count, so a
        maximum ``level`` above it settles the question with one programme)."""
        if v in self.sums:
            return self.interval(v).width
        keys = self._keys(v)
        key = keys[0]
        cached = self._cache.get(key)
        if cached is not None:
            return cached.width
        if len(keys) > 1:
            true = sum(self._true[k] for k in keys)
            return true if true >= level else self.interval(v).width
        # the true counts and every integer point the solver met are feasible
        # points: the range of values seen lies inside the interval
        true = self._true[key]
        seen_lo, seen_hi = self.model.seen_range(key)
        if self.sizes[key[1]] > 1:
            if max(seen_hi, true) >= level:
                return max(seen_hi, true)  # the interval is [0, max]
            return self.interval(v).width
        spread = max(seen_hi, true) - min(seen_lo, true)
        if spread >= level:
            return spread
        high = -self.model.minimum({key: -1.0})
        if high - true >= level:
            return high - true
        return self.interval(v).width

    def _relaxed(self, v: Var) -> tuple[Relaxation[tuple[int, int]], list[tuple[int, int]], bool]:
        """The relaxation (built on first use), ``v``'s unknowns in it, and
        whether its range is measured from zero (a class of several atoms)."""
        if self._relaxation is None:
            self._relaxation = self.model.relaxation()
        if v in self.sums:
            return self._relaxation, list(self._sum_keys(v)), False
        keys = self._keys(v)
        return self._relaxation, keys, len(keys) > 1 or self.sizes[keys[0][1]] > 1

    def relaxed_binding(self, v: Var) -> tuple[float, set[int]]:
        """``relaxed_width(v)`` and the facts (``cell_rows`` values) whose
        dropping may widen it: those with a dual value at its optima."""
        relaxation, keys, from_zero = self._relaxed(v)
        return relaxation.binding(keys, from_zero=from_zero)

    def relaxed_width(self, v: Var, without: CellMembers | None = None) -> float:
        """The width of ``v``'s interval in the model's linear relaxation, with
        the published cell ``without`` of the last release taken out (a trial:
        what hiding it would leave; the classes are not formed again). Only
        for choosing what to hide: the check is ``width_bound``'s."""
        relaxation, keys, from_zero = self._relaxed(v)
        row = None if without is None else self.cell_rows[without]
        return relaxation.width(keys, from_zero=from_zero, without=row)

    def reach(self, v: Var) -> frozenset[tuple[int, int]]:
        """The unknowns linked to target ``v`` through the model's facts."""
        links = self._links
        if v not in self.sums:
            return self.model.component(self._key(v), links)
        keys: frozenset[tuple[int, int]] = frozenset()
        for k in self._sum_keys(v):
            if k not in keys:
                keys |= self.model.component(k, links)
        return keys

    def counts_in(self, keys: frozenset[tuple[int, int]], t: int, atoms: Iterable[AtomKey]) -> bool:
        """Whether any of ``atoms``' counts at release ``t`` is one of ``keys``."""
        return any((t, self.class_of[a]) in keys for a in atoms)

    def component(self, v: Var) -> set[Var]:
        """The counts (release, atom) linked to target ``v``."""
        keys = self.reach(v)
        return {(t, a) for (t, a) in self.truth if (t, self.class_of[a]) in keys}


#: What one release tells an audience, before classes are formed: its facts
#: (members, lowest, highest), its sensitive atoms, and each atom's entry in
#: the signature (the facts it is in and whether it grew; None if absent).
#: What one release tells: its facts (members, low, high), its sensitive atoms,
#: each atom's signature entry, and its sensitive table cells (key, atoms, level).
_ReleaseFacts = tuple[
    list[tuple[list[AtomKey], int, int]],
    set[AtomKey],
    list[tuple[AtomKey, Any]],
    list[tuple[AtomKey, frozenset[AtomKey], int]],
]


#: What a release tells that does not depend on which of its cells are
#: published: its sensitive table cells, the atoms each lies inside, its atoms
#: below the minimum, its margins' and other exchanges' facts, the order its
#: atoms' signature entries are made in and whether each atom's count grew.
_AtomFacts = tuple[
    list[tuple[AtomKey, frozenset[AtomKey], int]],
    dict[AtomKey, list[AtomKey]],
    list[AtomKey],
    list[tuple[list[AtomKey], int, int]],
    list[AtomKey],
    dict[AtomKey, bool],
]


def _atom_facts(
    release: PastRelease,
    before: Mapping[AtomKey, int],
    seen: Iterable[AtomKey],
    rules: FlowStatisticsRules,
    shape: Shape,
    audience: str,
) -> _AtomFacts:
    # the sensitive table cells: classes must not straddle them
    table_sums: list[tuple[AtomKey, frozenset[AtomKey], int]] = []
    inside: dict[AtomKey, list[AtomKey]] = defaultdict(list)
    for (table, key), table_atoms in sorted(shape.table_cells(release.atoms).items()):
        if sum(release.atoms[a] for a in table_atoms) < rules.min_cell_size:
            table_sums.append((key, frozenset(table_atoms), -table - 1))
            for a in table_atoms:
                inside[a].append(key)
    small = [a for a, n in release.atoms.items() if n < rules.min_cell_size]
    others: list[tuple[list[AtomKey], int, int]] = []
    for group in shape.margin_groups(release.atoms):
        total = sum(release.atoms[a] for a in group)
        others.append((sorted(group), total, total))
    for members, lo, hi in release.known.get(audience, ()):
        others.append((sorted(a for a in members if a in release.atoms), lo, hi))
    # whether the count grew (or stayed): a correction that removed a
    # record breaks "counts only grow" for that atom, and no fact false
    # of the data may enter the model
    grew = {a: a in before and before[a] <= n for a, n in release.atoms.items()}
    order = list(set(seen) | set(release.atoms))
    return table_sums, inside, small, others, order, grew


def _release_facts(
    release: PastRelease,
    before: Mapping[AtomKey, int],
    seen: Iterable[AtomKey],
    rules: FlowStatisticsRules,
    shape: Shape,
    audience: str,
) -> _ReleaseFacts:
    table_sums, inside, small, others, order, grew = _atom_facts(
        release, before, seen, rules, shape, audience
    )
    here: list[tuple[list[AtomKey], int, int]] = []
    rows: dict[AtomKey, list[int]] = defaultdict(list)
    covered: set[AtomKey] = set()
    for cell in release.cells:
        members = cell[1]
        told = (
            sorted(a for a in members if a in release.atoms),
            *published_range(sum(release.atoms[a] for a in members), rules),
        )
        for a in told[0]:
            rows[a].append(len(here))
        here.append(told)
        if len(cell[1]) == 1:
            covered |= cell[1]
    # the sensitive counts: below the minimum, hidden or inside a coarsened cell
    sensitive = {a for a in small if a not in covered}
    for told in others:
        for a in told[0]:
            rows[a].append(len(here))
        here.append(told)
    entries: list[tuple[AtomKey, Any]] = []
    for atom in order:
        if atom not in release.atoms:
            entries.append((atom, None))
            continue
        entries.append((atom, (tuple(rows[atom]), grew[atom], tuple(inside[atom]))))
    return here, sensitive, entries, table_sums


def attacker_model(
    releases: Iterable[PastRelease],
    rules: FlowStatisticsRules,
    shape: Shape,
    audience: str = FLOWS_ONLY,
) -> AttackerModel:
    """What ``audience`` knows of a block's counts after ``releases``: each
    release's published cells (of every table) and public margins, counts that
    only grow from one release to the next, and the sums the encounter records
    sent to that audience reveal. Its targets are the sensitive counts: every
    atom of a release below the minimum cell size and not published as a cell
    of its own (hidden, or inside a coarsened cell), and every cell of another
    table below the minimum (a sum of atoms). A hidden count at or above the
    minimum may be narrowed (it could have been published as it is)."""
    items = list(releases)
    facts: list[list[tuple[list[AtomKey], int, int]]] = []
    targets: set[Var] = set()
    sums: dict[Var, frozenset[AtomKey]] = {}
    sum_levels: dict[Var, int] = {}
    signature: dict[AtomKey, list[Any]] = defaultdict(list)
    for t, release in enumerate(items):
        before = items[t - 1].atoms if t > 0 else {}
        told = _release_facts(release, before, signature, rules, shape, audience)
        here, sensitive, entries, table_sums = told
        targets |= {(t, a) for a in sensitive}
        for key, table_atoms, table_level in table_sums:
            sums[(t, key)] = table_atoms
            sum_levels[(t, key)] = table_level
            targets.add((t, key))
        facts.append(here)
        for atom, entry in entries:
            signature[atom].append(entry)
    by_signature: dict[tuple[Any, ...], list[AtomKey]] = defaultdict(list)
    for atom, sig in signature.items():
        # an atom first seen late has fewer entries: pad to tell it apart
        by_signature[(*([None] * (len(items) - len(sig))), *sig)].append(atom)
    class_of: dict[AtomKey, int] = {}
    sizes: dict[int, int] = {}
    signatures: dict[int, tuple[Any, ...]] = {}
    for i, (signature_of, same) in enumerate(by_signature.items()):
        signatures[i] = signature_of
        sizes[i] = len(same)
        for atom in same:
            class_of[atom] = i
    model: LinearModel[tuple[int, int]] = LinearModel()
    truth: dict[Var, int] = {}
    # the fact each published cell of the last release became
    cell_rows: dict[CellMembers, int] = {}
    cell_facts: dict[CellMembers, int] = {}
    for t, release in enumerate(items):
        before = items[t - 1].atoms if t > 0 else {}
        grows = {
            class_of[a]: a in before and before[a] <= n for a, n in release.atoms.items()
        }
        for c, grew in grows.items():
            model.add_var((t, c))
            if grew and (t - 1, c) in model:
                model.add_order((t - 1, c), (t, c))
        for i, (members_of_fact, lo, hi) in enumerate(facts[t]):
            if t == len(items) - 1 and i < len(release.cells):
                cell_rows[release.cells[i]] = model.row_count
                cell_facts[release.cells[i]] = i
            classes = sorted({class_of[a] for a in members_of_fact})
            model.add_sum_range([(t, c) for c in classes], lo, hi)
        for atom, n in release.atoms.items():
            truth[(t, atom)] = n
    return AttackerModel(
        model,
        targets,
        class_of,
        sizes,
        truth,
        sums,
        sum_levels,
        cell_rows,
        signatures,
        cell_facts,
    )


def protect(
    atoms: dict[AtomKey, int],
    published: list[CellMembers],
    rules: FlowStatisticsRules,
    shape: Shape,
    history: tuple[PastRelease, ...],
    known: Mapping[str, tuple[KnownSum, ...]],
) -> tuple[list[CellMembers], BlockAudit]:
    """Hide more published cells until, for every audience, every hidden count
    of this and every earlier release of the block keeps an interval at least
    the protection level wide (or as wide as the earlier releases and the public
    margins alone leave it: hiding now cannot widen that).

    Rule: take the narrowest failing interval; among the published cells of this
    release linked to it, hide the smallest (by count) that widens it, trying
    the four smallest in turn; if none does, hide the smallest. Repeat."""
    level = protection_level(rules)
    audiences = [FLOWS_ONLY, *sorted(a for a in known if a != FLOWS_ONLY)]
    current = list(published)
    changed = True
    audits: dict[str, BlockAudit] = {}
    while changed:
        changed = False
        for audience in audiences:
            current, hid, audits[audience] = _protect_for(
                atoms, current, rules, shape, history, known, audience, level
            )
            changed |= hid and len(audiences) > 1
    return current, _merge(audits)


def _summary(
    model: AttackerModel,
    widths: Mapping[Var, float],
    level: int,
    need: Callable[[Var], float],
) -> BlockAudit:
    if not widths:
        return BlockAudit(None, 0, 0, True)
    narrow = min(widths, key=lambda v: (widths[v], v))
    protected = sum(1 for w in widths.values() if w >= level)
    unavoidable = sum(1 for v, w in widths.items() if w < level and w >= need(v))
    return BlockAudit(
        (narrow, model.interval(narrow)),
        protected + unavoidable,
        len(widths),
        True,
        unavoidable,
    )


def _merge(audits: Mapping[str, BlockAudit]) -> BlockAudit:
    first = audits[FLOWS_ONLY]
    narrowest = min(
        (a.narrowest for a in audits.values() if a.narrowest is not None),
        key=lambda n: n[1].width,
        default=None,
    )
    return BlockAudit(
        narrowest,
        first.protected,
        first.hidden,
        all(a.passes for a in audits.values()),
        first.unavoidable,
    )


def _protect_for(
    atoms: dict[AtomKey, int],
    published: list[CellMembers],
    rules: FlowStatisticsRules,
    shape: Shape,
    history: tuple[PastRelease, ...],
    known: Mapping[str, tuple[KnownSum, ...]],
    audience: str,
    level: int,
) -> tuple[list[CellMembers], bool, BlockAudit]:
    t_now = len(history)
    current = list(published)
    base_release = PastRelease(atoms, (), dict(known))
    baseline_model = attacker_model((*history, base_release), rules, shape, audience)
    floor: dict[Var, float] = {}

    def need(v: Var) -> float:
        if v not in floor:
            floor[v] = min(level, baseline_model.interval(v).width)
        return floor[v]

    order: dict[CellMembers, tuple[int, int, list[AtomKey]]] = {}

    def smallest(c: CellMembers) -> tuple[int, int, list[AtomKey]]:
        found = order.get(c)
        if found is None:
            found = order[c] = (sum(atoms[a] for a in c[1]), c[0], sorted(c[1]))
        return found

    hid_any = False
    # built once: each cell hidden is taken out of it in place (``hide``)
    model = attacker_model(
        (*history, PastRelease(atoms, tuple(current), dict(known))), rules, shape, audience
    )
    widths: dict[Var, float] = {}
    # Hiding a cell only takes a fact away, so every interval can only widen: a
    # width measured on an earlier model is a lower bound of the width now.
    # ``fresh`` holds the widths measured on the current model. The narrowest
    # failing count is found by measuring again the lowest stale one until the
    # lowest is fresh: the same target as measuring every width again, since a
    # fresh width below every stale lower bound is below every width.
    fresh: set[Var] = set()

    def fails(v: Var) -> bool:
        return widths[v] < level and widths[v] < need(v)

    # Hiding takes no count in or out of the targets (a published cell is at
    # or above the minimum), and measuring a count changes its width only:
    # the failing ones are found once and kept in order of width.
    targets = model.targets
    for v in targets:
        widths[v] = model.width_bound(v, level)
        fresh.add(v)
    failing = [(widths[v], v) for v in targets if fails(v)]
    heapq.heapify(failing)
    while True:
        target: Var | None = None
        while failing:
            _, lowest = heapq.heappop(failing)
            if lowest in fresh:
                target = lowest
                break
            widths[lowest] = model.width_bound(lowest, level)
            fresh.add(lowest)
            if fails(lowest):
                heapq.heappush(failing, (widths[lowest], lowest))
        if target is None:
            # counts pinned by what this release cannot hide: measured now
            for v in targets:
                if v not in fresh and widths[v] < level:
                    widths[v] = model.width_bound(v, level)
            return current, hid_any, _summary(model, widths, level, need)
        reach = model.reach(target)
        candidates = sorted(
            (c for c in current if model.counts_in(reach, t_now, c[1])), key=smallest
        )
        if not candidates:
            # Only earlier releases, margins and other exchanges reach it:
            # nothing this release hides changes that (need() said otherwise,
            # which would be a solver inconsistency). Say so without values.
            log.warning("a hidden count of block period %s stays narrow", target[1][0])
            floor[target] = widths[target]
            continue
        candidates = _complement_order(model.members_of(target), model.level_of(target), candidates)
        chosen = _choose(model, target, candidates[:_TRIALS])
        current = [c for c in current if c is not chosen]
        hid_any = True
        model.hide(chosen)
        heapq.heappush(failing, (widths[target], target))  # failing until measured again
        # table cells are not atoms of ``reach``: their widths are stale too
        fresh = {
            v for v in fresh if v not in model.sums and not model.counts_in(reach, v[0], (v[1],))
        }


def _choose(model: AttackerModel, target: Var, candidates: list[CellMembers]) -> CellMembers:
    """The first of ``candidates`` whose hiding widens ``target``'s interval in
    the linear relaxation of ``model`` (the first of all when none does). Only
    a choice: the release is checked by the exact integer solve on the model
    after each hiding (``AttackerModel.hide``: the model built again without
    the cell), so a poor choice hides more cells, never lets a narrow one out."""
    base, binding = model.relaxed_binding(target)
    for candidate in candidates:
        # a fact with no dual value at the optima cannot move them
        if model.cell_rows[candidate] not in binding:
            continue
        if model.relaxed_width(target, candidate) > base + 1e-6:
            return candidate
    return candidates[0]


#: How many cells, best first, are tried for the one that widens a narrow count
#: (when none does, the first is hidden).
_TRIALS = 40


def _complement_order(
    target: frozenset[AtomKey], level: int, candidates: list[CellMembers]
) -> list[CellMembers]:
    """The published cells to try hiding for a narrow ``target`` (its atoms and
    its table's level), best first. A count is pinned through the published
    cells that overlap it (its parents: a nationality's total, the national
    total, a coarsened month): hiding a sibling, a cell apart from the target
    that overlaps one of its parents, is what widens it, preferably a sibling
    in the target's own table (another nationality's total, or the same
    nationality's in another week; another detail cell beside a detail cell).
    Then the other siblings, then the parents themselves, then whatever else
    is linked; smallest first within each."""
    parents = [c[1] for c in candidates if c[1] & target]
    near: set[AtomKey] = set().union(*parents) if parents else set()

    def rank(c: CellMembers) -> int:
        sibling = not (c[1] & target) and bool(c[1] & near)
        if sibling and (c[0] == level or (c[0] >= 0 and level >= 0)):
            return 0
        if sibling:
            return 1
        if c[1] & target:
            return 2
        return 3

    return sorted(candidates, key=rank)  # stable: smallest first within a rank


def audit_releases(
    releases: tuple[PastRelease, ...], rules: FlowStatisticsRules, shape: Shape | None = None
) -> BlockAudit:
    """The attacker's model run on a block's releases, for every audience: the
    narrowest hidden interval, how many hidden counts keep the protection
    level, and whether the block passes (every hidden count keeps the level or
    is pinned by the country's own margins and nothing this node can hide)."""
    shape = shape or Shape(rules)
    level = protection_level(rules)
    audiences = {FLOWS_ONLY} | {a for r in releases for a in r.known}
    narrowest: tuple[Var, Interval] | None = None
    protected = hidden = unavoidable = 0
    passes = True
    for audience in sorted(audiences):
        model = attacker_model(releases, rules, shape, audience)
        base: AttackerModel | None = None
        for v in sorted(model.targets):
            interval = model.interval(v)
            if narrowest is None or interval.width < narrowest[1].width:
                narrowest = (v, interval)
            if audience == FLOWS_ONLY:
                hidden += 1
            if interval.width >= level:
                protected += audience == FLOWS_ONLY
                continue
            if base is None:
                base = _margins_only(releases, rules, shape, audience)
            if base.interval(v).width <= interval.width:
                unavoidable += audience == FLOWS_ONLY
                protected += audience == FLOWS_ONLY
                continue
            passes = False
    return BlockAudit(narrowest, protected, hidden, passes, unavoidable)


def _margins_only(
    releases: tuple[PastRelease, ...],
    rules: FlowStatisticsRules,
    shape: Shape,
    audience: str,
) -> AttackerModel:
    """What the audience knows with no flow cell at all: the margins and the
    other exchanges, over time. What they pin is not the flows' doing."""
    bare = tuple(PastRelease(r.atoms, (), r.known) for r in releases)
    return attacker_model(bare, rules, shape, audience)
