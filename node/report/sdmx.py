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
