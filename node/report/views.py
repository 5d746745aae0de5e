"""The picture's statistical views for one audience, as JSON, CSV rows and
terminal tables: ``trends``, ``corridors``, ``alerts`` and ``regional``.

(``flows`` is ``node.report.flows``; the reference views are
``node.report.reference``.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from node.report.audience import Scope, admits
from node.report.reference import VIEWS, ViewFilter
from node.report.regional import (
    AlertMethod,
    admitted_cells,
    alerts,
    last_periods,
    regional_rows,
    route_legs,
    routes,
    trends,
)
from node.store.picture import PictureStore

STAT_VIEWS: tuple[str, ...] = ("trends", "corridors", "alerts", "regional")
#: People a multi-country route must have in common before it is shown.
DEFAULT_ROUTE_K = 10


def admitted_view_rows(
    store: PictureStore, view: str, scope: Scope, flt: ViewFilter | None = None
) -> list[dict[str, Any]]:
    """A reference view's rows whose events admit the scope's audience and purpose."""
    uses = store.uses()
    purpose = scope.purpose_for(view)
    return [
        r
        for r in VIEWS[view].rows(store, flt or ViewFilter())
        if admits(uses.get(r["event_id"]), scope.audience, purpose, scope.now)
    ]


def view_data(
    view: str,
    store: PictureStore,
    scope: Scope,
    *,
    last: int = 0,
    k: int = DEFAULT_ROUTE_K,
    method: AlertMethod | None = None,
) -> dict[str, Any]:
    """The JSON document of a statistical view."""
    cells = admitted_cells(store, scope, view)
    head: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "view": view,
        "audience": scope.audience,
        "purpose": scope.purpose_for(view),
    }
    if view == "trends":
        return {**head, **trends(cells, last=last)}
    if view == "corridors":
        periods = last_periods(cells, last)
        return {
            **head,
            "periods": [periods[0], periods[-1]] if periods else [],
            "legs": route_legs(cells, periods),
            **routes(store, scope, k),
        }
    if view == "alerts":
        return {**head, **alerts(cells, method)}
    if view == "regional":
        window = set(last_periods(cells, last))
        countries, rows = regional_rows([c for c in cells if c.period in window])
        return {
            **head,
            "countries": countries,
            "rows": [r.as_dict(countries) for r in rows],
            "rule": "total = sum of the country counts shown; a missing count is none, "
            "suppressed by the country, or not released to this audience",
        }
    raise KeyError(view)


def view_csv_rows(view: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows of a view for CSV."""
    if view == "trends":
        return [{"table": "totals", **r} for r in data["totals"]] + [
            {"table": "top_nationalities", **r} for r in data["top_nationalities"]
        ] + [{"table": "origins", **r} for r in data["origins"]]
    if view == "corridors":
        return [{"table": "legs", **r} for r in data["legs"]] + [
            {"table": "routes", "route": ">".join(r["route"]), "count": r["people"],
             "k": data["k"]}
            for r in data["routes"]
        ]
    if view == "alerts":
        return list(data["alerts"])
    if view == "regional":
        return [
            {"period": r["period"], "nationality": r["nationality"],
             **{c: r["countries"][c] for c in data["countries"]}, "total": r["total"],
             "obs_status": r["obs_status"]}
            for r in data["rows"]
        ]
    raise KeyError(view)


#: CSV header of each statistical view, so an empty export still names its columns.
CSV_COLUMNS: dict[str, list[str]] = {
    "trends": ["table", "period", "reporting_country", "count", "previous", "change",
               "change_pct"],
    "corridors": ["table", "from", "to", "count"],
    "alerts": ["kind", "series", "period", "count", "baseline_mean", "baseline_sd", "ratio",
               "p_value", "log10_p_value"],
    "regional": ["period", "nationality"],
}


def p_text(alert: dict[str, Any]) -> str:
    """A p-value readable however small: 1e-5, or 10^-412 past the float range."""
    if alert["p_value"] > 0:
        return f"{alert['p_value']:.2g}"
    return f"10^{alert['log10_p_value']:.0f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}%"


def render_view(console: Console, view: str, data: dict[str, Any]) -> None:
    who = f"[dim]for {data['audience']}, purpose {data['purpose']}[/]"
    if view == "trends":
        table = Table(title="Encounters per week and change from the previous week",
                      title_justify="left")
        for col in ("Week", "Country", "Count", "Change", "%"):
            table.add_column(col, justify="left" if col in ("Week", "Country") else "right")
        for r in data["totals"]:
            table.add_row(r["period"], "Region" if r["reporting_country"] == "_T"
                          else r["reporting_country"], str(r["count"]),
                          "" if r["change"] is None else f"{r['change']:+d}",
                          _pct(r["change_pct"]))
        console.print(table)
        top = Table(title="Top nationalities, latest week", title_justify="left")
        for col in ("Nationality", "Count", "Change", "%"):
            top.add_column(col, justify="left" if col == "Nationality" else "right")
        for r in data["top_nationalities"]:
            top.add_row(r["nationality"], str(r["count"]),
                        "" if r["change"] is None else f"{r['change']:+d}", _pct(r["change_pct"]))
        console.print(top)
        origins = Table(title="Extracontinental (Africa, Asia) vs extraregional Caribbean "
                        "(Cuba, Haiti)", title_justify="left")
        for col in ("Week", "Extracontinental", "Caribbean", "Other"):
            origins.add_column(col, justify="left" if col == "Week" else "right")
        for r in data["origins"]:
            origins.add_row(r["period"], str(r["extracontinental"]), str(r["caribbean"]),
                            str(r["other"]))
        console.print(origins)
    elif view == "corridors":
        table = Table(title="Route legs: previous country → reporting country",
                      title_justify="left")
        for col in ("From", "To", "Count"):
            table.add_column(col, justify="right" if col == "Count" else "left")
        for r in data["legs"]:
            table.add_row(r["from"], r["to"], str(r["count"]))
        console.print(table)
        if data["records"]:
            routes_t = Table(title=f"Multi-country routes shared by at least k={data['k']} "
                             "people (linkage tokens)", title_justify="left")
            routes_t.add_column("Route")
            routes_t.add_column("People", justify="right")
            for r in data["routes"]:
                routes_t.add_row(" → ".join(r["route"]), str(r["people"]))
            console.print(routes_t)
            console.print(f"[dim]{data['people_in_hidden_routes']} people on routes shared by "
                          f"fewer than {data['k']} are not shown.[/]")
        else:
            console.print("[dim]No linked encounter records for this audience: multi-country "
                          "routes need members whose law allows linkage tokens.[/]")
    elif view == "alerts":
        m = data["method"]
        console.print(
            f"Alerts for {data['period']}: latest week vs the mean of the previous "
            f"{m['baseline_periods']}; count ≥ {m['min_count']}, ≥ {m['min_ratio']}× the mean, "
            f"Poisson P(X ≥ count) < {m['p_value']}."
        )
        table = Table(title="Alerts", title_justify="left")
        for col in ("Kind", "Series", "Count", "Baseline mean", "Ratio", "p"):
            table.add_column(col, justify="left" if col in ("Kind", "Series") else "right")
        for a in data["alerts"]:
            table.add_row(a["kind"], a["series"], str(a["count"]), str(a["baseline_mean"]),
                          f"{a['ratio']}×", p_text(a))
        console.print(table if data["alerts"] else "[green]No alerts.[/]")
    elif view == "regional":
        countries = data["countries"]
        periods = sorted({r["period"] for r in data["rows"]})
        for period in periods:
            table = Table(title=f"Regional totals, {period}", title_justify="left")
            table.add_column("Nationality")
            for c in countries:
                table.add_column(c, justify="right")
            table.add_column("Region", justify="right", style="bold")
            for r in data["rows"]:
                if r["period"] == period:
                    table.add_row(r["nationality"],
                                  *(("·" if r["countries"][c] is None
                                     else str(r["countries"][c])) for c in countries),
                                  str(r["total"]))
            console.print(table)
        console.print("[dim]· no published count: none, suppressed by the reporting country, "
                      "or not released to this audience. Totals add the counts shown.[/]")
    console.print(who)
