"""Code lists validated at the boundary: ISO 3166-1 alpha-3, regions, sex, age bands.

Regions follow the UN M49 geoscheme (sub-region within continent), which is how
statistics offices in the region group nationalities of origin when a country's
law allows only "region of nationality" to be shared.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# UN M49: continent -> sub-region -> ISO 3166-1 alpha-3 codes.
M49: dict[str, dict[str, str]] = {
    "Africa": {
        "Northern Africa": "DZA EGY LBY MAR SDN TUN ESH",
        "Eastern Africa": (
            "IOT BDI COM DJI ERI ETH ATF KEN MDG MWI MUS MYT MOZ REU RWA SYC SOM SSD "
            "UGA TZA ZMB ZWE"
        ),
        "Middle Africa": "AGO CMR CAF TCD COG COD GNQ GAB STP",
        "Southern Africa": "BWA SWZ LSO NAM ZAF",
        "Western Africa": "BEN BFA CPV CIV GMB GHA GIN GNB LBR MLI MRT NER NGA SHN SEN SLE TGO",
    },
    "Americas": {
        "Caribbean": (
            "AIA ATG ABW BHS BRB BES VGB CYM CUB CUW DMA DOM GRD GLP HTI JAM MTQ MSR PRI BLM "
            "KNA LCA MAF VCT SXM TTO TCA VIR"
        ),
        "Central America": "BLZ CRI SLV GTM HND MEX NIC PAN",
        "South America": "ARG BOL BVT BRA CHL COL ECU FLK GUF GUY PRY PER SGS SUR URY VEN",
        "Northern America": "BMU CAN GRL SPM USA",
    },
    "Asia": {
        "Central Asia": "KAZ KGZ TJK TKM UZB",
        "Eastern Asia": "CHN HKG MAC PRK JPN MNG KOR TWN",
        "South-eastern Asia": "BRN KHM IDN LAO MYS MMR PHL SGP THA TLS VNM",
        "Southern Asia": "AFG BGD BTN IND IRN MDV NPL PAK LKA",
        "Western Asia": ("ARM AZE BHR CYP GEO IRQ ISR JOR KWT LBN OMN QAT SAU PSE SYR TUR ARE YEM"),
    },
    "Europe": {
        "Eastern Europe": "BLR BGR CZE HUN POL MDA ROU RUS SVK UKR",
        "Northern Europe": "ALA DNK EST FRO FIN GGY ISL IRL IMN JEY LVA LTU NOR SJM SWE GBR",
        "Southern Europe": "ALB AND BIH HRV GIB GRC VAT ITA MLT MNE MKD PRT SMR SRB SVN ESP",
        "Western Europe": "AUT BEL FRA DEU LIE LUX MCO NLD CHE",
    },
    "Oceania": {
        "Australia and New Zealand": "AUS CXR CCK HMD NZL NFK",
        "Melanesia": "FJI NCL PNG SLB VUT",
        "Micronesia": "GUM KIR MHL FSM NRU MNP PLW UMI",
        "Polynesia": "ASM COK PYF NIU PCN WSM TKL TON TUV WLF",
    },
    "Antarctica": {"Antarctica": "ATA"},
}

SUBREGION: dict[str, str] = {}
CONTINENT: dict[str, str] = {}
for _continent, _subregions in M49.items():
    for _subregion, _codes in _subregions.items():
        for _code in _codes.split():
            SUBREGION[_code] = _subregion
            CONTINENT[_code] = _continent

#: Every ISO 3166-1 alpha-3 code.
ISO3: frozenset[str] = frozenset(SUBREGION)

#: The RCM members at the 2016 Panama meeting, plus invited members and guests.
RCM_MEMBERS: tuple[str, ...] = ("CAN", "CRI", "DOM", "SLV", "GTM", "HND", "MEX", "PAN", "USA")
RCM_INVITED: tuple[str, ...] = ("BLZ", "NIC")
CSM_GUESTS: tuple[str, ...] = ("BRA", "COL", "ECU")

#: The land corridor north, in travel order; reports list countries this way.
CORRIDOR_ORDER: tuple[str, ...] = (
    "COL",
    "PAN",
    "CRI",
    "NIC",
    "HND",
    "SLV",
    "GTM",
    "BLZ",
    "MEX",
    "USA",
    "CAN",
)


def corridor_sort_key(code: str) -> tuple[int, str]:
    """Sort countries along the corridor, others after it alphabetically."""
    try:
        return (CORRIDOR_ORDER.index(code), code)
    except ValueError:
        return (len(CORRIDOR_ORDER), code)


#: Names of the RCM members, invitees and guests (others show their code).
COUNTRY_NAMES: dict[str, str] = {
    "CAN": "Canada", "CRI": "Costa Rica", "DOM": "Dominican Republic", "SLV": "El Salvador",
    "GTM": "Guatemala", "HND": "Honduras", "MEX": "Mexico", "PAN": "Panama",
    "USA": "United States", "BLZ": "Belize", "NIC": "Nicaragua", "BRA": "Brazil",
    "COL": "Colombia", "ECU": "Ecuador",
}  # fmt: skip


SEXES: tuple[str, ...] = ("F", "M", "X")

#: Age bands, lower bound inclusive. Minors are one band: the policy floor does
#: not let finer child ages leave a country.
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("0-17", 0, 17),
    ("18-29", 18, 29),
    ("30-44", 30, 44),
    ("45-59", 45, 59),
    ("60+", 60, None),
)
AGE_BAND_LABELS: tuple[str, ...] = tuple(label for label, _, _ in AGE_BANDS)


def is_iso3(code: str) -> bool:
    return code in ISO3


def iso3_code(value: str) -> str:
    """Validate (and upper-case) an ISO 3166-1 alpha-3 code. The error never
    repeats the value: a shifted or swapped column puts a name or a document
    number where a code belongs, and rejection reasons are printed and kept."""
    code = value.strip().upper()
    if not is_iso3(code):
        raise ValueError("not an ISO 3166-1 alpha-3 country code")
    return code


def _language_code(value: str) -> str:
    if len(value) != 2 or not value.isalpha() or not value.islower():
        raise ValueError("not an ISO 639-1 language code")  # never the value (see iso3_code)
    return value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


#: Field types validated at the boundary by every input model.
Iso3 = Annotated[str, AfterValidator(iso3_code)]
LanguageCode = Annotated[str, AfterValidator(_language_code)]
#: Code-list values (enums) given in any case: ``haiti``'s ``f`` is ``F``.
Upper = BeforeValidator(_upper)


def region_of(code: str) -> str:
    """UN M49 sub-region of a country, e.g. ``HTI`` -> ``Caribbean``."""
    return SUBREGION[code]


def continent_of(code: str) -> str:
    return CONTINENT[code]


def age_at(born: date, on: date) -> int:
    years = on.year - born.year
    if (on.month, on.day) < (born.month, born.day):
        years -= 1
    return years


def age_band(age: int) -> str:
    for label, low, high in AGE_BANDS:
        if age >= low and (high is None or age <= high):
            return label
    raise ValueError(f"negative age {age}")


def iso_week(day: date) -> str:
    """ISO 8601 week label, e.g. ``2024-W03``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"
