"""``corredor report``'s choices turned into output, in one place: which view,
in which format, read from which picture.

The command line parses its options, brings a member's picture up to date,
calls ``render`` and prints what it returns; a table is drawn on the console it
passes, every other format comes back as text. The stored picture is opened
here, read-only in effect, and closed before ``render`` returns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from node.report.audience import Scope
from node.report.reference import ViewFilter

if TYPE_CHECKING:
    from node.store.picture import PictureStore

REPORT_VIEWS: tuple[str, ...] = (
    "flows",
    "trends",
    "corridors",
    "alerts",
    "regional",
    "legislation",
    "consulates",
    "health",
    "focal-points",
)
REPORT_FORMATS: tuple[str, ...] = ("table", "json", "csv", "sdmx", "sdmx-structure", "html")


class ViewFormatMismatch(ValueError):
    """A format asked of a view that has none in it (SDMX of a reference view)."""


@dataclass(frozen=True)
class ReportOptions:
    """What narrows or sizes a view: ``last`` periods (0: all; html: 12),
    ``k`` people a shared route needs, and the reference views' filter."""

    last: int = 0
    k: int = 10
    narrow: ViewFilter = field(default_factory=ViewFilter)


def needs_picture(fmt: str) -> bool:
    """Whether ``fmt`` reads a picture (and so a home and an audience): the
    SDMX structure is the same for every audience and picture."""
    return fmt != "sdmx-structure"


def render(
    picture: Path | None,
    view: str,
    fmt: str,
    scope: Scope | None,
    options: ReportOptions,
    console: Console,
) -> str | None:
    """``view`` of the picture stored at ``picture`` for ``scope``, in ``fmt``.

    Returns the text of a file format (json, csv, sdmx, sdmx-structure, html);
    a table is printed on ``console`` and None returned. ``picture`` and
    ``scope`` may be None only when ``needs_picture(fmt)`` is false.
    Raises ViewFormatMismatch for SDMX of a view other than flows or regional.
    """
    from node.report.sdmx_structure import structure_xml
    from node.store.picture import PictureStore

    if not needs_picture(fmt):
        return structure_xml()
    if picture is None or scope is None:
        raise ValueError(f"--format {fmt} reads a picture for an audience")
    with PictureStore(picture) as store:
        return _render_from(store, view, fmt, scope, options, console)


def _render_from(
    store: PictureStore,
    view: str,
    fmt: str,
    scope: Scope,
    options: ReportOptions,
    console: Console,
) -> str | None:
    from node.report.flows import (
        FlowRow,
        country_total_rows,
        picture_json_for,
        render_flow_tables,
        rows_of,
    )
    from node.report.html import report_html
    from node.report.reference import VIEWS, rows_csv
    from node.report.regional import admitted_cells, coverage
    from node.report.sdmx import flows_sdmx_csv, require_released
    from node.report.sdmx_observations import admitted_withdrawn
    from node.report.tables import UNIT
    from node.report.views import (
        CSV_COLUMNS,
        STAT_VIEWS,
        admitted_view_rows,
        render_coverage,
        render_view,
        view_csv_rows,
        view_data,
    )

    last, k = options.last, options.k
    if fmt == "html":
        return report_html(store, scope, last=last or 12, k=k)
    if fmt == "sdmx":
        if view not in ("flows", "regional"):
            raise ViewFormatMismatch("--format sdmx is for the flows and regional views")
        cells = admitted_cells(store, scope, view)
        withdrawn = admitted_withdrawn(store, scope, view)
        require_released(cells, withdrawn, scope.audience, scope.purpose_for(view))
        return flows_sdmx_csv(cells, scope.audience, totals=view == "regional", withdrawn=withdrawn)
    if view == "flows":
        if fmt == "json":
            return json.dumps(picture_json_for(store, scope), indent=2) + "\n"
        if fmt == "csv":
            columns = [f.name for f in fields(FlowRow)] + ["unit"]
            flows = rows_of(admitted_cells(store, scope, "flows"))
            return rows_csv([{**asdict(r), "unit": UNIT} for r in flows], columns)
        cells = admitted_cells(store, scope, "flows")
        flows = rows_of(cells)
        render_flow_tables(
            console,
            flows,
            last=last,
            totals=country_total_rows(cells, flows),
            audience=scope.audience,
        )
        render_coverage(console, coverage(cells))
        return None
    if view in STAT_VIEWS:
        data = view_data(view, store, scope, last=last, k=k)
        if fmt == "json":
            return json.dumps(data, indent=2, default=str) + "\n"
        if fmt == "csv":
            return rows_csv(view_csv_rows(view, data), CSV_COLUMNS[view])
        render_view(console, view, data)
        return None
    rows = admitted_view_rows(store, view, scope, options.narrow)
    if fmt == "json":
        doc = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "view": view,
            "kind": VIEWS[view].kind,
            "audience": scope.audience,
            "purpose": scope.purpose_for(view),
            "rows": rows,
        }
        return json.dumps(doc, indent=2, default=str) + "\n"
    if fmt == "csv":
        return rows_csv(rows)
    VIEWS[view].render(console, rows)
    return None
