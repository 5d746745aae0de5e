"""The structure of the flow statistics' SDMX-CSV files, as an SDMX-ML 3.0
structure message written with pysdmx: the dataflow
``RCM:DF_EXTRAREGIONAL_FLOWS(1.0.0)``, its data structure definition
``RCM:DSD_EXTRAREGIONAL_FLOWS(1.0.0)``, the concept scheme and the code lists.

A loader (sdmx1, pysdmx, .Stat, FMR) given this message reads the CSV with the
right roles, types and codes. The message is deterministic (fixed header id and
preparation time, the structure's release date), so the copy shipped in
``docs/sdmx/`` is byte for byte what ``corredor report regional --format
sdmx-structure`` prints; ``tests/test_sdmx_structure.py`` checks both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from node.model.codes import COUNTRY_NAMES, ISO3, M49

#: The dataflow this structure defines, and its version.
AGENCY = "RCM"
FLOW_ID = "DF_EXTRAREGIONAL_FLOWS"
VERSION = "1.0.0"
#: SDMX UNIT_MEASURE of every observation: encounters (not persons).
UNIT = "ENC"
#: The picture's statuses (issue 16's contract), most to least precise.
STATUSES: tuple[str, ...] = ("exact", "rounded", "noisy", "lower-bound", "suppressed")

DSD_ID = "DSD_EXTRAREGIONAL_FLOWS"
SCHEME_ID = "CS_EXTRAREGIONAL_FLOWS"
#: When version 1.0.0 of the structure was released (the message's prepared time).
RELEASED = datetime(2026, 12, 2, tzinfo=UTC)

#: UN M49 sub-region name -> its M49 numeric code (SDMX code ids have no spaces).
M49_REGION_CODES: dict[str, str] = {
    "Northern Africa": "015", "Eastern Africa": "014", "Middle Africa": "017",
    "Southern Africa": "018", "Western Africa": "011", "Caribbean": "029",
    "Central America": "013", "South America": "005", "Northern America": "021",
    "Central Asia": "143", "Eastern Asia": "030", "South-eastern Asia": "035",
    "Southern Asia": "034", "Western Asia": "145", "Eastern Europe": "151",
    "Northern Europe": "154", "Southern Europe": "039", "Western Europe": "155",
    "Australia and New Zealand": "053", "Melanesia": "054", "Micronesia": "057",
    "Polynesia": "061", "Antarctica": "010",
}  # fmt: skip

#: Codes of the SDMX cross-domain code lists this structure uses, with their names.
SPECIAL_AREAS: dict[str, str] = {
    "_T": "Total: the countries releasing to this export's audience (see COUNTRIES)",
    "_U": "Unknown",
    "_Z": "Not applicable: only the region of nationality was published",
}
OBS_STATUS_CODES: dict[str, str] = {
    "A": "Normal value",
    "E": "Estimated value (rounded, noisy or a lower bound: see VALUE_STATUS)",
    "Q": "Missing value; suppressed",
}
CONF_STATUS_CODES: dict[str, str] = {
    "F": "Free",
    "A": "Primary confidentiality due to small counts",
    "D": "Secondary confidentiality set by the sender, not for publication",
    "C": "Confidential statistical information",
}
VALUE_STATUS_CODES: dict[str, str] = {
    "exact": "Exact: the count of encounters",
    "rounded": "Rounded by the country",
    "noisy": "With calibrated noise (differential privacy); see CI95_LOWER, CI95_UPPER",
    "lower-bound": "A lower bound: the sum of the published cells; protected cells hold the rest",
    "suppressed": "Protected by the country; no value",
}


@dataclass(frozen=True)
class Comp:
    """One component of the data structure."""

    id: str
    role: str  # dimension | measure | attribute
    required: bool
    dtype: str  # pysdmx DataType name
    description: str
    level: str | None = None  # attributes: O observation, D dataset
    codelist: str | None = None


COMPONENTS: tuple[Comp, ...] = (
    Comp(
        "REF_AREA",
        "dimension",
        True,
        "STRING",
        "Reporting country (ISO 3166-1 alpha-3); _T: the countries releasing to this audience",
        codelist="CL_AREA",
    ),
    Comp(
        "CITIZENSHIP",
        "dimension",
        True,
        "STRING",
        "Nationality (ISO 3166-1 alpha-3); _T all nationalities; _U unknown; _Z only "
        "the region was published",
        codelist="CL_AREA",
    ),
    Comp(
        "CITIZENSHIP_REGION",
        "dimension",
        True,
        "STRING",
        "UN M49 sub-region when CITIZENSHIP is _Z; _Z otherwise",
        codelist="CL_M49_REGION",
    ),
    Comp(
        "TIME_PERIOD",
        "dimension",
        True,
        "PERIOD",
        "ISO 8601 week (2024-W03), month (2024-01) or quarter (2024-Q1)",
    ),
    Comp("OBS_VALUE", "measure", False, "INTEGER", "Encounters (not persons)"),
    Comp("OBS_STATUS", "attribute", False, "STRING", "Observation status", "O", "CL_OBS_STATUS"),
    Comp(
        "CONF_STATUS", "attribute", False, "STRING", "Confidentiality status", "O", "CL_CONF_STATUS"
    ),
    Comp(
        "VALUE_STATUS",
        "attribute",
        False,
        "STRING",
        "How exact the number is (the picture's status)",
        "O",
        "CL_VALUE_STATUS",
    ),
    Comp(
        "PROTECTED",
        "attribute",
        False,
        "INTEGER",
        "Encounters in protected cells below this observation, where safe to show",
        "O",
    ),
    Comp("CI95_LOWER", "attribute", False, "INTEGER", "95% interval of a noisy count: lower", "O"),
    Comp("CI95_UPPER", "attribute", False, "INTEGER", "95% interval of a noisy count: upper", "O"),
    Comp(
        "COUNTRIES",
        "attribute",
        False,
        "STRING",
        "On a _T observation: the reporting countries it sums, space-separated",
        "O",
    ),
    Comp("UNIT_MEASURE", "attribute", True, "STRING", "Unit of measure", "D", "CL_UNIT"),
    Comp("AUDIENCE", "attribute", True, "STRING", "The audience the file was made for", "D"),
)


def _codes() -> dict[str, dict[str, str]]:
    areas = {code: COUNTRY_NAMES.get(code, code) for code in sorted(ISO3)}
    regions = {code: name for name, code in sorted(M49_REGION_CODES.items(), key=lambda kv: kv[1])}
    assert set(M49_REGION_CODES) == {r for subs in M49.values() for r in subs}
    return {
        "CL_AREA": {**areas, **SPECIAL_AREAS},
        "CL_M49_REGION": {**regions, "_X": "Not allocated", "_Z": "Not applicable"},
        "CL_OBS_STATUS": OBS_STATUS_CODES,
        "CL_CONF_STATUS": CONF_STATUS_CODES,
        "CL_VALUE_STATUS": {s: VALUE_STATUS_CODES[s] for s in STATUSES},
        "CL_UNIT": {UNIT: "Encounters (one person may be encountered by several countries)"},
    }


#: The dimensions, which an observation-level attribute is attached to.
DIMENSIONS: tuple[str, ...] = tuple(c.id for c in COMPONENTS if c.role == "dimension")


def _attachment(level: str | None) -> str | None:
    """Every attribute is written as attached to all the dimensions (SDMX 3.0's
    DimensionRelationship), the one form both readers we test understand:
    sdmx1 2.28 reads neither the observation's MeasureRelationship nor the
    dataset's empty <Dataflow/> relationship. For an observation-level
    attribute it means the same; a dataset-level one (UNIT_MEASURE, AUDIENCE)
    then repeats on every row, as SDMX-CSV writes it anyway."""
    return ",".join(DIMENSIONS) if level else level


def structure_artefacts() -> list[Any]:
    """The pysdmx artefacts: code lists, concept scheme, DSD and dataflow."""
    from pysdmx.model import (
        Code,
        Codelist,
        Concept,
        ConceptScheme,
        Dataflow,
        DataStructureDefinition,
        DataType,
    )
    from pysdmx.model.dataflow import Component, Components, Role

    urn = "urn:sdmx:org.sdmx.infomodel."
    codelists = {
        cid: Codelist(
            id=cid,
            agency=AGENCY,
            version=VERSION,
            name=cid.removeprefix("CL_").title(),
            items=[Code(id=k, name=v) for k, v in codes.items()],
            is_final=True,
            urn=f"{urn}codelist.Codelist={AGENCY}:{cid}({VERSION})",
        )
        for cid, codes in _codes().items()
    }
    concepts = {
        c.id: Concept(
            id=c.id,
            name=c.description,
            dtype=DataType[c.dtype],
            codes=codelists[c.codelist] if c.codelist else None,
            urn=f"{urn}conceptscheme.Concept={AGENCY}:{SCHEME_ID}({VERSION}).{c.id}",
        )
        for c in COMPONENTS
    }
    scheme = ConceptScheme(
        id=SCHEME_ID,
        agency=AGENCY,
        version=VERSION,
        name="Concepts of the extraregional flows",
        is_final=True,
        items=list(concepts.values()),
    )
    roles = {"dimension": Role.DIMENSION, "measure": Role.MEASURE, "attribute": Role.ATTRIBUTE}
    components = Components(
        [
            Component(
                c.id,
                c.required,
                roles[c.role],
                concepts[c.id],
                local_dtype=DataType[c.dtype],
                local_codes=codelists[c.codelist] if c.codelist else None,
                attachment_level=_attachment(c.level),
            )
            for c in COMPONENTS
        ]
    )
    dsd = DataStructureDefinition(
        id=DSD_ID,
        agency=AGENCY,
        version=VERSION,
        is_final=True,
        components=components,
        name="Encounters of extraregional migrants by reporting country, nationality and period",
    )
    flow = Dataflow(
        id=FLOW_ID,
        agency=AGENCY,
        version=VERSION,
        is_final=True,
        structure=dsd.short_urn,
        name="Extraregional flows: the regional picture of the RCM",
    )
    return [*codelists.values(), scheme, dsd, flow]


def structure_xml() -> str:
    """The SDMX-ML 3.0 structure message of the dataflow, written by pysdmx."""
    from pysdmx.io.xml.sdmx30.writer.structure import write
    from pysdmx.model import Organisation
    from pysdmx.model.message import Header

    header = Header(
        id=f"{AGENCY}_{FLOW_ID}_{VERSION.replace('.', '_')}",
        prepared=RELEASED,
        sender=Organisation(id=AGENCY),
    )
    text = write(structure_artefacts(), header=header)
    assert text is not None
    return text
