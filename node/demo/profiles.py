"""Where people come from and where each country meets them: the nationality
mix, the arrivals and their places, and the health notes (data tables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from node.demo.corridor import predecessor
from node.demo.names import CARIBBEAN, EXTRACONTINENTAL
from node.demo.places import Place, places_for

# --- where they come from and where they are met -----------------------------

OWN_COUNTRY = "self"  # previous_country is the traveller's own: a direct flight


@dataclass(frozen=True)
class _Arrival:
    previous: str
    weight: float
    places: tuple[Place, ...]
    place_weights: tuple[float, ...]
    only: frozenset[str] | None  # nationalities it applies to; None: all


def _arrival(
    country: str,
    previous: str,
    weight: float,
    places: Mapping[str, float],
    only: frozenset[str] | None = None,
) -> _Arrival:
    by_name = {place.name: place for place in places_for(country)}
    return _Arrival(
        previous, weight, tuple(by_name[n] for n in places), tuple(places.values()), only
    )


@dataclass(frozen=True)
class Profile:
    nationalities: Mapping[str, float]
    arrivals: tuple[_Arrival, ...]  # the first one is the usual, overland arrival
    health_rate: float  # share of records with a health note


def _mix(weights: str) -> dict[str, float]:
    pairs = (item.split(":") for item in weights.split())
    return {code: float(weight) for code, weight in pairs}


_PROFILES: dict[str, Profile] = {
    # The Darién: people walk in from Colombia; a few fly into Tocumen.
    "PAN": Profile(
        _mix(
            "HTI:24 CHN:16 IND:8 AFG:6 NPL:4 BGD:4 UZB:3 CMR:6 COD:3 ERI:2 SOM:3 GHA:3 SEN:3 "
            "AGO:5 GIN:3 CUB:4"
        ),
        (
            _arrival(
                "PAN",
                "COL",
                90,
                {"Lajas Blancas": 35, "San Vicente": 30, "Bajo Chiquito": 25, "Metetí": 10},
            ),
            _arrival("PAN", "ECU", 4, {"Tocumen": 1}),
            _arrival("PAN", "BRA", 3, {"Tocumen": 1}),
            _arrival("PAN", OWN_COUNTRY, 3, {"Tocumen": 1}, only=CARIBBEAN),
        ),
        health_rate=0.12,
    ),
    # Buses from the Panamanian stations to Paso Canoas; some walk back south.
    "CRI": Profile(
        _mix(
            "HTI:24 CHN:15 IND:9 AFG:6 NPL:4 BGD:4 UZB:3 CMR:6 COD:3 ERI:2 SOM:3 GHA:3 SEN:3 "
            "AGO:5 GIN:3 CUB:5"
        ),
        (
            _arrival("CRI", "PAN", 90, {"Paso Canoas": 1}),
            _arrival("CRI", "NIC", 10, {"La Cruz": 6, "Los Chiles": 4}),
        ),
        health_rate=0.05,
    ),
    # Overland from Costa Rica, and charter flights into Managua.
    "NIC": Profile(
        _mix(
            "CUB:28 HTI:26 CHN:6 IND:6 AFG:3 NPL:2 BGD:2 UZB:3 CMR:3 COD:1 ERI:1 SOM:1 GHA:4 "
            "SEN:7 AGO:2 GIN:5"
        ),
        (
            _arrival("NIC", "CRI", 78, {"Peñas Blancas": 85, "El Guasaule": 15}),
            _arrival("NIC", OWN_COUNTRY, 16, {"Managua": 1}, only=CARIBBEAN),
            _arrival("NIC", "TUR", 3, {"Managua": 1}, only=EXTRACONTINENTAL),
            _arrival("NIC", "ESP", 3, {"Managua": 1}, only=EXTRACONTINENTAL),
        ),
        health_rate=0.05,
    ),
    "HND": Profile(
        _mix(
            "CUB:24 HTI:20 CHN:9 IND:7 AFG:4 NPL:2 BGD:3 UZB:3 CMR:5 COD:2 ERI:1 SOM:2 GHA:3 "
            "SEN:5 AGO:3 GIN:5"
        ),
        (
            _arrival("HND", "NIC", 90, {"Danlí": 50, "Trojes": 30, "Choluteca": 20}),
            _arrival("HND", OWN_COUNTRY, 5, {"San Pedro Sula": 1}),
            _arrival("HND", "GTM", 5, {"San Pedro Sula": 1}),
        ),
        health_rate=0.05,
    ),
    "GTM": Profile(
        _mix(
            "CUB:22 HTI:20 CHN:9 IND:8 AFG:4 NPL:3 BGD:3 UZB:3 CMR:5 COD:2 ERI:2 SOM:2 GHA:3 "
            "SEN:5 AGO:3 GIN:5"
        ),
        (
            _arrival("GTM", "HND", 88, {"Agua Caliente": 45, "Esquipulas": 35, "Tecún Umán": 20}),
            _arrival("GTM", "SLV", 6, {"Ciudad de Guatemala": 1}),
            _arrival("GTM", OWN_COUNTRY, 6, {"Ciudad de Guatemala": 1}),
        ),
        health_rate=0.05,
    ),
    "MEX": Profile(
        _mix(
            "CUB:28 HTI:26 CHN:7 IND:6 AFG:3 NPL:2 BGD:2 UZB:3 CMR:4 COD:2 ERI:2 SOM:2 GHA:3 "
            "SEN:4 AGO:3 GIN:4"
        ),
        (
            _arrival(
                "MEX",
                "GTM",
                88,
                {"Tapachula": 55, "Ciudad Hidalgo": 25, "Tenosique": 15, "Ciudad Juárez": 5},
            ),
            _arrival("MEX", "NIC", 7, {"Tapachula": 6, "Ciudad Hidalgo": 4}, only=CARIBBEAN),
            _arrival("MEX", OWN_COUNTRY, 5, {"Ciudad Juárez": 1}),
        ),
        health_rate=0.04,
    ),
}

_GENERIC_MIX = _mix(
    "HTI:18 CUB:14 CHN:10 IND:8 AFG:5 NPL:3 BGD:3 UZB:3 CMR:5 COD:3 ERI:2 SOM:3 GHA:4 SEN:5 "
    "AGO:4 GIN:4"
)


def profile_of(country: str) -> Profile:
    known = _PROFILES.get(country)
    if known is not None:
        return known
    capital = {places_for(country)[0].name: 1.0}
    overland = predecessor(country)
    arrivals: tuple[_Arrival, ...] = (_arrival(country, OWN_COUNTRY, 20, capital),)
    if overland is not None:
        arrivals = (_arrival(country, overland, 80, capital), *arrivals)
    return Profile(_GENERIC_MIX, arrivals, health_rate=0.04)


HEALTH_NOTES: tuple[tuple[str, str], ...] = (
    # (note, who it can be about)
    ("dehydration, treated at EMS post", "anyone"),
    ("fever, referred to health centre", "anyone"),
    ("diarrhoea, oral rehydration given", "anyone"),
    ("upper respiratory infection, antibiotics given", "anyone"),
    ("insect bites, topical treatment", "anyone"),
    ("sprained ankle, bandaged", "anyone"),
    ("skin rash, assessed by nurse", "anyone"),
    ("exhaustion, observed and released", "anyone"),
    ("hypertension, usual medication continued", "adult"),
    ("pregnant, prenatal check done", "pregnant"),
    ("child with fever, paediatric check", "child"),
    ("malnutrition screening, referred to clinic", "child"),
    ("foot wounds from jungle trek, dressed", "darien"),
    ("lacerations from river crossing, sutured", "darien"),
)
