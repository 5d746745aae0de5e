"""Flow statistics as SDMX-CSV 2.0, for statistics offices' and IOM's SDMX tools,
with the structure (dataflow, data structure definition, code lists) the files
follow, as an SDMX-ML 3.0 structure message (``node.report.sdmx_structure``).

One row per observation of the dataflow ``RCM:DF_EXTRAREGIONAL_FLOWS(1.0.0)``:

    STRUCTURE     ``dataflow``
    STRUCTURE_ID  ``RCM:DF_EXTRAREGIONAL_FLOWS(1.0.0)``
    ACTION        ``I`` (information: the current picture), ``D`` (delete: a
                  cell the country withdrew, the key only)
    dimensions    REF_AREA (reporting country; ``_T``: the total of the
                  countries releasing to this audience, named in COUNTRIES),
                  CITIZENSHIP (ISO3; ``_T`` a country's total over every
                  nationality; ``_U`` unknown; ``_Z`` when only the region was
                  published), CITIZENSHIP_REGION (UN M49 sub-region code when
                  CITIZENSHIP is ``_Z``, else ``_Z``: never an empty cell),
                  TIME_PERIOD (ISO 8601: 2024-W03, 2024-01, 2024-Q1)
    OBS_VALUE     the count of encounters (UNIT_MEASURE ``ENC``)
    OBS_STATUS    ``A`` normal, ``E`` estimated (rounded, noisy, or a lower
                  bound), ``Q`` missing value: suppressed
    CONF_STATUS   ``F`` free; ``A`` primary, ``D`` secondary, ``C`` confidential
                  (a protected cell, shown only to audiences that may know the
                  cell exists: the Secretariat and the members)
    VALUE_STATUS  the picture's status: exact, lower-bound, rounded, noisy, suppressed
    PROTECTED     encounters in protected cells below the observation (a lower
                  bound's missing part; a country total's encounters in no
                  published nationality cell), where safe; TS and members only
    CI95_LOWER, CI95_UPPER  the 95% interval of a noisy number
    COUNTRIES     on a ``_T`` observation: the countries it sums
    UNIT_MEASURE, AUDIENCE  dataset attributes

Every value is a sum of published cells the audience is admitted to
(``node.report.regional``); a regional total (``_T``) is the sum of exactly the
country observations with a value in the same file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from node.errors import CorredorError
from node.model.codes import corridor_sort_key
from node.report.regional import FlowCell
from node.report.sdmx_observations import Observation, knows_cells_exist, observations, withdrawals
from node.report.sdmx_structure import AGENCY, COMPONENTS, FLOW_ID, M49_REGION_CODES, UNIT, VERSION

DATAFLOW = f"{AGENCY}:{FLOW_ID}({VERSION})"
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
    "VALUE_STATUS",
    "PROTECTED",
    "CI95_LOWER",
    "CI95_UPPER",
    "COUNTRIES",
    "UNIT_MEASURE",
    "AUDIENCE",
)

#: status -> SDMX OBS_STATUS (CL_OBS_STATUS): a rounded count, a noisy one and a
#: lower bound are all estimates of the true count (``E``); which kind, and how
#: far off it may be, is in VALUE_STATUS, CI95_* and PROTECTED. ``U`` (low
#: reliability) would misstate a noisy count whose interval is narrow.
OBS_STATUS: dict[str, str] = {
    "exact": "A",
    "rounded": "E",
    "noisy": "E",
    "lower-bound": "E",
    "suppressed": "Q",
}
#: Why a protected cell is hidden -> SDMX CONF_STATUS (CL_CONF_STATUS).
CONF_REASONS: dict[str, str] = {"primary": "A", "secondary": "D", "confidential": "C"}


class NothingReleased(CorredorError):
    """An SDMX export for an audience no flow cell was released to."""


def _citizenship(label: str) -> tuple[str, str]:

    if label.startswith("["):
        name = label.strip("[]")
        return "_Z", M49_REGION_CODES.get(name, "_X")
    return label, "_Z"


def _order(o: Observation) -> tuple[Any, ...]:
    return (o.period, o.citizenship, o.area == "_T", corridor_sort_key(o.area), o.action)


def sdmx_csv(obs: Iterable[Observation], audience: str) -> str:
    """The SDMX-CSV 2.0 text of the observations for ``audience``: protected
    (suppressed) cells are flagged only for audiences that may know a cell
    exists (``knows_cells_exist``), and dropped for every other."""
    knows = knows_cells_exist(audience)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for o in sorted(obs, key=_order):
        citizenship, region = _citizenship(o.citizenship)
        lead = ("dataflow", DATAFLOW, o.action, o.area, citizenship, region, o.period)
        if o.action == "D":
            writer.writerow((*lead, *[""] * 8, UNIT, audience))
            continue
        if o.status == "suppressed" or o.value is None:
            if not knows:
                continue
            writer.writerow(
                (
                    *lead,
                    "",
                    "Q",
                    CONF_REASONS.get(o.conf, "C"),
                    "suppressed",
                    "",
                    "",
                    "",
                    "",
                    UNIT,
                    audience,
                )
            )
            continue
        writer.writerow(
            (
                *lead,
                o.value,
                OBS_STATUS[o.status],
                "F",
                o.status,
                o.protected if (o.protected and knows) else "",
                o.ci95[0] if o.ci95 else "",
                o.ci95[1] if o.ci95 else "",
                " ".join(o.countries),
                UNIT,
                audience,
            )
        )
    return buf.getvalue()


def flows_sdmx_csv(
    cells: list[FlowCell],
    audience: str,
    totals: bool = True,
    withdrawn: Sequence[FlowCell] = (),
) -> str:
    """The SDMX-CSV 2.0 text of the cells: per country, plus regional totals,
    plus a ``D`` row for each withdrawn cell's key no current cell carries."""
    obs = observations(cells, totals, knows=knows_cells_exist(audience))
    return sdmx_csv([*obs, *withdrawals(withdrawn, obs)], audience)


def require_released(
    cells: Sequence[FlowCell], withdrawn: Sequence[FlowCell], audience: str, purpose: str
) -> None:
    """Refuse an SDMX export with nothing in it, rather than write a file with a
    header only that a reader would take for a region with no encounters."""
    if not cells and not withdrawn:
        raise NothingReleased(
            f"no flow statistics were released to audience {audience!r} for purpose "
            f"{purpose!r}: no SDMX file written (the countries' envelopes name other "
            "audiences, or nothing was published yet)"
        )


def dataflow_structure() -> dict[str, Any]:
    """A JSON summary of the structure of ``DATAFLOW`` (the SDMX-ML 3.0
    structure message itself: ``node.report.sdmx_structure.structure_xml``)."""

    return {
        "structure": "dataflow",
        "urn": DATAFLOW,
        "agency": AGENCY,
        "id": FLOW_ID,
        "version": VERSION,
        "format": "SDMX-CSV 2.0",
        "structure_message": "SDMX-ML 3.0: corredor report regional --format sdmx-structure",
        "columns": list(COLUMNS),
        "unit": "encounters",
        "components": [
            {
                "id": c.id,
                "role": c.role,
                "required": c.required,
                "type": c.dtype,
                "description": c.description,
                **({"attachment_level": c.level} if c.level else {}),
                **({"codelist": c.codelist} if c.codelist else {}),
            }
            for c in COMPONENTS
        ],
    }
