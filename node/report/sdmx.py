"""Flow statistics as SDMX-CSV 2.0, for statistics offices' and IOM's SDMX tools.

One row per observation of the dataflow ``RCM:DF_EXTRAREGIONAL_FLOWS(1.0)``:

    STRUCTURE     ``dataflow``
    STRUCTURE_ID  ``RCM:DF_EXTRAREGIONAL_FLOWS(1.0)``
    ACTION        ``I`` (information: the current picture, not a change set)
    dimensions    REF_AREA (reporting country, ``_T`` for the regional total),
                  CITIZENSHIP (ISO3, or ``_Z`` with the UN M49 region in
                  CITIZENSHIP_REGION when only the region was published),
                  TIME_PERIOD (ISO 8601: 2024-W03, 2024-01, 2024-Q1)
    OBS_VALUE     the count; empty when not published
    OBS_STATUS    ``A`` normal, ``E`` estimated (rounded by the country)
    CONF_STATUS   ``F`` free for this export's audience
    AUDIENCE      attribute: the audience the file was made for

Every observation is a sum of published cells the audience is admitted to
(``node.report.regional``); a regional total (``_T``) is the sum of exactly the
country observations in the same file.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from node.report.regional import FlowCell, regional_rows

DATAFLOW = "RCM:DF_EXTRAREGIONAL_FLOWS(1.0)"
COLUMNS: tuple[str, ...] = (
    "STRUCTURE",
    "STRUCTURE_ID",
    "ACTION",
    "REF_AREA",
    "CITIZENSHIP",
    "CITIZENSHIP_REGION",
    "TIME_PERIOD",
    "OBS_VALUE",
    "OBS_STATUS",
    "CONF_STATUS",
    "AUDIENCE",
)


def _citizenship(label: str) -> tuple[str, str]:
    if label.startswith("["):
        return "_Z", label.strip("[]")
    return label, ""


def flows_sdmx_csv(cells: list[FlowCell], audience: str, totals: bool = True) -> str:
    """The SDMX-CSV 2.0 text of the cells: per country, plus regional totals."""
    countries, rows = regional_rows(cells)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        citizenship, region = _citizenship(row.nationality)
        areas = [(c, row.by_country[c]) for c in countries if c in row.by_country]
        if totals:
            areas.append(("_T", row.total))
        for area, value in areas:
            writer.writerow(
                (
                    "dataflow",
                    DATAFLOW,
                    "I",
                    area,
                    citizenship,
                    region,
                    row.period,
                    value,
                    "E" if row.estimated else "A",
                    "F",
                    audience,
                )
            )
    return buf.getvalue()


def dataflow_structure() -> dict[str, Any]:
    """The structure of ``DATAFLOW`` that every SDMX-CSV file here follows: its
    dimensions, measure and attributes with their roles, types and codes (what
    ``tests/test_picture_views.py`` gives pysdmx to write the file back)."""

    def comp(cid: str, role: str, required: bool, dtype: str, desc: str,
             level: str | None = None, codes: dict[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": cid, "role": role, "required": required,
                               "type": dtype, "description": desc}
        if level:
            out["attachment_level"] = level
        if codes:
            out["codes"] = codes
        return out

    agency, rest = DATAFLOW.split(":", 1)
    flow_id, version = rest.rstrip(")").split("(")
    return {
        "structure": "dataflow",
        "urn": DATAFLOW,
        "agency": agency,
        "id": flow_id,
        "version": version,
        "format": "SDMX-CSV 2.0",
        "columns": list(COLUMNS),
        "components": [
            comp("REF_AREA", "dimension", True, "String",
                 "reporting country (ISO 3166 alpha-3); _T: the regional total",
                 codes={"_T": "regional total"}),
            comp("CITIZENSHIP", "dimension", True, "String",
                 "nationality (ISO 3166 alpha-3); _Z: only the region was published",
                 codes={"_Z": "not applicable: see CITIZENSHIP_REGION"}),
            comp("CITIZENSHIP_REGION", "dimension", False, "String",
                 "UN M49 sub-region when CITIZENSHIP is _Z"),
            comp("TIME_PERIOD", "dimension", True, "ObservationalTimePeriod",
                 "ISO 8601 week (2024-W03), month (2024-01) or quarter (2024-Q1)"),
            comp("OBS_VALUE", "measure", False, "Integer", "encounters"),
            comp("OBS_STATUS", "attribute", True, "String", "observation status", "O",
                 {"A": "normal", "E": "estimated (rounded by the country)"}),
            comp("CONF_STATUS", "attribute", True, "String", "confidentiality status", "O",
                 {"F": "free for the file's audience"}),
            comp("AUDIENCE", "attribute", True, "String",
                 "the audience the file was made for", "D"),
        ],
    }
