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

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from node.model.codes import age_at, age_band, iso_week, region_of
from node.policy.disclosure import connected, determined
from node.policy.model import FlowStatisticsRules, PeriodType

#: Value of a dimension whose raw value is unknown (SDMX's "_U").
UNKNOWN = "_U"

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

    def subject(self, country: str) -> str:
        dims = ",".join(f"{name}={value}" for name, value in self.dimensions)
        return f"FlowStatistic|{country}|{self.period}|{dims}"


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


def count_atoms(rows: Iterable[FlowInput], rules: FlowStatisticsRules) -> Counter[AtomKey]:
    """Count rows into the finest cells of the policy's period and dimensions."""
    names = tuple(rules.dimensions)
    counts: Counter[AtomKey] = Counter()
    for row in rows:
        key = tuple(_dimension_value(name, row) for name in names)
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


class _Shape:
    """Keys of an atom at each ladder level, and the labels of coarse cells."""

    def __init__(self, rules: FlowStatisticsRules) -> None:
        self.rules = rules
        self.names = tuple(rules.dimensions)
        self.ladders = tuple(rules.coarsen)
        self._nat = self.names.index("nationality") if "nationality" in self.names else -1
        self._memo: dict[tuple[AtomKey, int], tuple[str, tuple[str, ...]]] = {}

    def block_of(self, atom: AtomKey) -> str:
        if "period" in self.ladders:
            return coarser_period(atom[0], self.rules.period)
        return atom[0]

    def key_at(self, atom: AtomKey, level: int) -> tuple[str, tuple[str, ...]]:
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
        steps = self.ladders[:level]
        period_type: str = self.rules.period
        if "period" in steps:
            period_type = _NEXT_PERIOD[self.rules.period]
        names = tuple(
            "nationality_region" if (n == "nationality" and "nationality" in steps) else n
            for n in self.names
        )
        rounded = round_count(count, self.rules.rounding, self.rules.min_cell_size)
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


@dataclass(frozen=True)
class BlockLedger:
    """What a release of one block published, kept at home for the next release.

    Holds counts derived from raw data: it never leaves the node."""

    shape: tuple[str, ...]  # minimum, period, dimensions, ladders, margins: changed = afresh
    atoms: dict[AtomKey, int]
    cells: tuple[tuple[int, frozenset[AtomKey]], ...]  # (level, members) of published cells
    primary: int = 0
    secondary: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "shape": list(self.shape),
                "atoms": [[p, list(v), n] for (p, v), n in sorted(self.atoms.items())],
                "cells": [
                    [level, sorted([p, list(v)] for p, v in members)]
                    for level, members in self.cells
                ],
                "primary": self.primary,
                "secondary": self.secondary,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> BlockLedger:
        data = json.loads(text)
        return cls(
            tuple(data["shape"]),
            {(p, tuple(v)): int(n) for p, v, n in data["atoms"]},
            tuple(
                (int(level), frozenset((p, tuple(v)) for p, v in members))
                for level, members in data["cells"]
            ),
            int(data.get("primary", 0)),
            int(data.get("secondary", 0)),
        )


def _shape_of(rules: FlowStatisticsRules) -> tuple[str, ...]:
    """What a release's cells depend on besides the counts; a ledger entry made
    under another shape is not reused."""
    return (
        str(rules.min_cell_size),
        rules.period,
        ",".join(rules.dimensions),
        ",".join(rules.coarsen),
        ";".join(",".join(m) for m in rules.margins),
    )


# -- one block ------------------------------------------------------------------------


@dataclass
class BlockRelease:
    block: str
    atoms: dict[AtomKey, int]
    cells: list[tuple[int, frozenset[AtomKey]]]  # published (level, members)
    primary: int = 0  # atoms hidden because their cell stayed below the minimum
    secondary: int = 0  # atoms hidden to protect others
    coarsened: int = 0  # published cells above the finest level
    ledger: BlockLedger | None = None

    @property
    def hidden(self) -> set[AtomKey]:
        covered = {a for _, members in self.cells for a in members}
        return set(self.atoms) - covered


Var = tuple[int, AtomKey]  # (0 previous release | 1 this release, atom)


def release_block(
    block: str,
    atoms: dict[AtomKey, int],
    rules: FlowStatisticsRules,
    previous: BlockLedger | None = None,
) -> BlockRelease:
    """Decide what of one block is published; see the module docstring."""
    shape = _Shape(rules)
    minimum = rules.min_cell_size
    if previous is not None and previous.shape != _shape_of(rules):
        previous = None
    if previous is not None and previous.atoms == atoms:
        # Nothing changed since the last release: publishing the same cells
        # again tells nobody anything new (and costs no solving).
        return BlockRelease(
            block,
            dict(atoms),
            list(previous.cells),
            primary=previous.primary,
            secondary=previous.secondary,
            coarsened=sum(1 for level, _ in previous.cells if level > 0),
            ledger=previous,
        )
    prev_level: dict[AtomKey, int] = {}
    if previous is not None:
        for level, members in previous.cells:
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
    published: list[tuple[int, frozenset[AtomKey]]] = []
    primary = 0
    for (level, _key), cell_atoms in sorted(by_cell.items()):
        if sum(atoms[a] for a in cell_atoms) < minimum:
            primary += len(cell_atoms)
        else:
            published.append((level, frozenset(cell_atoms)))

    published, secondary = _protect(atoms, published, rules, shape, previous)
    release = BlockRelease(
        block,
        dict(atoms),
        published,
        primary=primary,
        secondary=secondary,
        coarsened=sum(1 for level, _ in published if level > 0),
    )
    release.ledger = BlockLedger(
        _shape_of(rules), dict(atoms), tuple(published), primary, secondary
    )
    return release


def _protect(
    atoms: dict[AtomKey, int],
    published: list[tuple[int, frozenset[AtomKey]]],
    rules: FlowStatisticsRules,
    shape: _Shape,
    previous: BlockLedger | None,
) -> tuple[list[tuple[int, frozenset[AtomKey]]], int]:
    """Hide more cells until no small atom of this or the previous release can
    be determined; returns (published, atoms hidden for that)."""
    minimum = rules.min_cell_size

    def var(atom: AtomKey) -> Var:
        if previous is not None and previous.atoms.get(atom) == atoms[atom]:
            return (0, atom)
        return (1, atom)

    fixed_rows: list[frozenset[Var]] = []
    margin_rows: list[frozenset[Var]] = []
    targets: set[Var] = {var(a) for a, n in atoms.items() if n < minimum}
    if previous is not None:
        for _, members in previous.cells:
            fixed_rows.append(frozenset((0, a) for a in members))
        for group in shape.margin_groups(previous.atoms):
            margin_rows.append(frozenset((0, a) for a in group))
        targets |= {(0, a) for a, n in previous.atoms.items() if n < minimum}
    for group in shape.margin_groups(atoms):
        margin_rows.append(frozenset(var(a) for a in group))
    baseline = determined(margin_rows)
    targets -= baseline

    current = list(published)
    hidden_for_others = 0

    def rows_of(cells: list[tuple[int, frozenset[AtomKey]]]) -> list[frozenset[Var]]:
        return fixed_rows + margin_rows + [frozenset(var(a) for a in m) for _, m in cells]

    def leaks_within(cells: list[tuple[int, frozenset[AtomKey]]], reach: set[Var]) -> set[Var]:
        # Components are independent: only the equations touching ``reach`` matter.
        rows = [r for r in rows_of(cells) if not r.isdisjoint(reach)]
        return targets & reach & determined(rows)

    found = targets & determined(rows_of(current))
    while found:
        target = min(found)
        reach = connected(rows_of(current), target)
        candidates = sorted(
            (c for c in current if any(var(a) in reach for a in c[1])),
            key=lambda c: (sum(atoms[a] for a in c[1]), c[0], sorted(c[1])),
        )
        if not candidates:
            # Only the previous release and the public margins reach it: nothing
            # this release could hide would change that. Say so, without values.
            log.warning(
                "a hidden cell of period %s is determined by earlier releases and public "
                "margins alone",
                target[1][0],
            )
            found.discard(target)
            continue
        # Try the smallest few: hiding a cell only removes equations, so what
        # still leaks after the trial is exactly what is left to fix.
        chosen, remaining = candidates[0], None
        for candidate in candidates[:4]:
            trial = [c for c in current if c is not candidate]
            left = leaks_within(trial, reach)
            if target not in left:
                chosen, remaining = candidate, left
                break
        current = [c for c in current if c is not chosen]
        hidden_for_others += len(chosen[1])
        if remaining is None:
            remaining = leaks_within(current, reach)
        found = (found - reach) | remaining
    return current, hidden_for_others


# -- a whole release ------------------------------------------------------------------


@dataclass
class FlowRelease:
    """Every block's release, and the published cells with their labels."""

    blocks: dict[str, BlockRelease] = field(default_factory=dict)
    cells: list[FlowCell] = field(default_factory=list)

    @property
    def atoms(self) -> int:
        return sum(len(b.atoms) for b in self.blocks.values())

    @property
    def primary(self) -> int:
        return sum(b.primary for b in self.blocks.values())

    @property
    def secondary(self) -> int:
        return sum(b.secondary for b in self.blocks.values())

    @property
    def coarsened(self) -> int:
        return sum(b.coarsened for b in self.blocks.values())

    def summary(self) -> dict[str, Any]:
        return {
            "cells": self.atoms,
            "published_cells": len(self.cells),
            "suppressed_cells": self.primary + self.secondary,
            "primary_suppressed": self.primary,
            "secondary_suppressed": self.secondary,
            "coarsened_cells": self.coarsened,
        }


def release_flows(
    rows: Iterable[FlowInput],
    rules: FlowStatisticsRules,
    ledger: dict[str, BlockLedger] | None = None,
) -> FlowRelease:
    """Count, coarsen, suppress and round every block of ``rows``."""
    shape = _Shape(rules)
    by_block: dict[str, dict[AtomKey, int]] = defaultdict(dict)
    for atom, n in count_atoms(rows, rules).items():
        by_block[shape.block_of(atom)][atom] = n
    out = FlowRelease()
    for block in sorted(by_block):
        previous = (ledger or {}).get(block)
        release = release_block(block, by_block[block], rules, previous)
        out.blocks[block] = release
        for level, members in release.cells:
            count = sum(release.atoms[a] for a in members)
            out.cells.append(shape.cell(level, shape.key_at(next(iter(members)), level), count))
    out.cells.sort()
    return out
