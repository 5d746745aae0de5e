"""Seeded synthetic raw encounter records, for the demo and the tests.

A node holds raw encounter records: who was met, where, when, coming from which
country. Corredor exists so that those records never leave the node. The demo
and the tests need such records without touching real people, so this module
makes them up, deterministically from a seed:

- each reporting country on the route north (``CORRIDOR``) mostly meets people
  coming from the country before it, at real reception points and border posts
  (``PLACES``), plus a small share of air arrivals and southbound returns;
- the nationality mix follows the extraregional flows seen in the region
  (Cubans, Haitians and extracontinental nationals; no South Americans),
  weighted per country: more Asians at the Darién, more Cubans and Haitians
  from Nicaragua north;
- weekly volumes rise slowly with noise, and one nationality surges in the last
  weeks (``surge_plan``), upstream first, so that alerting has something to find;
- people travel alone or in families: children share the date, place and a
  family name with their parents, and every date of birth agrees with an age;
- names come from small per-origin lists that follow each naming custom (two
  surnames in Cuba, patronymics in Eritrea and Somalia, Uzbek -ov/-ova), and
  every name is at least four characters long so that scans of what leaves the
  node for planted values (``plant_values``) do not match by chance.

The modules, by job: ``corridor`` (the route, volumes, surge), ``places``,
``names`` and ``profiles`` (data tables), ``people``, ``encounters`` (the
drawing); this one writes the rows and names what must stay home.

Any likeness to a real person is chance. Only the standard library is used;
``random.Random`` is seeded with a string, which does not depend on
``PYTHONHASHSEED``, so a seed gives the same records in every process.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from os import PathLike

from node.demo.corridor import (
    COLUMNS,
    CORRIDOR,
    DEMO_VOLUMES,
    PLANTED_FIELDS,
    SURGE_NATIONALITY,
    Surge,
    surge_plan,
)
from node.demo.encounters import generate_encounters, generate_federation
from node.demo.places import PLACES, Place, places_for

__all__ = [
    "COLUMNS",
    "CORRIDOR",
    "DEMO_VOLUMES",
    "PLACES",
    "PLANTED_FIELDS",
    "SURGE_NATIONALITY",
    "Place",
    "Surge",
    "generate_encounters",
    "generate_federation",
    "places_for",
    "plant_values",
    "surge_plan",
    "write_csv",
]


def write_csv(rows: Iterable[Mapping[str, str]], path: str | PathLike[str]) -> None:
    """Write rows as a UTF-8 CSV file with the ``COLUMNS`` header."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plant_values(rows: Iterable[Mapping[str, str]]) -> dict[str, set[str]]:
    """The raw values in ``rows`` that must never leave the node, per column
    (``PLANTED_FIELDS``): tests scan what reaches Kafka for every one of them."""
    planted: dict[str, set[str]] = {field: set() for field in PLANTED_FIELDS}
    for row in rows:
        for field in PLANTED_FIELDS:
            if row.get(field):
                planted[field].add(row[field])
    return planted
