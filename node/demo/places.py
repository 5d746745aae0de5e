"""The places the demo meets people at: rows of each country's gazetteer
(``policies/places/<ISO3>.csv``), as a real node reads them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.config import policies_dir
from node.errors import ConfigError
from node.policy.places import country_gazetteer, places_file


@dataclass(frozen=True)
class Place:
    """A place where encounters are recorded, and the larger areas it lies in.

    A policy may share it at any level of ``name > province > border_sector >
    country``.
    """

    name: str
    province: str
    border_sector: str
    country: str


#: The places the demo draws its encounters at, by country: the Darién
#: reception stations and the border posts north along the route. Their
#: province and border sector are not written here: they are rows of the
#: country's gazetteer (policies/places/<ISO3>.csv), as a real node reads them.
_ROUTE_PLACES: dict[str, tuple[str, ...]] = {
    "PAN": ("Bajo Chiquito", "Lajas Blancas", "San Vicente", "Metetí", "Tocumen"),
    "CRI": ("Paso Canoas", "La Cruz", "Los Chiles"),
    "NIC": ("Peñas Blancas", "El Guasaule", "Managua"),
    "HND": ("Danlí", "Trojes", "Choluteca", "San Pedro Sula"),
    "GTM": ("Esquipulas", "Agua Caliente", "Tecún Umán", "Ciudad de Guatemala"),
    "MEX": ("Tapachula", "Ciudad Hidalgo", "Tenosique", "Ciudad Juárez"),
}

#: Countries off the route record their (few) encounters at the capital.
_CAPITALS: dict[str, str] = {
    "BLZ": "Belmopan",
    "BRA": "Brasília",
    "CAN": "Ottawa",
    "COL": "Bogotá",
    "DOM": "Santo Domingo",
    "ECU": "Quito",
    "SLV": "San Salvador",
    "USA": "Washington",
}


def _places_from_gazetteer(country: str, names: Sequence[str]) -> list[Place]:
    gazetteer = country_gazetteer(policies_dir(), country)
    missing = [name for name in names if name not in gazetteer]
    if missing:
        raise ConfigError(
            f"{places_file(policies_dir(), country)}: the demo's places {missing} are not listed"
        )
    return [Place(name, *gazetteer[name], country) for name in names]


PLACES: dict[str, list[Place]] = {
    country: _places_from_gazetteer(country, names)
    for country, names in (
        _ROUTE_PLACES | {code: (city,) for code, city in _CAPITALS.items()}
    ).items()
}


def places_for(country: str) -> list[Place]:
    """The places of ``country``; a country without a table gets its capital."""
    known = PLACES.get(country)
    if known is not None:
        return known
    return [Place(f"{country} capital", f"{country} capital district", "Interior", country)]
