"""The demo's route north and its volumes: the corridor, the records per
country, the planted surge, the columns and values that must stay home."""

from __future__ import annotations

from dataclasses import dataclass

from node.model.records import ENCOUNTER_COLUMNS

#: The raw encounter file's columns (the node's own definition).
COLUMNS: tuple[str, ...] = ENCOUNTER_COLUMNS

#: The route north, from the Darién to the United States border.
CORRIDOR: tuple[str, ...] = ("COL", "PAN", "CRI", "NIC", "HND", "GTM", "MEX")

#: Records per reporting country for a demo of about 12 weeks. The Darién
#: reception stations in Panama register the most people.
DEMO_VOLUMES: dict[str, int] = {
    "PAN": 3000,
    "CRI": 2400,
    "NIC": 1600,
    "HND": 1800,
    "GTM": 1200,
    "MEX": 2200,
}

#: The nationality whose numbers surge in the last weeks, Darién first, as Chinese
#: crossings did in 2023.
SURGE_NATIONALITY = "CHN"

#: The values in a raw row that identify a person, plus the health notes, which
#: are just as sensitive: none of them may ever leave the node.
PLANTED_FIELDS: tuple[str, ...] = (
    "document_number",
    "family_name",
    "given_names",
    "date_of_birth",
    "health_notes",
)


@dataclass(frozen=True)
class Surge:
    """Where the planted surge is: ``factors[i]`` multiplies the weekly weight of
    ``nationality`` in week ``first_week + i`` (weeks counted from 0)."""

    nationality: str
    first_week: int
    factors: tuple[float, ...]

    @property
    def weeks(self) -> range:
        return range(self.first_week, self.first_week + len(self.factors))

    def factor(self, week: int) -> float:
        return self.factors[week - self.first_week] if week in self.weeks else 1.0


# Weeks between a surge at the Darién and its arrival further north.
_SURGE_LAG: dict[str, int] = {"PAN": 0, "CRI": 0, "NIC": 1, "HND": 1, "GTM": 2, "MEX": 2}
_SURGE_PEAK = 4.0


def surge_plan(country: str, weeks: int) -> Surge:
    """The surge planted in ``country``'s records over ``weeks`` weeks.

    It ramps up to four times the usual weekly weight and lasts up to four
    weeks, ending with the period; countries further north see it start later.
    """
    check_weeks(weeks)
    base = min(4, max(2, weeks // 3))
    length = min(weeks, max(1, base - _SURGE_LAG.get(country, 0)))
    factors = tuple(1 + (_SURGE_PEAK - 1) * k / length for k in range(1, length + 1))
    return Surge(SURGE_NATIONALITY, weeks - length, factors)


# Where people reach a country off the corridor from, overland.
OFF_CORRIDOR_PREDECESSOR: dict[str, str] = {
    "COL": "ECU",
    "USA": "MEX",
    "CAN": "USA",
    "BLZ": "GTM",
    "SLV": "HND",
    "DOM": "HTI",
}


def predecessor(country: str) -> str | None:
    if country in CORRIDOR[1:]:
        return CORRIDOR[CORRIDOR.index(country) - 1]
    return OFF_CORRIDOR_PREDECESSOR.get(country)


def check_weeks(weeks: int) -> None:
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
