"""What an audience knows of a block after its releases: the facts each
release tells (published cells, public margins, other exchanges' sums, counts
that only grow), built into the attacker's model (``attacker_model``), and the
audit of a block's releases against it (``audit_releases``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from node.policy.atoms import AtomKey, Shape
from node.policy.attacker import (
    FLOWS_ONLY,
    AttackerModel,
    BlockAudit,
    Var,
    protection_level,
    published_range,
)
from node.policy.audit import LinearModel
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.intervals import Interval
from node.policy.ledger import CellMembers, PastRelease

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
        grows = {class_of[a]: a in before and before[a] <= n for a, n in release.atoms.items()}
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
