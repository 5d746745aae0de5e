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
from node.report.regional import (
    FlowCell,
    admitted_cells,
    country_totals,
    coverage,
    held_cells,
    nationality_answers,
)
from node.report.tables import UNIT, Number, combine, number_of, total_label, total_short
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
    #: ``exact``, ``rounded``, ``noisy`` or ``lower-bound`` (``node.report.tables``).
    status: str = "exact"
    #: [low, high]: the 95% interval of a noisy count.
    ci95: list[int] | None = None
    #: Encounters in protected cells under a lower bound, where that is known.
    protected: int | None = None


def flow_rows(store: PictureStore) -> list[FlowRow]:
    """Every flow row of the picture (all it holds, for the Secretariat)."""
    return rows_of(held_cells(store))


def country_total_rows(cells: list[FlowCell], rows: list[FlowRow]) -> list[dict[str, Any]]:
    """Period × country: the country's total (its national total where it
    published one), the encounters its flow rows show, and, under an exact
    total, how many are in protected cells (the total minus the rows: two
    published numbers, so the difference reveals nothing)."""
    shown: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        shown[(r.period, r.reporting_country)] += r.count
    # The difference means something only when every cell under the rows is
    # exact too (a rounded or noisy row would make it rounding or noise).
    inexact = {
        (a.period, a.country)
        for a in nationality_answers(cells)
        if any(number_of(c).status != "exact" for c in a.cells)
    }
    out = []
    for (period, country), n in sorted(
        country_totals(cells).items(), key=lambda kv: (kv[0][0], corridor_sort_key(kv[0][1]))
    ):
        rows_sum = shown.get((period, country), 0)
        protected = (
            n.count - rows_sum
            if n.status == "exact" and n.count >= rows_sum and (period, country) not in inexact
            else None
        )
        out.append(
            {
                "period": period,
                "reporting_country": country,
                "count": n.count,
                **n.fields(),
                "protected": protected,
                "in_rows": rows_sum,
            }
        )
    return out


def picture_json(store: PictureStore) -> dict[str, Any]:
    counts = store.counts()
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "unit": UNIT,
        "flows": [asdict(r) for r in flow_rows(store)],
        "events_applied": counts["events_applied"],
        "rejected": counts["rejected"],
        "rejected_by_reason": store.rejected_by_reason(),
    }


def _label(row: FlowRow) -> str:
    return row.nationality or f"[{row.nationality_region}]"


def _row_number(row: FlowRow) -> Number:
    ci = (row.ci95[0], row.ci95[1]) if row.ci95 else None
    return Number(row.count, row.status, ci, row.protected)


def render_flow_tables(
    console: Console,
    rows: list[FlowRow],
    last: int = 0,
    totals: list[dict[str, Any]] | None = None,
    audience: str = "TS",
) -> None:
    """One table per period: nationality down, reporting country across; the
    bottom row is each country's total (its exact national total where it
    published one) and the encounters in its protected cells."""
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
    by_total = {(t["period"], t["reporting_country"]): t for t in totals or []}
    for period in periods:
        grid: dict[str, dict[str, Number]] = defaultdict(dict)
        for r in by_period[period]:
            grid[_label(r)][r.reporting_country] = _row_number(r)
        table = Table(title=f"Encounters, {period}", title_justify="left")
        table.add_column("Nationality")
        for c in countries:
            table.add_column(c, justify="right")
        table.add_column(total_short(audience), justify="right", style="bold")
        ordered = sorted(
            grid.items(), key=lambda kv: (-sum(n.count for n in kv[1].values()), kv[0])
        )
        for nationality, cells in ordered:
            table.add_row(
                nationality,
                *(cells[c].text() if c in cells else "·" for c in countries),
                combine(cells.values()).text(),
            )
        column: list[Number | None] = []
        for c in countries:
            t = by_total.get((period, c))
            if t is None:
                # Without the country's total, the rows' sum misses its
                # suppressed cells: at least that many.
                own = combine(n[c] for n in grid.values() if c in n)
                column.append(Number(own.count, "lower-bound") if own.count else None)
            else:
                ci = (t["ci95"][0], t["ci95"][1]) if t["ci95"] else None
                column.append(Number(t["count"], t["status"], ci))
        table.add_section()
        table.add_row(
            "Total",
            *("·" if n is None else n.text() for n in column),
            combine(n for n in column if n is not None).text(),
            style="bold",
        )
        if by_total:
            hidden = [by_total.get((period, c), {}).get("protected") for c in countries]
            table.add_row(
                "in protected cells",
                *("" if h is None else str(h) for h in hidden),
                "",
                style="dim",
            )
        console.print(table)
    console.print(
        f"[dim]Unit: {UNIT} (not persons). · no published cell: none reported, or every cell "
        "suppressed by the reporting country. ≥ lower bound (a sum of detail cells: protected "
        "cells are missing), ~ rounded, ± noisy (95% interval; ≈ noisy, no interval "
        "published); other numbers are exact.[/]"
    )


def rows_of(cells: list[FlowCell]) -> list[FlowRow]:
    """Flow rows (period × reporting country × nationality) of admitted cells,
    each from the country's most precise table (``node.report.tables``)."""
    rows = []
    for a in nationality_answers(cells):
        n = a.number
        rows.append(
            FlowRow(
                a.period,
                a.country,
                a.first.nationality,
                a.first.region,
                n.count,
                n.status,
                list(n.ci95) if n.ci95 else None,
                n.protected,
            )
        )
    rows.sort(
        key=lambda r: tuple(
            "" if v is None else v
            for v in (r.period, r.reporting_country, r.nationality, r.nationality_region)
        )
    )
    return rows


def picture_json_for(store: PictureStore, scope: Scope) -> dict[str, Any]:
    """``picture_json`` made for one audience: only cells whose events admit it."""
    out = picture_json(store)
    cells = admitted_cells(store, scope, "flows")
    rows = rows_of(cells)
    out["flows"] = [asdict(r) for r in rows]
    out["country_totals"] = country_total_rows(cells, rows)
    out["coverage"] = coverage(cells)
    out["audience"] = scope.audience
    out["purpose"] = scope.purpose_for("flows")
    out["total_label"] = total_label(scope.audience)
    return out
