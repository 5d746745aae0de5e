"""Demo data: seeded synthetic raw encounter records for the demo and the tests.

Nothing here describes real people. See ``node.demo.synth``.
"""

from node.demo.synth import (
    COLUMNS,
    CORRIDOR,
    DEMO_VOLUMES,
    PLACES,
    PLANTED_FIELDS,
    SURGE_NATIONALITY,
    Place,
    Surge,
    generate_encounters,
    generate_federation,
    places_for,
    plant_values,
    surge_plan,
    write_csv,
)

__all__ = [
    "COLUMNS",
    "CORRIDOR",
    "DEMO_VOLUMES",
    "PLACES",
    "PLANTED_FIELDS",
    "SURGE_NATIONALITY",
    "Place",
    "Surge",
    "corridor",
    "encounters",
    "federation",
    "generate_encounters",
    "generate_federation",
    "names",
    "people",
    "places",
    "places_for",
    "plant_values",
    "profiles",
    "surge_plan",
    "synth",
    "write_csv",
]
