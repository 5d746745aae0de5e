"""The regional picture of flows as rows, JSON and terminal tables."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from node.model.codes import corridor_sort_key
from node.report.audience import Scope
from node.report.regional import FlowCell, admitted_cells
from node.store.picture import PictureStore


@dataclass(frozen=True)
class FlowRow:
    """Encounters in a period reported by a country for one nationality, summed
    over the other published dimensions."""

    period: str
    reporting_country: str
    nationality: str | None
    nationality_region: str | None
    count: int


def flow_rows(store: PictureStore) -> list[FlowRow]:
    return [FlowRow(*row) for row in store.flow_totals()]


def picture_json(store: PictureStore) -> dict[str, Any]:
    counts = store.counts()
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "flows": [asdict(r) for r in flow_rows(store)],
        "events_applied": counts["events_applied"],
        "rejected": counts["rejected"],
        "rejected_by_reason": store.rejected_by_reason(),
    }


def _label(row: FlowRow) -> str:
    return row.nationality or f"[{row.nationality_region}]"


def render_flow_tables(console: Console, rows: list[FlowRow], last: int = 0) -> None:
    """One table per period: nationality down, reporting country across."""
    by_period: dict[str, list[FlowRow]] = defaultdict(list)
    for row in rows:
        by_period[row.period].append(row)
    periods = sorted(by_period)
    if last > 0:
        periods = periods[-last:]
    if not periods:
        console.print("[yellow]The picture is empty: nothing has been applied yet.[/]")
        return
    countries = sorted({r.reporting_country for r in rows}, key=corridor_sort_key)
    for period in periods:
        grid: dict[str, dict[str, int]] = defaultdict(dict)
        for r in by_period[period]:
            grid[_label(r)][r.reporting_country] = r.count
        table = Table(title=f"Encounters, {period}", title_justify="left")
        table.add_column("Nationality")
        for c in countries:
            table.add_column(c, justify="right")
        table.add_column("Total", justify="right", style="bold")
        ordered = sorted(grid.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        for nationality, cells in ordered:
            table.add_row(
                nationality,
                *(str(cells[c]) if c in cells else "·" for c in countries),
                str(sum(cells.values())),
            )
        totals = [sum(grid[n].get(c, 0) for n in grid) for c in countries]
        table.add_section()
        table.add_row("Total", *(str(t) for t in totals), str(sum(totals)), style="bold")
        console.print(table)
    console.print(
        "[dim]· no published cell: none reported, or every cell suppressed by the reporting "
        "country's minimum cell size.[/]"
    )


def rows_of(cells: list[FlowCell]) -> list[FlowRow]:
    """Flow rows (period × reporting country × nationality) of admitted cells."""
    totals: dict[tuple[str, str, str | None, str | None], int] = defaultdict(int)
    for c in cells:
        totals[(c.period, c.country, c.nationality, c.region)] += c.count
    return [
        FlowRow(p, country, nat, region, n)
        for (p, country, nat, region), n in sorted(
            totals.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0])
        )
    ]


def picture_json_for(store: PictureStore, scope: Scope) -> dict[str, Any]:
    """``picture_json`` made for one audience: only cells whose events admit it."""
    out = picture_json(store)
    out["flows"] = [asdict(r) for r in rows_of(admitted_cells(store, scope, "flows"))]
    out["audience"] = scope.audience
    out["purpose"] = scope.purpose_for("flows")
    return out
