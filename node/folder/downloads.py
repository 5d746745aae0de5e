"""The folder's downloadable files, by name: each a media type and a function
of the picture, the caller's export scope and a flow filter (docs/folder.md).
The same functions as the exports of ``corredor report``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from node.folder import data
from node.report.audience import Scope as ExportScope
from node.report.flows import FlowRow
from node.report.html import report_html
from node.report.reference import rows_csv
from node.report.regional import admitted_cells
from node.report.sdmx import NothingReleased, dataflow_structure, flows_sdmx_csv
from node.report.sdmx_observations import admitted_withdrawn
from node.report.sdmx_structure import structure_xml


def _flows_csv(store: Any, scope: ExportScope, flt: data.FlowFilter) -> str:
    from dataclasses import fields

    doc = data.flows_json(store, scope, flt)
    rows = [{**r, "unit": doc["unit"]} for r in doc["flows"]]
    return rows_csv(rows, [x.name for x in fields(FlowRow)] + ["unit"])


def _flows_json(store: Any, scope: ExportScope, flt: data.FlowFilter) -> str:
    return json.dumps(data.flows_json(store, scope, flt), indent=2, default=str) + "\n"


def _sdmx(totals: bool) -> Callable[[Any, ExportScope, data.FlowFilter], str]:
    def make(store: Any, scope: ExportScope, flt: data.FlowFilter) -> str:
        view = "regional" if totals else "flows"
        cells = flt.cells(admitted_cells(store, scope, view))
        withdrawn = flt.cells(admitted_withdrawn(store, scope, view))
        if not cells and not withdrawn:
            # A file with a header only would read as a region with no encounters.
            raise NothingReleased(
                f"no flow statistics released to audience {scope.audience!r} match this "
                "selection: no SDMX file made"
            )
        return flows_sdmx_csv(cells, scope.audience, totals=totals, withdrawn=withdrawn)

    return make


DOWNLOADS: dict[str, tuple[str, Callable[[Any, ExportScope, data.FlowFilter], str]]] = {
    "flows.csv": ("text/csv; charset=utf-8", _flows_csv),
    "flows.json": ("application/json", _flows_json),
    "flows.sdmx.csv": ("text/csv; charset=utf-8", _sdmx(False)),
    "regional.sdmx.csv": ("text/csv; charset=utf-8", _sdmx(True)),
    "sdmx-structure.json": (
        "application/json",
        lambda store, scope, flt: json.dumps(dataflow_structure(), indent=2) + "\n",
    ),
    "sdmx-structure.xml": (
        "application/xml; charset=utf-8",
        lambda store, scope, flt: structure_xml(),
    ),
    "report.html": (
        "text/html; charset=utf-8",
        lambda store, scope, flt: report_html(store, scope),
    ),
}
