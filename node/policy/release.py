"""A whole flow-statistics release: every block of a policy's rows counted,
coarsened, suppressed and rounded (``node.policy.block``), checked against
the releases made under older policy shapes (``node.policy.shapes``), or, under
``method: differential_privacy``, made noisy instead (``node.policy.privacy``);
and the coverage of what it publishes.

It sits above those three so that none of them imports another's release.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from node.policy.atoms import AtomKey, FlowCell, FlowInput, Shape, count_atoms
from node.policy.block import BlockRelease, release_block
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.foreign import foreign_blocks
from node.policy.ledger import BlockLedger, KnownSum
from node.policy.privacy import PrivateRelease, release_private
from node.policy.shapes import ShapeCheck, protect_across_shapes

# -- a whole release ------------------------------------------------------------------


@dataclass
class FlowRelease:
    """Every block's release, and the published cells with their labels."""

    blocks: dict[str, BlockRelease] = field(default_factory=dict)
    cells: list[FlowCell] = field(default_factory=list)
    #: Set when the policy's method is differential_privacy: the noisy release,
    #: its periods' new states and its spends (blocks then stay empty).
    private: PrivateRelease | None = None
    #: The check against releases under older policy shapes (None: there were none).
    shapes: ShapeCheck | None = None

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
        """Counts of cells: ``cells``, the suppressed and coarsened ones are the
        detail's (atoms); ``published_cells`` every cell published, table cells
        included; ``table_cells`` the published cells of the other tables and
        ``table_suppressed`` their hidden ones."""
        if self.private is not None:
            return self.private.summary()
        return {
            "cells": self.atoms,
            "published_cells": len(self.cells),
            "suppressed_cells": self.primary + self.secondary,
            "primary_suppressed": self.primary,
            "secondary_suppressed": self.secondary,
            "coarsened_cells": self.coarsened,
            "table_cells": sum(b.table_cells for b in self.blocks.values()),
            "table_suppressed": sum(
                b.table_primary + b.table_secondary for b in self.blocks.values()
            ),
        }


def release_flows(
    rows: Iterable[FlowInput],
    rules: FlowStatisticsRules,
    ledger: dict[str, BlockLedger] | None = None,
    known: Mapping[str, Mapping[str, Iterable[KnownSum]]] | None = None,
    *,
    privacy_states: Mapping[str, str] | None = None,
    today: date | None = None,
) -> FlowRelease:
    """Count, coarsen, suppress and round every block of ``rows``; ``known`` is,
    per block and audience, what other exchanges reveal (see ``release_block``).

    Under ``method: differential_privacy`` every count is noisy instead
    (``node.policy.privacy``; ``privacy_states``: period -> its stored state,
    ``today`` the day that dates the release)."""
    if rules.method == "differential_privacy":
        return _release_noisy(rows, rules, privacy_states or {}, today or date.today())

    shape = Shape(rules)
    foreign = foreign_blocks(rules, ledger or {})
    if foreign:
        rows = list(rows)  # counted twice: here and at every shape's joint key
    by_block: dict[str, dict[AtomKey, int]] = defaultdict(dict)
    for atom, n in count_atoms(rows, rules).items():
        by_block[shape.block_of(atom)][atom] = n
    out = FlowRelease()
    for block in sorted(by_block):
        previous = (ledger or {}).get(block)
        release = release_block(block, by_block[block], rules, previous, (known or {}).get(block))
        out.blocks[block] = release
    if foreign:
        fresh = {b for b, r in out.blocks.items() if r.audit is not None}
        out.shapes = protect_across_shapes(list(rows), rules, out.blocks, foreign, fresh)
    for release in out.blocks.values():
        for level, members in release.cells:
            count = sum(release.atoms[a] for a in members)
            out.cells.append(shape.cell(level, shape.key_at(next(iter(members)), level), count))
    out.cells.sort()
    return out


def _release_noisy(
    rows: Iterable[FlowInput],
    rules: FlowStatisticsRules,
    states: Mapping[str, str],
    today: date,
) -> FlowRelease:
    """The differentially private release, as published cells (obs_status N)."""
    private = release_private(rows, rules, states, today)
    out = FlowRelease(private=private)
    out.cells = sorted(
        FlowCell(
            c.period,
            c.dimensions,
            c.count,
            rules.period,
            ci95=c.ci95,
            noise_scale=c.scale,
            epsilon=c.epsilon,
            table=c.table,
        )
        for c in private.cells
    )
    return out


# -- coverage -------------------------------------------------------------------------

#: The questions coverage is measured for: the period total, the period by
#: nationality (by region where the policy publishes only the region), and the
#: detail (every dimension of the policy).
COVERAGE_VIEWS = ("total", "nationality", "detail")


def coverage(release: FlowRelease, rules: FlowStatisticsRules) -> dict[str, float | None]:
    """The share of encounters that exact published numbers account for, per
    view (``COVERAGE_VIEWS``): a view's cell (one fine period and the view's
    dimensions) is exact when published cells lying wholly inside it, of any
    table, cover every one of its atoms, so its count is read or added up
    without an unknown. Rounded counts are not exact, nor are noisy ones: a
    differentially private release covers 0 of every view. None when there is
    nothing to count (or, for ``nationality``, no nationality dimension)."""
    names = list(rules.dimensions)
    nat = next((names.index(d) for d in ("nationality", "nationality_region") if d in names), -1)
    views: dict[str, tuple[int, ...] | None] = {
        "total": (),
        "nationality": (nat,) if nat >= 0 else None,
        "detail": tuple(range(len(names))),
    }
    if release.private is not None:
        counted = release.private.records > 0
        return {v: 0.0 if counted and p is not None else None for v, p in views.items()}
    total = sum(n for b in release.blocks.values() for n in b.atoms.values())
    out: dict[str, float | None] = {}
    for view, positions in views.items():
        if positions is None or total == 0:
            out[view] = None
            continue

        def key(atom: AtomKey, at: tuple[int, ...] = positions) -> AtomKey:
            return (atom[0], tuple(atom[1][p] for p in at))

        exact = 0
        for block in release.blocks.values():
            if rules.rounding > 1:
                break
            covered: dict[AtomKey, set[AtomKey]] = defaultdict(set)
            for _level, members in block.cells:
                keys = {key(a) for a in members}
                if len(keys) == 1:
                    covered[keys.pop()] |= members
            wanted: dict[AtomKey, set[AtomKey]] = defaultdict(set)
            for atom in block.atoms:
                wanted[key(atom)].add(atom)
            for k, atoms in wanted.items():
                if covered.get(k, set()) >= atoms:
                    exact += sum(block.atoms[a] for a in atoms)
        out[view] = round(exact / total, 4)
    return out
