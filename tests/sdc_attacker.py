"""An attacker on published flow statistics, written apart from the engine.

It reads only what an audience sees (each release's published cells by their
labels, the public margins, counts other exchanges reveal) plus which fine
cells exist (a strong attacker), and solves, for every fine cell of every
release that was not published as a cell of its own, the tightest integer
bounds with a mixed-integer programme (``scipy.optimize.milp``). Counts only
grow from one release to the next. Nothing of ``node.policy`` is used: cell
membership is decoded from the labels here, with ``datetime`` and the UN M49
region table only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from node.model.codes import region_of

#: (week or month label, dimension values in policy order)
Atom = tuple[str, tuple[str, ...]]


def _month_of_week(label: str) -> str:
    year, week = label.split("-W")
    thursday = date.fromisocalendar(int(year), int(week), 4)
    return f"{thursday.year}-{thursday.month:02d}"


def _quarter_of_month(label: str) -> str:
    year, month = label.split("-")
    return f"{year}-Q{(int(month) - 1) // 3 + 1}"


def covers(period: str, dims: Mapping[str, str], atom: Atom, names: Sequence[str]) -> bool:
    """Whether a published cell labelled (period, dims) counts ``atom``."""
    label, values = atom
    if period != label:
        up = _month_of_week(label) if "-W" in label else None
        if up is None:
            up = _quarter_of_month(label) if "-Q" not in label else None
            if up != period:
                return False
        elif up != period and _quarter_of_month(up) != period:
            return False
    by_name = dict(zip(names, values, strict=True))
    for name, value in dims.items():
        if value == "_T":  # SDMX total: the cell sums over this dimension
            continue
        if name == "nationality_region" and "nationality" in by_name:
            if region_of(by_name["nationality"]) != value:
                return False
        elif by_name.get(name) != value:
            return False
    return True


@dataclass
class Seen:
    """What the audience saw in one release."""

    atoms: dict[Atom, int]  # the truth, known to the test; the attacker uses the keys
    cells: list[tuple[str, dict[str, str], int]]  # (period, dims, published count)
    margins: list[tuple[frozenset[Atom], int]] = field(default_factory=list)
    other: list[tuple[frozenset[Atom], int]] = field(default_factory=list)  # e.g. records
    #: sums known from below only: records seen, when some may have been held back
    at_least: list[tuple[frozenset[Atom], int]] = field(default_factory=list)


@dataclass(frozen=True)
class Bounds_:
    low: int
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


_OPTIONS = {"presolve": False}


def table_groups(
    atoms: Iterable[Atom], names: Sequence[str], tables: Sequence[Sequence[str]]
) -> dict[Atom, frozenset[Atom]]:
    """The cells of the tables a policy publishes beside the detail, each
    labelled as the test reads it, ``_T`` where it sums (nationality_region
    standing for the region of nationality), with the fine cells it counts."""
    out: dict[Atom, set[Atom]] = {}
    for table in tables:
        if set(table) == set(names):
            continue
        for atom in atoms:
            label, values = atom
            by_name = dict(zip(names, values, strict=True))
            key = []
            for name in names:
                if name in table:
                    key.append(by_name[name])
                elif name == "nationality" and "nationality_region" in table:
                    key.append("region:" + region_of(by_name[name]))
                else:
                    key.append("_T")
            out.setdefault((label, tuple(key)), set()).add(atom)
    return {k: frozenset(v) for k, v in out.items()}


def attack(
    releases: Sequence[Seen],
    names: Sequence[str],
    *,
    rounding: int = 1,
    minimum: int = 1,
    tables: Sequence[Sequence[str]] = (),
) -> dict[tuple[int, Atom], Bounds_]:
    """Tightest integer bounds of every sensitive count of every release: a fine
    cell below ``minimum`` and not published as a cell of its own, and a cell
    of one of the other ``tables`` below ``minimum`` (a sum of fine cells)."""
    index: dict[tuple[int, Atom], int] = {}
    for t, seen in enumerate(releases):
        for atom in seen.atoms:
            index[(t, atom)] = len(index)
    n = len(index)
    rows: list[np.ndarray] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(members: Iterable[tuple[int, Atom]], low: float, high: float) -> None:
        row = np.zeros(n)
        for m in members:
            row[index[m]] = 1.0
        rows.append(row)
        lo.append(low)
        hi.append(high)

    hidden: set[tuple[int, Atom]] = set()
    sums: dict[tuple[int, Atom], frozenset[Atom]] = {}
    for t, seen in enumerate(releases):
        alone: set[Atom] = set()
        for period, dims, count in seen.cells:
            covered = [a for a in seen.atoms if covers(period, dims, a, names)]
            assert covered, f"a published cell covers nothing: {period} {dims}"
            if rounding > 1:
                add(
                    ((t, a) for a in covered),
                    max(count - rounding // 2, minimum),
                    count + rounding - rounding // 2 - 1,
                )
            else:
                add(((t, a) for a in covered), count, count)
            if len(covered) == 1:
                alone.add(covered[0])
        for members, total in (*seen.margins, *seen.other):
            add(((t, a) for a in members if a in seen.atoms), total, total)
        for members, total in seen.at_least:
            add(((t, a) for a in members if a in seen.atoms), total, np.inf)
        # the sensitive counts: below the minimum and not published alone
        hidden |= {(t, a) for a, k in seen.atoms.items() if a not in alone and k < minimum}
        for key, members in table_groups(seen.atoms, names, tables).items():
            if sum(seen.atoms[a] for a in members) < minimum:
                sums[(t, key)] = members
        if t:
            for atom in seen.atoms:
                # a count that went down (a corrected record) gives no order
                if (
                    atom in releases[t - 1].atoms
                    and releases[t - 1].atoms[atom] <= seen.atoms[atom]
                ):
                    row = np.zeros(n)
                    row[index[(t - 1, atom)]] = 1.0
                    row[index[(t, atom)]] = -1.0
                    rows.append(row)
                    lo.append(-np.inf)
                    hi.append(0.0)
    constraints = [LinearConstraint(np.array(rows), lo, hi)] if rows else []
    out: dict[tuple[int, Atom], Bounds_] = {}
    for var in sorted(hidden | set(sums)):
        c = np.zeros(n)
        for atom in sums.get(var, frozenset({var[1]})):
            c[index[(var[0], atom)]] = 1.0
        bounds = Bounds(np.zeros(n), np.full(n, np.inf))
        # presolve off: HiGHS's MIP presolve returned a wrong optimum on one of
        # these small models (a minimum of 2 where the truth, feasible, is 1)
        low = milp(
            c, constraints=constraints, integrality=np.ones(n), bounds=bounds, options=_OPTIONS
        )
        assert low.status == 0, low.message
        high = milp(
            -c, constraints=constraints, integrality=np.ones(n), bounds=bounds, options=_OPTIONS
        )
        # milp reports an unbounded maximum as "infeasible or unbounded" (the
        # minimum just proved the model feasible)
        top = -round(high.fun) if high.status == 0 else float("inf")
        out[var] = Bounds_(round(low.fun), top)
    return out


def narrow(
    bounds: Mapping[tuple[int, Atom], Bounds_],
    level: int,
    baseline: Mapping[tuple[int, Atom], Bounds_] | None = None,
) -> list[tuple[tuple[int, Atom], Bounds_]]:
    """Hidden cells narrower than ``level`` (and than ``baseline`` leaves them)."""
    out = []
    for var, b in sorted(bounds.items()):
        if b.width >= level:
            continue
        if baseline is not None and var in baseline and baseline[var].width <= b.width:
            continue
        out.append((var, b))
    return out


# -- releases under several policy shapes --------------------------------------------

#: The finest count a test knows: (ISO week, calendar month, nationality, sex,
#: age band, previous country) of the records. Every shape's cell is a sum of these.
Joint = tuple[str, str, str, str, str, str]

_JOINT_NAMES = ("nationality", "sex", "age_band", "previous_country")


@dataclass
class ShapeSeen:
    """What the audience saw in one release made under one policy shape."""

    joint: dict[Joint, int]  # the truth at that release, known to the test
    period: str  # the policy's period: iso_week, month or quarter
    names: Sequence[str]  # the policy's dimensions, in order
    cells: list[tuple[str, dict[str, str], int]]
    margins: Sequence[Sequence[str]] = ()
    minimum: int = 1
    rounding: int = 1
    #: The tables the policy publishes, as its ``tables`` lists them (the
    #: detail among them); a cell of one carries ``_T`` where it sums.
    tables: Sequence[Sequence[str]] = ()


def _own_period(j: Joint, period: str) -> str:
    week, month = j[0], j[1]
    if period == "iso_week":
        return week
    if period == "month":
        return month
    return _quarter_of_month(month)


def _value(j: Joint, name: str) -> str:
    if name == "nationality_region":
        return region_of(j[2])
    return j[2 + _JOINT_NAMES.index(name)]


def own_atom(j: Joint, seen: ShapeSeen) -> Atom:
    """The fine cell of ``seen``'s shape a joint count sits in."""
    return (_own_period(j, seen.period), tuple(_value(j, n) for n in seen.names))


def _covers_joint(period: str, dims: Mapping[str, str], j: Joint, seen: ShapeSeen) -> bool:
    own = _own_period(j, seen.period)
    ups = [own]
    if seen.period == "iso_week":
        ups += [_month_of_week(own), _quarter_of_month(_month_of_week(own))]
    elif seen.period == "month":
        ups.append(_quarter_of_month(own))
    if period not in ups:
        return False
    # "_T" (SDMX total): the cell sums over that dimension
    return all(value == "_T" or _value(j, name) == value for name, value in dims.items())


def attack_shapes(releases: Sequence[ShapeSeen]) -> dict[tuple[int, Atom], Bounds_]:
    """Tightest integer bounds of every sensitive count of every release (a
    fine cell below its policy's minimum and not published alone, a cell of
    one of its other ``tables`` below the minimum), each release read
    under its own policy shape, over the joint counts of every release (a
    count of one joint key only grows). Like the engine's model, the attacker
    knows which fine cells *of each release's shape* are non-empty, not which
    joint keys are: at release ``t`` every joint key whose cell of ``t``'s
    shape is non-empty is an unknown (perhaps 0)."""
    keys = sorted({j for seen in releases for j in seen.joint})
    present: list[dict[Joint, int]] = []
    for seen in releases:
        cells = {own_atom(j, seen) for j, k in seen.joint.items() if k > 0}
        present.append({j: seen.joint.get(j, 0) for j in keys if own_atom(j, seen) in cells})
    index: dict[tuple[int, Joint], int] = {}
    for t, here in enumerate(present):
        for j in here:
            index[(t, j)] = len(index)
    n = len(index)
    rows: list[np.ndarray] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(members: Iterable[tuple[int, Joint]], low: float, high: float) -> None:
        row = np.zeros(n)
        for m in members:
            row[index[m]] += 1.0
        rows.append(row)
        lo.append(low)
        hi.append(high)

    targets: dict[tuple[int, Atom], list[tuple[int, Joint]]] = {}
    last: dict[Joint, int] = {}
    for t, seen in enumerate(releases):
        here = present[t]
        groups: dict[Atom, list[Joint]] = {}
        for j in here:
            groups.setdefault(own_atom(j, seen), []).append(j)
        alone: set[Atom] = set()
        for period, dims, count in seen.cells:
            members = [j for j in here if _covers_joint(period, dims, j, seen)]
            assert members, f"a published cell covers nothing: {period} {dims}"
            if seen.rounding > 1:
                r = seen.rounding
                add(
                    ((t, j) for j in members),
                    max(count - r // 2, seen.minimum),
                    count + r - r // 2 - 1,
                )
            else:
                add(((t, j) for j in members), count, count)
            atoms = {own_atom(j, seen) for j in members}
            if len(atoms) == 1:
                alone |= atoms
        for margin in seen.margins:
            by: dict[tuple[str, ...], list[Joint]] = {}
            for j in here:
                key = (_own_period(j, seen.period), *(_value(j, d) for d in margin))
                by.setdefault(key, []).append(j)
            for members in by.values():
                add(((t, j) for j in members), *([sum(here[j] for j in members)] * 2))
        for atom, members in groups.items():
            if atom not in alone and sum(here[j] for j in members) < seen.minimum:
                targets[(t, atom)] = [(t, j) for j in members]
        # a cell of another table below the minimum is sensitive too (never
        # published): labelled ("table", "dimension:value", ...)
        for table in seen.tables:
            if set(table) == set(seen.names):
                continue
            table_cells: dict[Atom, list[Joint]] = {}
            for j in here:
                label = ("table", *(f"{d}:{_value(j, d)}" for d in table))
                table_cells.setdefault((_own_period(j, seen.period), label), []).append(j)
            for cell, members in table_cells.items():
                if sum(here[j] for j in members) < seen.minimum:
                    targets[(t, cell)] = [(t, j) for j in members]
        for j, k in here.items():
            # a count only grows since the last release where it was an unknown
            # (a count that went down, a corrected record, gives no order)
            if j in last and present[last[j]][j] <= k:
                row = np.zeros(n)
                row[index[(last[j], j)]] = 1.0
                row[index[(t, j)]] = -1.0
                rows.append(row)
                lo.append(-np.inf)
                hi.append(0.0)
            last[j] = t
    constraints = [LinearConstraint(np.array(rows), lo, hi)] if rows else []
    out: dict[tuple[int, Atom], Bounds_] = {}
    for var, unknowns in sorted(targets.items()):
        c = np.zeros(n)
        for m in unknowns:
            c[index[m]] = 1.0
        bounds = Bounds(np.zeros(n), np.full(n, np.inf))
        low = milp(
            c, constraints=constraints, integrality=np.ones(n), bounds=bounds, options=_OPTIONS
        )
        assert low.status == 0, low.message
        high = milp(
            -c, constraints=constraints, integrality=np.ones(n), bounds=bounds, options=_OPTIONS
        )
        top = -round(high.fun) if high.status == 0 else float("inf")
        out[var] = Bounds_(round(low.fun), top)
    return out
