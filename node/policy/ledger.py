"""The suppression ledger of one block: every release of it, with the counts
behind each, kept at home to protect the next release (``node.policy.block``),
and the shape that decides whether an entry is still the block's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from node.policy.atoms import AtomKey
from node.policy.flow_rules import FlowStatisticsRules

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
