"""Which hidden counts an outsider can work out exactly from what was published.

A consumer of a release knows a set of linear equations over the unknown fine
counts ("atoms"): every published cell is the sum of the atoms it covers, and
every margin the country publishes elsewhere is the sum of the atoms in its
group. An atom is *determined* when its unit vector lies in the row space of
those equations: some combination of known sums equals it exactly. This module
answers that question for 0/1 equations, with no values needed: whether a count
can be recovered depends only on which sums are known.

Method: equations with a single unknown fix it, which is substituted into the
others (peeling, repeated to a fixed point); what is left splits into connected
components that are reduced independently to reduced row echelon form modulo a
61-bit prime. In reduced form a variable is determined exactly when its pivot
row has no other entry. Working modulo a prime can only err by calling a
variable determined when over the rationals it is not (if the prime divides a
minor), which makes the caller suppress more, never less.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

V = TypeVar("V", bound=Hashable)

_P = (1 << 61) - 1


def determined(equations: Iterable[Iterable[V]]) -> set[V]:
    """Variables fixed by knowing the sum of each equation's variables."""
    rows: list[set[V]] = [set(eq) for eq in equations]
    rows = [r for r in rows if r]
    index: dict[V, list[int]] = {}
    for i, row in enumerate(rows):
        for v in row:
            index.setdefault(v, []).append(i)
    known: set[V] = set()
    queue = [i for i, row in enumerate(rows) if len(row) == 1]
    while queue:
        row = rows[queue.pop()]
        if len(row) != 1:
            continue
        (v,) = row
        if v in known:
            row.clear()
            continue
        known.add(v)
        for j in index[v]:
            rows[j].discard(v)
            if len(rows[j]) == 1:
                queue.append(j)
    rest = [r for r in rows if len(r) >= 2]
    for component in _components(rest):
        known |= _determined_by_elimination(component)
    return known


def _components(rows: Sequence[set[V]]) -> list[list[set[V]]]:
    parent: dict[V, V] = {}

    def find(v: V) -> V:
        while parent.get(v, v) != v:
            parent[v] = parent.get(parent[v], parent[v])
            v = parent[v]
        return v

    for row in rows:
        first, *others = row
        root = find(first)
        for v in others:
            other = find(v)
            if other != root:
                parent[other] = root
    groups: dict[V, list[set[V]]] = {}
    for row in rows:
        groups.setdefault(find(next(iter(row))), []).append(row)
    return list(groups.values())


def _determined_by_elimination(rows: list[set[V]]) -> set[V]:
    order: dict[V, int] = {}
    for row in rows:
        for v in row:
            order.setdefault(v, len(order))
    pivots: dict[int, dict[int, int]] = {}  # pivot column -> reduced row
    for row in rows:
        vec = {order[v]: 1 for v in row}
        for col in [c for c in vec if c in pivots]:
            factor = vec.get(col, 0)
            if factor:
                for c, x in pivots[col].items():
                    value = (vec.get(c, 0) - factor * x) % _P
                    if value:
                        vec[c] = value
                    else:
                        vec.pop(c, None)
        if not vec:
            continue
        pivot = min(vec)
        inverse = pow(vec[pivot], _P - 2, _P)
        vec = {c: (x * inverse) % _P for c, x in vec.items()}
        for other in pivots.values():
            factor = other.get(pivot, 0)
            if factor:
                for c, x in vec.items():
                    value = (other.get(c, 0) - factor * x) % _P
                    if value:
                        other[c] = value
                    else:
                        other.pop(c, None)
        pivots[pivot] = vec
    names = {i: v for v, i in order.items()}
    return {names[col] for col, vec in pivots.items() if len(vec) == 1}


def connected(equations: Iterable[Iterable[V]], start: V) -> set[V]:
    """Every variable linked to ``start`` through shared equations."""
    rows = [set(eq) for eq in equations]
    index: dict[V, list[int]] = {}
    for i, row in enumerate(rows):
        for v in row:
            index.setdefault(v, []).append(i)
    seen = {start}
    stack = [start]
    while stack:
        for i in index.get(stack.pop(), []):
            for v in rows[i]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
    return seen
