"""What ``corredor demo`` prints of the Secretariat's picture once the demo
federation has run: the flow tables, coverage, alerts and the reference views.

The command line runs the demo and calls ``render_demo_picture`` with its
console; the picture is opened here and closed before it returns.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from node.report.audience import Scope
from node.report.flows import country_total_rows, render_flow_tables, rows_of
from node.report.reference import VIEWS, ViewFilter
from node.report.regional import coverage, held_cells
from node.report.views import render_coverage, render_view, view_data
from node.store.picture import PictureStore


def render_demo_picture(console: Console, store_path: Path, *, last: int) -> None:
    """Draw the demo's picture at ``store_path`` on ``console``: the last
    ``last`` weeks of flows, coverage, the Secretariat's alerts, the reference
    views."""
    with PictureStore(store_path) as store:
        cells = held_cells(store)
        flows = rows_of(cells)
        render_flow_tables(console, flows, last=last, totals=country_total_rows(cells, flows))
        render_coverage(console, coverage(held_cells(store)))
        render_view(console, "alerts", view_data("alerts", store, Scope("TS")))
        console.print(
            "[bold]Reference views[/] [dim](illustrative sample data, not official legal "
            "texts or real alerts)[/]"
        )
        for view in VIEWS.values():
            view.render(console, view.rows(store, ViewFilter()))
