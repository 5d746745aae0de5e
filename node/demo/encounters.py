"""Encounter records drawn for one country or for several along the route,
deterministic from a seed (see ``node.demo.synth``)."""

from __future__ import annotations

import random
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from itertools import accumulate

from node.demo.corridor import (
    CORRIDOR,
    DEMO_VOLUMES,
    OFF_CORRIDOR_PREDECESSOR,
    check_weeks,
    predecessor,
    surge_plan,
)
from node.demo.names import ORIGINS
from node.demo.people import Group, PeopleMaker, Person, age_on, monday_of
from node.demo.places import Place
from node.demo.profiles import HEALTH_NOTES, OWN_COUNTRY, Profile, profile_of

_ISO3_SHAPE = re.compile(r"[A-Z]{3}")


def _check_country(country: str) -> None:
    if not _ISO3_SHAPE.fullmatch(country):
        raise ValueError(f"country must be an ISO 3166-1 alpha-3 code, got {country!r}")


def _rng(country: str, seed: int, stream: str) -> random.Random:
    # A string seed is hashed with SHA-512, so countries get unrelated streams.
    return random.Random(f"corredor.demo.synth:{country}:{seed}:{stream}")


def _weekly_trend(rng: random.Random, weeks: int) -> list[float]:
    slope = rng.uniform(0.3, 0.6)
    span = max(1, weeks - 1)
    return [
        (1 + slope * week / span) * min(1.25, max(0.8, rng.gauss(1.0, 0.08)))
        for week in range(weeks)
    ]


def _pick_arrival(rng: random.Random, profile: Profile, nationality: str) -> tuple[str, Place]:
    arrivals = [a for a in profile.arrivals if a.only is None or nationality in a.only]
    arrival = rng.choices(arrivals, weights=[a.weight for a in arrivals])[0]
    place = rng.choices(arrival.places, weights=arrival.place_weights)[0]
    return (nationality if arrival.previous == OWN_COUNTRY else arrival.previous), place


def _draw_groups(rng: random.Random, country: str, n: int, start: date, weeks: int) -> list[Group]:
    profile = profile_of(country)
    mix = {code: w for code, w in profile.nationalities.items() if code != country}
    nationalities = list(mix)
    surge = surge_plan(country, weeks)
    total = sum(mix.values())
    trend = _weekly_trend(rng, weeks)
    week_mass: list[float] = []
    nationality_cum: list[list[float]] = []
    for week in range(weeks):
        weights = [
            w * (surge.factor(week) if code == surge.nationality else 1.0)
            for code, w in mix.items()
        ]
        week_mass.append(trend[week] * sum(weights) / total)
        nationality_cum.append(list(accumulate(weights)))
    week_cum = list(accumulate(week_mass))
    monday = monday_of(start)
    maker = PeopleMaker(rng, set())
    groups: list[Group] = []
    drawn = 0
    while drawn < n:
        week = rng.choices(range(weeks), cum_weights=week_cum)[0]
        nationality = rng.choices(nationalities, cum_weights=nationality_cum[week])[0]
        encounter = monday + timedelta(days=7 * week + rng.randrange(7))
        previous, place = _pick_arrival(rng, profile, nationality)
        people = maker.group(ORIGINS[nationality], encounter)[: n - drawn]
        groups.append(Group(encounter, place, nationality, previous, people))
        drawn += len(people)
    return groups


def _health_note(rng: random.Random, rate: float, person: Person, group: Group) -> str:
    if rng.random() >= rate:
        return ""
    age = age_on(person.date_of_birth, group.encounter_date)
    fits = {
        "anyone": True,
        "adult": age >= 18,
        "pregnant": person.sex == "F" and 16 <= age <= 45,
        "child": age < 12,
        "darien": group.place.border_sector.startswith("Darién"),
    }
    return rng.choice([note for note, who in HEALTH_NOTES if fits[who]])


def _render(country: str, seed: int, groups: list[Group], start: date) -> list[dict[str, str]]:
    """Rows in registration order, which is the order the groups were drawn in.

    Record numbers and notes come from their own stream, one row after the
    other, so that the first n rows never depend on how many follow.
    """
    rng = _rng(country, seed, "registry")
    rate = profile_of(country).health_rate
    # The period starts mid-year: earlier records of that year exist elsewhere.
    last_number = {monday_of(start).year: rng.randrange(400)}
    rows: list[dict[str, str]] = []
    for group in groups:
        year = group.encounter_date.year
        for person in group.people:
            last_number[year] = last_number.get(year, 0) + 1
            rows.append(
                {
                    "record_id": f"{country}-{year}-{last_number[year]:06d}",
                    "document_number": person.document_number,
                    "family_name": person.family_name,
                    "given_names": person.given_names,
                    "date_of_birth": person.date_of_birth.isoformat(),
                    "sex": person.sex,
                    "nationality": group.nationality,
                    "encounter_date": group.encounter_date.isoformat(),
                    "encounter_place": group.place.name,
                    "previous_country": group.previous_country,
                    "health_notes": _health_note(rng, rate, person, group),
                }
            )
    return rows


def _check(country: str, n: int, weeks: int) -> None:
    _check_country(country)
    check_weeks(weeks)
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")


def generate_encounters(
    country: str, n: int, *, seed: int, start: date, weeks: int
) -> list[dict[str, str]]:
    """``n`` raw encounter records reported by ``country``, as CSV-ready rows.

    Encounter dates fall in the ``weeks`` ISO weeks starting with the week of
    ``start`` (so the first may be before ``start`` when it is not a Monday).
    Rows come in registration order, not encounter order: as with a data-entry
    backlog, records for any week of the period keep arriving. Asking for more
    rows extends the list, ``generate_encounters(c, n + k, ...)[:n] ==
    generate_encounters(c, n, ...)``, so the extra rows are new encounters spread
    over the whole period: late registrations, which make published weeks change.
    The corridor countries PAN, CRI, NIC, HND, GTM and MEX have their own mix
    of nationalities, places and arrivals; any other ISO3 code gets a generic
    mix met at its capital. The same arguments always give the same rows, and
    different countries give different people.

    Raises ValueError for a malformed country code, ``n < 0`` or ``weeks < 1``.
    """
    _check(country, n, weeks)
    groups = _draw_groups(_rng(country, seed, "people"), country, n, start, weeks)
    return _render(country, seed, groups, start)


def _link_travellers(
    rng: random.Random,
    groups: list[Group],
    upstream: str,
    upstream_groups: list[Group],
    share: float,
) -> None:
    """Let a share of the people arriving from ``upstream`` be people that
    ``upstream`` met one to fourteen days before: same documents, same names."""
    pools: dict[tuple[str, int], list[Group]] = {}
    for group in sorted(upstream_groups, key=lambda g: g.encounter_date):
        pools.setdefault((group.nationality, len(group.people)), []).append(group)
    dates = {key: [g.encounter_date for g in pool] for key, pool in pools.items()}
    taken: set[int] = set()
    documents = {p.document_number for g in groups for p in g.people}
    for group in groups:
        if group.previous_country != upstream or rng.random() >= share:
            continue
        key = (group.nationality, len(group.people))
        pool = pools.get(key, [])
        low = bisect_left(dates.get(key, []), group.encounter_date - timedelta(days=14))
        high = bisect_right(dates.get(key, []), group.encounter_date - timedelta(days=1))
        free = [g for g in pool[low:high] if id(g) not in taken]
        if not free:
            continue
        earlier = rng.choice(free)
        if any(p.document_number in documents for p in earlier.people):
            continue
        taken.add(id(earlier))
        documents.difference_update(p.document_number for p in group.people)
        documents.update(p.document_number for p in earlier.people)
        group.people = list(earlier.people)


def _route_depth(country: str) -> int:
    depth, current = 0, predecessor(country)
    while current is not None and depth < len(CORRIDOR) + len(OFF_CORRIDOR_PREDECESSOR):
        depth, current = depth + 1, predecessor(current)
    return depth


def generate_federation(
    countries: Sequence[str] = tuple(DEMO_VOLUMES),
    per_country: Mapping[str, int] | int = DEMO_VOLUMES,
    *,
    seed: int,
    start: date,
    weeks: int,
    linked_share: float = 0.3,
) -> dict[str, list[dict[str, str]]]:
    """Records for several countries over the same period, keyed by country.

    Unlike separate ``generate_encounters`` calls, a ``linked_share`` of the
    groups a country meets coming from the previous country on the route are
    the very people that country met days before (same document, names and
    date of birth), so that linkage tokens have routes to trace. With
    ``linked_share=0`` each country's rows equal ``generate_encounters``'s.
    """
    check_weeks(weeks)
    if not 0.0 <= linked_share <= 1.0:
        raise ValueError(f"linked_share must be between 0 and 1, got {linked_share}")
    volumes: dict[str, int] = {}
    for country in countries:
        count = per_country if isinstance(per_country, int) else per_country.get(country)
        if count is None:
            raise ValueError(f"no record count for {country}")
        _check(country, count, weeks)
        volumes[country] = count
    drawn: dict[str, list[Group]] = {}
    rows: dict[str, list[dict[str, str]]] = {}
    for country in sorted(volumes, key=_route_depth):  # upstream countries first
        groups = _draw_groups(
            _rng(country, seed, "people"), country, volumes[country], start, weeks
        )
        upstream = predecessor(country)
        if linked_share > 0 and upstream in drawn:
            links = _rng(country, seed, "links")
            _link_travellers(links, groups, upstream, drawn[upstream], linked_share)
        drawn[country] = groups
        rows[country] = _render(country, seed, groups, start)
    return {country: rows[country] for country in volumes}
