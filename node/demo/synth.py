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

Any likeness to a real person is chance. Only the standard library is used;
``random.Random`` is seeded with a string, which does not depend on
``PYTHONHASHSEED``, so a seed gives the same records in every process.
"""

from __future__ import annotations

import csv
import random
import re
import string
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from os import PathLike

from node.config import policies_dir
from node.errors import ConfigError
from node.model.records import ENCOUNTER_COLUMNS
from node.policy.places import country_gazetteer, places_file

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
    _check_weeks(weeks)
    base = min(4, max(2, weeks // 3))
    length = min(weeks, max(1, base - _SURGE_LAG.get(country, 0)))
    factors = tuple(1 + (_SURGE_PEAK - 1) * k / length for k in range(1, length + 1))
    return Surge(SURGE_NATIONALITY, weeks - length, factors)


# --- who travels -------------------------------------------------------------


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


@dataclass(frozen=True)
class _Names:
    family: tuple[str, ...]
    male: tuple[str, ...]
    female: tuple[str, ...]
    second_given: float = 0.0  # share of people with two given names
    two_surnames: bool = False  # Spanish custom: father's first + mother's first
    patronymic: bool = False  # a child's family name is the father's given name
    feminine_suffix: str = ""  # Uzbek: Karimov, Karimova
    spouse_shares_name: bool = False


_HAITIAN = _Names(
    _w(
        "Jean-Baptiste Pierre Joseph Louis Charles Saint-Fleur Desrosiers Dorvil Jean-Louis "
        "Etienne Augustin Célestin Fils-Aimé Philogène Toussaint Valcourt Michel Dieudonné "
        "Exantus Lafortune Similien Beauvais Derisier"
    ),
    _w(
        "Jean Wilson Jameson Frantz Wesly Kervens Stevenson Ricardo Woodley Peterson Jocelyn "
        "Makenson Dieunel Wilner Fritznel Jimmy Emmanuel"
    ),
    _w(
        "Marie Nadège Roseline Guerline Wideline Fabienne Judith Mirlande Lovely Sherline "
        "Esther Micheline Nathalie Djenane"
    ),
    second_given=0.35,
    spouse_shares_name=True,
)
_CUBAN = _Names(
    _w(
        "González Rodríguez Pérez Hernández García Fernández López Martínez Díaz Sánchez "
        "Ramírez Castillo Morales Rivero Cabrera Valdés Leyva Guerra Fonseca Suárez Betancourt"
    ),
    _w(
        "Yoandri Yunior Dayron Alexei Yasmani Osniel Reinier Yordanis Ernesto Lázaro Raúl "
        "Yuniel Maikel Alain Yosvany Adrián"
    ),
    _w(
        "Yaimara Yusleidy Dayana Lisandra Yanelis Mailén Yudith Arianna Liset Marisleidys "
        "Yamilé Daimí Yenisey Odalys"
    ),
    second_given=0.5,
    two_surnames=True,
)
_INDIAN = _Names(
    _w(
        "Patel Singh Kumar Sharma Chaudhary Yadav Gill Sandhu Dhillon Prajapati Thakor Desai "
        "Grewal Parmar"
    ),
    _w("Harpreet Gurpreet Jaswinder Rahul Vikram Rohit Manish Jagdeep Hardik Mehul Sandeep Ankit"),
    _w("Priya Pooja Harleen Simran Kiran Komal Anjali Manpreet Jaspreet Hetal Nisha"),
    spouse_shares_name=True,
)
_NEPALI = _Names(
    _w("Shrestha Gurung Tamang Magar Thapa Adhikari Karki Sherpa Bhandari Poudel Khadka"),
    _w("Bikash Suman Ramesh Santosh Dipak Prakash Bishal Sagar Roshan Nabin"),
    _w("Sunita Pramila Sarita Sabina Manisha Asmita Gita"),
    spouse_shares_name=True,
)
_BANGLADESHI = _Names(
    _w("Hossain Rahman Islam Ahmed Uddin Miah Chowdhury Sarkar Talukder Bhuiyan Mollah"),
    _w("Mohammad Abdul Rafiqul Shafiqul Jahid Sohel Rakib Tanvir Mizanur Shahidul"),
    _w("Nusrat Farzana Sumaiya Tahmina Rokeya Shirin Taslima Nasrin"),
)
_CHINESE = _Names(
    _w("Wang Zhang Chen Yang Huang Zhao Zhou Liang Zheng Deng Xiao Feng Tang Song Jiang Cheng"),
    _w("Zhiwei Haoran Jianguo Junjie Zihao Yuxuan Mingjie Jianhua Wenbo Tianyu Guoqiang"),
    _w("Xiaoyan Meiling Yuting Jingjing Xinyi Lingling Huimin Shuang Yanping Xiaoli"),
)
_AFGHAN = _Names(
    _w(
        "Ahmadzai Popal Rahimi Hakimi Sultani Noori Karimi Stanikzai Amiri Hussaini "
        "Mohammadi Sadat Wardak"
    ),
    _w("Ahmad Mohammad Farid Habib Jawad Naveed Samiullah Zabihullah Rahmatullah Hamid Mirwais"),
    _w("Fatima Zahra Maryam Zainab Farzana Nargis Shabnam Hosai Mursal Freshta"),
    spouse_shares_name=True,
)
_UZBEK = _Names(
    _w(
        "Karimov Rakhimov Usmonov Tursunov Yusupov Abdullayev Ismoilov Nazarov Saidov "
        "Ergashev Sobirov Qodirov"
    ),
    _w("Jasur Bekzod Sardor Otabek Shokhrukh Ulugbek Dilshod Jahongir Sanjar"),
    _w("Dilnoza Gulnora Madina Nilufar Shakhnoza Zarina Malika Kamola"),
    feminine_suffix="a",
    spouse_shares_name=True,
)
_SAHEL = _Names(  # Senegal and Guinea: Wolof and Fula names
    _w("Diop Ndiaye Gueye Faye Mbaye Diallo Barry Camara Sylla Condé Touré Keita Soumah Baldé"),
    _w("Mamadou Moussa Cheikh Ousmane Abdoulaye Ibrahima Modou Alpha Oumar Thierno Sékou Amadou"),
    _w("Fatou Aminata Khady Mariama Ndeye Kadiatou Fatoumata Aïssatou Djenab Astou Binta"),
    second_given=0.2,
)
_CAMEROONIAN = _Names(
    _w("Nkodo Mbarga Fotso Tchinda Nguema Kamga Ngono Atangana Essomba Njoya Fouda"),
    _w("Emmanuel Serge Hervé Blaise Arnaud Christian Franck Landry Boris Cyrille"),
    _w("Brigitte Carine Estelle Mireille Rosine Solange Vanessa Larissa Sandrine"),
    second_given=0.4,
    spouse_shares_name=True,
)
_CONGOLESE = _Names(
    _w("Mbuyi Kalonji Tshibangu Ilunga Kasongo Mukendi Lukusa Kabeya Mulumba Nsimba"),
    _w("Patrick Jean-Claude Héritier Dieudonné Glody Christian Trésor Fiston Exaucé"),
    _w("Grâce Merveille Esther Nathalie Chantal Divine Gloire Ornella Bénédicte"),
    second_given=0.3,
)
_GHANAIAN = _Names(
    _w("Mensah Owusu Boateng Asante Agyei Appiah Darko Acheampong Amoah Ofori Yeboah"),
    _w("Kwame Kwabena Kwaku Kwasi Emmanuel Isaac Samuel Ebenezer Prince"),
    _w("Akosua Abena Adwoa Gifty Comfort Priscilla Akua Mercy"),
    second_given=0.3,
    spouse_shares_name=True,
)
_ANGOLAN = _Names(
    _w("Fernandes Domingos Lopes Baptista Sebastião Kiala Mateus Cassoma Cardoso Chipenda"),
    _w("João António Manuel Adilson Edson Nelson Armando Osvaldo Avelino"),
    _w("Maria Isabel Teresa Joana Esperança Luzia Madalena Celeste Filomena"),
    second_given=0.4,
    spouse_shares_name=True,
)
_ERITREAN = _Names(
    _w(
        "Tesfay Haile Ghebremedhin Tekle Kidane Berhane Mehari Yohannes Weldemariam Habtom "
        "Tesfamariam"
    ),
    _w("Yonas Dawit Samuel Filmon Biniam Tesfalem Merhawi Robel Henok Mussie"),
    _w("Helen Senait Selam Luwam Feven Yordanos Winta Rahel"),
    patronymic=True,
)
_SOMALI = _Names(
    _w("Mohamed Hassan Osman Warsame Farah Hussein Abdullahi Yusuf Ahmed Abdi"),
    _w("Abdirahman Abdullahi Mohamed Ahmed Hassan Abdiaziz Mahad Liban Abdikarim Mustafe"),
    _w("Hodan Fadumo Amina Ayaan Sahra Ifrah Nimco Deeqa"),
    patronymic=True,
)


@dataclass(frozen=True)
class _Origin:
    names: _Names
    male_share: float  # among adults travelling alone
    family_rate: float  # share of travel groups that are families with children
    document: str = "AA9999999"  # passport number pattern: A a letter, 9 a digit


_CARIBBEAN = frozenset({"CUB", "HTI"})
_ORIGINS: dict[str, _Origin] = {
    "CUB": _Origin(_CUBAN, 0.55, 0.25),
    "HTI": _Origin(_HAITIAN, 0.55, 0.35),
    "IND": _Origin(_INDIAN, 0.92, 0.06, "A9999999"),
    "NPL": _Origin(_NEPALI, 0.92, 0.04),
    "BGD": _Origin(_BANGLADESHI, 0.95, 0.03),
    "CHN": _Origin(_CHINESE, 0.70, 0.20, "E99999999"),
    "AFG": _Origin(_AFGHAN, 0.80, 0.40),
    "UZB": _Origin(_UZBEK, 0.85, 0.05),
    "CMR": _Origin(_CAMEROONIAN, 0.80, 0.10),
    "COD": _Origin(_CONGOLESE, 0.70, 0.20),
    "ERI": _Origin(_ERITREAN, 0.75, 0.05),
    "SOM": _Origin(_SOMALI, 0.75, 0.05),
    "GHA": _Origin(_GHANAIAN, 0.85, 0.04),
    "SEN": _Origin(_SAHEL, 0.90, 0.03),
    "GIN": _Origin(_SAHEL, 0.85, 0.05),
    "AGO": _Origin(_ANGOLAN, 0.60, 0.35),
}
_EXTRACONTINENTAL = frozenset(_ORIGINS) - _CARIBBEAN


# --- where they come from and where they are met -----------------------------

_SELF = "self"  # previous_country is the traveller's own: a direct flight


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
class _Profile:
    nationalities: Mapping[str, float]
    arrivals: tuple[_Arrival, ...]  # the first one is the usual, overland arrival
    health_rate: float  # share of records with a health note


def _mix(weights: str) -> dict[str, float]:
    pairs = (item.split(":") for item in weights.split())
    return {code: float(weight) for code, weight in pairs}


_PROFILES: dict[str, _Profile] = {
    # The Darién: people walk in from Colombia; a few fly into Tocumen.
    "PAN": _Profile(
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
            _arrival("PAN", _SELF, 3, {"Tocumen": 1}, only=_CARIBBEAN),
        ),
        health_rate=0.12,
    ),
    # Buses from the Panamanian stations to Paso Canoas; some walk back south.
    "CRI": _Profile(
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
    "NIC": _Profile(
        _mix(
            "CUB:28 HTI:26 CHN:6 IND:6 AFG:3 NPL:2 BGD:2 UZB:3 CMR:3 COD:1 ERI:1 SOM:1 GHA:4 "
            "SEN:7 AGO:2 GIN:5"
        ),
        (
            _arrival("NIC", "CRI", 78, {"Peñas Blancas": 85, "El Guasaule": 15}),
            _arrival("NIC", _SELF, 16, {"Managua": 1}, only=_CARIBBEAN),
            _arrival("NIC", "TUR", 3, {"Managua": 1}, only=_EXTRACONTINENTAL),
            _arrival("NIC", "ESP", 3, {"Managua": 1}, only=_EXTRACONTINENTAL),
        ),
        health_rate=0.05,
    ),
    "HND": _Profile(
        _mix(
            "CUB:24 HTI:20 CHN:9 IND:7 AFG:4 NPL:2 BGD:3 UZB:3 CMR:5 COD:2 ERI:1 SOM:2 GHA:3 "
            "SEN:5 AGO:3 GIN:5"
        ),
        (
            _arrival("HND", "NIC", 90, {"Danlí": 50, "Trojes": 30, "Choluteca": 20}),
            _arrival("HND", _SELF, 5, {"San Pedro Sula": 1}),
            _arrival("HND", "GTM", 5, {"San Pedro Sula": 1}),
        ),
        health_rate=0.05,
    ),
    "GTM": _Profile(
        _mix(
            "CUB:22 HTI:20 CHN:9 IND:8 AFG:4 NPL:3 BGD:3 UZB:3 CMR:5 COD:2 ERI:2 SOM:2 GHA:3 "
            "SEN:5 AGO:3 GIN:5"
        ),
        (
            _arrival("GTM", "HND", 88, {"Agua Caliente": 45, "Esquipulas": 35, "Tecún Umán": 20}),
            _arrival("GTM", "SLV", 6, {"Ciudad de Guatemala": 1}),
            _arrival("GTM", _SELF, 6, {"Ciudad de Guatemala": 1}),
        ),
        health_rate=0.05,
    ),
    "MEX": _Profile(
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
            _arrival("MEX", "NIC", 7, {"Tapachula": 6, "Ciudad Hidalgo": 4}, only=_CARIBBEAN),
            _arrival("MEX", _SELF, 5, {"Ciudad Juárez": 1}),
        ),
        health_rate=0.04,
    ),
}

_GENERIC_MIX = _mix(
    "HTI:18 CUB:14 CHN:10 IND:8 AFG:5 NPL:3 BGD:3 UZB:3 CMR:5 COD:3 ERI:2 SOM:3 GHA:4 SEN:5 "
    "AGO:4 GIN:4"
)

# Where people reach a country off the corridor from, overland.
_OFF_CORRIDOR_PREDECESSOR: dict[str, str] = {
    "COL": "ECU",
    "USA": "MEX",
    "CAN": "USA",
    "BLZ": "GTM",
    "SLV": "HND",
    "DOM": "HTI",
}


def _predecessor(country: str) -> str | None:
    if country in CORRIDOR[1:]:
        return CORRIDOR[CORRIDOR.index(country) - 1]
    return _OFF_CORRIDOR_PREDECESSOR.get(country)


def _profile(country: str) -> _Profile:
    known = _PROFILES.get(country)
    if known is not None:
        return known
    capital = {places_for(country)[0].name: 1.0}
    overland = _predecessor(country)
    arrivals: tuple[_Arrival, ...] = (_arrival(country, _SELF, 20, capital),)
    if overland is not None:
        arrivals = (_arrival(country, overland, 80, capital), *arrivals)
    return _Profile(_GENERIC_MIX, arrivals, health_rate=0.04)


_HEALTH_NOTES: tuple[tuple[str, str], ...] = (
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


# --- drawing records ---------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    document_number: str
    family_name: str
    given_names: str
    date_of_birth: date
    sex: str


@dataclass
class _Group:
    """People met together: one traveller, or a family."""

    encounter_date: date
    place: Place
    nationality: str
    previous_country: str
    people: list[_Person]


_ISO3_SHAPE = re.compile(r"[A-Z]{3}")


def _check_weeks(weeks: int) -> None:
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")


def _check_country(country: str) -> None:
    if not _ISO3_SHAPE.fullmatch(country):
        raise ValueError(f"country must be an ISO 3166-1 alpha-3 code, got {country!r}")


def _rng(country: str, seed: int, stream: str) -> random.Random:
    # A string seed is hashed with SHA-512, so countries get unrelated streams.
    return random.Random(f"corredor.demo.synth:{country}:{seed}:{stream}")


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _birth_date(rng: random.Random, encounter: date, age: int) -> date:
    latest = min(_years_before(encounter, age), encounter - timedelta(days=1))
    earliest = _years_before(encounter, age + 1) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def _pattern_char(rng: random.Random, ch: str) -> str:
    if ch == "A":
        return rng.choice(string.ascii_uppercase)
    if ch == "9":
        return str(rng.randrange(10))
    return ch


def _document_number(rng: random.Random, pattern: str, used: set[str]) -> str:
    while True:
        number = "".join(_pattern_char(rng, ch) for ch in pattern)
        if number not in used:
            used.add(number)
            return number


def _sex(rng: random.Random, male_share: float) -> str:
    if rng.random() < 0.003:
        return "X"
    return "M" if rng.random() < male_share else "F"


def _given_names(rng: random.Random, names: _Names, sex: str) -> str:
    pool = {"M": names.male, "F": names.female}.get(sex) or rng.choice((names.male, names.female))
    first = rng.choice(pool)
    if rng.random() < names.second_given:
        second = rng.choice(pool)
        if second != first:
            return f"{first} {second}"
    return first


def _family_name(rng: random.Random, names: _Names) -> str:
    """A family name in its base (masculine) form."""
    if names.two_surnames:
        paternal, maternal = rng.sample(names.family, 2)
        return f"{paternal} {maternal}"
    return rng.choice(names.family)


def _single_age(rng: random.Random) -> int:
    draw = rng.random()
    if draw < 0.012:
        return rng.randint(60, 76)
    if draw < 0.022:
        return rng.randint(15, 17)  # adolescents travelling without their parents
    if draw < 0.07:
        return rng.randint(46, 59)
    return min(45, int(rng.triangular(18, 46, 26)))


class _PeopleMaker:
    def __init__(self, rng: random.Random, used_documents: set[str]) -> None:
        self._rng = rng
        self._used = used_documents

    def person(
        self, origin: _Origin, encounter: date, age: int, sex: str, family_base: str
    ) -> _Person:
        names = origin.names
        family = family_base + (names.feminine_suffix if sex == "F" else "")
        return _Person(
            document_number=_document_number(self._rng, origin.document, self._used),
            family_name=family,
            given_names=_given_names(self._rng, names, sex),
            date_of_birth=_birth_date(self._rng, encounter, age),
            sex=sex,
        )

    def group(self, origin: _Origin, encounter: date) -> list[_Person]:
        rng = self._rng
        if rng.random() >= origin.family_rate:
            sex = _sex(rng, origin.male_share)
            family = _family_name(rng, origin.names)
            return [self.person(origin, encounter, _single_age(rng), sex, family)]
        return self._family(origin, encounter)

    def _family(self, origin: _Origin, encounter: date) -> list[_Person]:
        rng, names = self._rng, origin.names
        both = rng.random() < 0.65
        has_father = both or rng.random() < 0.2
        has_mother = both or not has_father
        father_age = int(rng.triangular(21, 52, 32))
        mother_age = max(18, min(50, father_age + rng.randint(-8, 3)))
        father_family = _family_name(rng, names)
        mother_family = father_family if names.spouse_shares_name else _family_name(rng, names)
        adults: list[_Person] = []
        if has_father:
            adults.append(self.person(origin, encounter, father_age, "M", father_family))
        if has_mother:
            adults.append(self.person(origin, encounter, mother_age, "F", mother_family))
        youngest = min(
            age for age, present in ((father_age, has_father), (mother_age, has_mother)) if present
        )
        if names.patronymic:
            child_family = (
                adults[0].given_names.split()[0] if has_father else rng.choice(names.male)
            )
        elif names.two_surnames:
            paternal = (father_family if has_father else _family_name(rng, names)).split()[0]
            child_family = f"{paternal} {mother_family.split()[0]}" if has_mother else father_family
        else:
            child_family = father_family if has_father else mother_family
        children = rng.choices((1, 2, 3, 4), weights=(45, 35, 15, 5))[0]
        return adults + [
            self.person(
                origin,
                encounter,
                rng.randint(0, min(17, youngest - 16)),
                rng.choice("FM"),
                child_family,
            )
            for _ in range(children)
        ]


def _weekly_trend(rng: random.Random, weeks: int) -> list[float]:
    slope = rng.uniform(0.3, 0.6)
    span = max(1, weeks - 1)
    return [
        (1 + slope * week / span) * min(1.25, max(0.8, rng.gauss(1.0, 0.08)))
        for week in range(weeks)
    ]


def _pick_arrival(rng: random.Random, profile: _Profile, nationality: str) -> tuple[str, Place]:
    arrivals = [a for a in profile.arrivals if a.only is None or nationality in a.only]
    arrival = rng.choices(arrivals, weights=[a.weight for a in arrivals])[0]
    place = rng.choices(arrival.places, weights=arrival.place_weights)[0]
    return (nationality if arrival.previous == _SELF else arrival.previous), place


def _draw_groups(rng: random.Random, country: str, n: int, start: date, weeks: int) -> list[_Group]:
    profile = _profile(country)
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
    monday = _monday(start)
    maker = _PeopleMaker(rng, set())
    groups: list[_Group] = []
    drawn = 0
    while drawn < n:
        week = rng.choices(range(weeks), cum_weights=week_cum)[0]
        nationality = rng.choices(nationalities, cum_weights=nationality_cum[week])[0]
        encounter = monday + timedelta(days=7 * week + rng.randrange(7))
        previous, place = _pick_arrival(rng, profile, nationality)
        people = maker.group(_ORIGINS[nationality], encounter)[: n - drawn]
        groups.append(_Group(encounter, place, nationality, previous, people))
        drawn += len(people)
    return groups


def _health_note(rng: random.Random, rate: float, person: _Person, group: _Group) -> str:
    if rng.random() >= rate:
        return ""
    age = _age_on(person.date_of_birth, group.encounter_date)
    fits = {
        "anyone": True,
        "adult": age >= 18,
        "pregnant": person.sex == "F" and 16 <= age <= 45,
        "child": age < 12,
        "darien": group.place.border_sector.startswith("Darién"),
    }
    return rng.choice([note for note, who in _HEALTH_NOTES if fits[who]])


def _render(country: str, seed: int, groups: list[_Group], start: date) -> list[dict[str, str]]:
    """Rows in registration order, which is the order the groups were drawn in.

    Record numbers and notes come from their own stream, one row after the
    other, so that the first n rows never depend on how many follow.
    """
    rng = _rng(country, seed, "registry")
    rate = _profile(country).health_rate
    # The period starts mid-year: earlier records of that year exist elsewhere.
    last_number = {_monday(start).year: rng.randrange(400)}
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
    _check_weeks(weeks)
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
    groups: list[_Group],
    upstream: str,
    upstream_groups: list[_Group],
    share: float,
) -> None:
    """Let a share of the people arriving from ``upstream`` be people that
    ``upstream`` met one to fourteen days before: same documents, same names."""
    pools: dict[tuple[str, int], list[_Group]] = {}
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
    depth, current = 0, _predecessor(country)
    while current is not None and depth < len(CORRIDOR) + len(_OFF_CORRIDOR_PREDECESSOR):
        depth, current = depth + 1, _predecessor(current)
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
    _check_weeks(weeks)
    if not 0.0 <= linked_share <= 1.0:
        raise ValueError(f"linked_share must be between 0 and 1, got {linked_share}")
    volumes: dict[str, int] = {}
    for country in countries:
        count = per_country if isinstance(per_country, int) else per_country.get(country)
        if count is None:
            raise ValueError(f"no record count for {country}")
        _check(country, count, weeks)
        volumes[country] = count
    drawn: dict[str, list[_Group]] = {}
    rows: dict[str, list[dict[str, str]]] = {}
    for country in sorted(volumes, key=_route_depth):  # upstream countries first
        groups = _draw_groups(
            _rng(country, seed, "people"), country, volumes[country], start, weeks
        )
        upstream = _predecessor(country)
        if linked_share > 0 and upstream in drawn:
            links = _rng(country, seed, "links")
            _link_travellers(links, groups, upstream, drawn[upstream], linked_share)
        drawn[country] = groups
        rows[country] = _render(country, seed, groups, start)
    return {country: rows[country] for country in volumes}


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
