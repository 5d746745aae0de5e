"""One block's release (``release_block``): what of a block's atoms
(``node.policy.atoms``) is published, given its ledger (``node.policy.ledger``).

Steps, per block:

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

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.policy.atoms import AtomKey, Shape
from node.policy.attacker import BlockAudit
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.ledger import (
    BlockLedger,
    CellMembers,
    KnownSum,
    PastRelease,
    margins_of,
    shape_of,
)
from node.policy.protect import protect


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
