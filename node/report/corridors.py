"""Corridors: route legs (previous country to reporting country) and the
multi-country routes of linked encounter records, shown from k people.

Computed, like every number of the picture, only from the cells the export's
audience is admitted to (the disclosure rule in ``node.report.regional``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from node.model.codes import corridor_sort_key
from node.report.audience import Scope, admits
from node.report.tables import FlowCell as FlowCell
from node.report.tables import Number, combine, resolve
from node.store.picture import PictureStore


def route_legs(cells: list[FlowCell], periods: list[str] | None = None) -> list[dict[str, Any]]:
    """(previous country → reporting country) with the count over ``periods``,
    from each country's most precise table that keeps the previous country."""
    wanted = set(periods) if periods is not None else None
    legs: dict[tuple[str, str], list[Number]] = defaultdict(list)
    for a in resolve(cells, ("previous_country",)):
        previous = a.key[0]
        if previous and (wanted is None or a.period in wanted):
            legs[(previous, a.country)].append(a.number)
    summed = {leg: combine(ns) for leg, ns in legs.items()}
    return [
        {"from": a, "to": b, "count": n.count, **n.fields()}
        for (a, b), n in sorted(
            summed.items(),
            key=lambda kv: (corridor_sort_key(kv[0][1]), -kv[1].count, kv[0][0]),
        )
    ]


def leg_people(
    store: PictureStore, scope: Scope, k: int, periods: list[str] | None = None
) -> dict[tuple[str, str], int | None]:
    """(previous country, reporting country) -> distinct linked people with an
    encounter record on that leg (linkage tokens), or None when fewer than
    ``k`` share it: encounters are not persons, and a small count of people is
    as identifying as a small cell."""
    uses = store.uses()
    purpose = scope.purpose_for("corridors")
    wanted = set(periods) if periods is not None else None
    people: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in store.view("encounter_view"):
        token = r.get("linkage_token")
        previous = r.get("previous_country")
        if (
            not token
            or not previous
            or not admits(uses.get(r["_event_id"]), scope.audience, purpose, scope.now)
        ):
            continue
        if wanted is not None and str(r.get("encounter_period") or "") not in wanted:
            continue
        people[(str(previous), r["reporting_country"])].add(str(token))
    return {leg: (len(ts) if len(ts) >= k else None) for leg, ts in people.items()}


def routes(store: PictureStore, scope: Scope, k: int) -> dict[str, Any]:
    """The most common multi-country routes: encounter records that share a
    linkage token, in order of their encounter period, as the list of
    reporting countries. A route is shown only when at least ``k`` people
    share it; the rest are counted, not shown."""
    uses = store.uses()
    purpose = scope.purpose_for("corridors")
    by_person: dict[str, list[tuple[str, str]]] = defaultdict(list)
    records = 0
    for r in store.view("encounter_view"):
        token = r.get("linkage_token")
        if not token or not admits(uses.get(r["_event_id"]), scope.audience, purpose, scope.now):
            continue
        records += 1
        by_person[token].append((str(r.get("encounter_period") or ""), r["reporting_country"]))
    shapes: Counter[tuple[str, ...]] = Counter()
    for visits in by_person.values():
        path: list[str] = []
        for _, country in sorted(visits):
            if not path or path[-1] != country:
                path.append(country)
        if len(path) >= 2:
            shapes[tuple(path)] += 1
    shown = [
        {"route": list(path), "people": n}
        for path, n in sorted(shapes.items(), key=lambda kv: (-kv[1], kv[0]))
        if n >= k
    ]
    return {
        "k": k,
        "records": records,
        "people_linked": len(by_person),
        "multi_country_people": sum(shapes.values()),
        "routes": shown,
        "people_in_hidden_routes": sum(n for n in shapes.values() if n < k),
    }
