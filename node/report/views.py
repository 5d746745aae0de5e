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

from node.report.alerts import AlertMethod, alerts
from node.report.audience import Scope, admits
from node.report.corridors import leg_people, route_legs, routes
from node.report.reference import VIEWS, ViewFilter
from node.report.regional import admitted_cells, coverage, last_periods, regional_rows
from node.report.tables import UNIT, Number, total_label, total_short
from node.report.trends import trends
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
        "unit": UNIT,
        "total_label": total_label(scope.audience),
    }
    if view == "trends":
        return {**head, **trends(cells, last=last), "coverage": coverage(cells)}
    if view == "corridors":
        periods = last_periods(cells, last)
        legs = route_legs(cells, periods)
        people = leg_people(store, scope, k, periods)
        if people:
            for leg in legs:
                leg["people"] = people.get((leg["from"], leg["to"]))
        return {
            **head,
            "periods": [periods[0], periods[-1]] if periods else [],
            "legs": legs,
            **routes(store, scope, k),
            "coverage": coverage(cells),
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
            "coverage": coverage(cells),
            "rule": "total = sum of the country counts shown; a missing count is none, "
            "suppressed by the country, or not released to this audience",
        }
    raise KeyError(view)


def view_csv_rows(view: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows of a view for CSV."""
    unit = {"unit": data.get("unit", UNIT)}
    if view == "trends":
        return (
            [{"table": "totals", **r, **unit} for r in data["totals"]]
            + [{"table": "top_nationalities", **r, **unit} for r in data["top_nationalities"]]
            + [{"table": "origins", **r, **unit} for r in data["origins"]]
        )
    if view == "corridors":
        return [{"table": "legs", **r, **unit} for r in data["legs"]] + [
            {
                "table": "routes",
                "route": ">".join(r["route"]),
                "count": r["people"],
                "k": data["k"],
                "unit": "people",
            }
            for r in data["routes"]
        ]
    if view == "alerts":
        return [{**a, **unit} for a in data["alerts"]]
    if view == "regional":
        return [
            {
                "period": r["period"],
                "nationality": r["nationality"],
                **{c: r["countries"][c] for c in data["countries"]},
                "total": r["total"],
                "obs_status": r["obs_status"],
                "status": r["status"],
                "ci95": r["ci95"],
                "protected": r["protected"],
                "total_countries": r["total_countries"],
                **{f"status_{c}": (r["numbers"][c] or {}).get("status") for c in data["countries"]},
                **unit,
            }
            for r in data["rows"]
        ]
    raise KeyError(view)


#: CSV header of each statistical view, so an empty export still names its columns.
CSV_COLUMNS: dict[str, list[str]] = {
    "trends": ["table", "period", "reporting_country", "count", "previous", "change", "change_pct"],
    "corridors": ["table", "from", "to", "count"],
    "alerts": [
        "kind",
        "series",
        "period",
        "count",
        "baseline_mean",
        "baseline_sd",
        "ratio",
        "p_value",
        "log10_p_value",
    ],
    "regional": ["period", "nationality"],
}


def p_text(alert: dict[str, Any]) -> str:
    """A p-value readable however small: 1e-5, or 10^-412 past the float range."""
    if alert["p_value"] > 0:
        return f"{alert['p_value']:.2g}"
    return f"10^{alert['log10_p_value']:.0f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}%"


def _num(row: dict[str, Any], key: str = "count") -> str:
    """A row's number with its status mark (``Number.text``)."""
    ci = row.get("ci95")
    return Number(row[key], row.get("status", "exact"), (ci[0], ci[1]) if ci else None).text()


def render_coverage(console: Console, rows: list[dict[str, Any]]) -> None:
    """Per country and view: the share of its encounters shown as exact numbers."""
    if not rows:
        return
    table = Table(
        title="Coverage: share of each country's encounters in exact numbers", title_justify="left"
    )
    table.add_column("Country")
    table.add_column("Encounters", justify="right")
    views = list(rows[0]["views"])
    for v in views:
        table.add_column(v, justify="right")
    for r in rows:
        enc = Number(r["encounters"], r["encounters_status"]).text()
        table.add_row(
            r["country"],
            enc,
            *(
                "" if r["views"][v]["share"] is None else f"{100 * r['views'][v]['share']:.1f}%"
                for v in views
            ),
        )
    console.print(table)


STATUS_NOTE = (
    "[dim]Unit: encounters (not persons). ≥ lower bound (a sum of detail cells: protected "
    "cells are missing), ~ rounded, ± noisy (95% interval; ≈ noisy, no interval "
    "published); other numbers are exact.[/]"
)


def render_view(console: Console, view: str, data: dict[str, Any]) -> None:
    who = f"[dim]for {data['audience']}, purpose {data['purpose']}[/]"
    region = total_short(data["audience"])
    if view == "trends":
        table = Table(
            title="Encounters per week and change from the previous week", title_justify="left"
        )
        for col in ("Week", "Country", "Count", "Change", "%"):
            table.add_column(col, justify="left" if col in ("Week", "Country") else "right")
        for r in data["totals"]:
            table.add_row(
                r["period"],
                region if r["reporting_country"] == "_T" else r["reporting_country"],
                _num(r),
                "" if r["change"] is None else f"{r['change']:+d}",
                _pct(r["change_pct"]),
            )
        console.print(table)
        top = Table(title="Top nationalities, latest week", title_justify="left")
        for col in ("Nationality", "Count", "Change", "%"):
            top.add_column(col, justify="left" if col == "Nationality" else "right")
        for r in data["top_nationalities"]:
            top.add_row(
                r["nationality"],
                _num(r),
                "" if r["change"] is None else f"{r['change']:+d}",
                _pct(r["change_pct"]),
            )
        console.print(top)
        origins = Table(
            title="Extracontinental (Africa, Asia) vs extraregional Caribbean (Cuba, Haiti)",
            title_justify="left",
        )
        for col in ("Week", "Extracontinental", "Caribbean", "Other"):
            origins.add_column(col, justify="left" if col == "Week" else "right")
        for r in data["origins"]:
            origins.add_row(
                r["period"],
                *(
                    Number(r[g], r.get(f"{g}_status", "exact")).text()
                    for g in ("extracontinental", "caribbean", "other")
                ),
            )
        console.print(origins)
    elif view == "corridors":
        table = Table(
            title="Route legs: previous country → reporting country", title_justify="left"
        )
        linked = any("people" in r for r in data["legs"])
        for col in ("From", "To", "Encounters") + (("People",) if linked else ()):
            table.add_column(col, justify="left" if col in ("From", "To") else "right")
        for r in data["legs"]:
            people = (
                ()
                if not linked
                else (f"<{data['k']}" if r.get("people") is None else str(r["people"]),)
            )
            table.add_row(r["from"], r["to"], _num(r), *people)
        console.print(table)
        if linked:
            console.print(
                f"[dim]People: distinct linked persons (linkage tokens) on the leg; "
                f"fewer than k={data['k']} are not shown.[/]"
            )
        if data["records"]:
            routes_t = Table(
                title=f"Multi-country routes shared by at least k={data['k']} "
                "people (linkage tokens)",
                title_justify="left",
            )
            routes_t.add_column("Route")
            routes_t.add_column("People", justify="right")
            for r in data["routes"]:
                routes_t.add_row(" → ".join(r["route"]), str(r["people"]))
            console.print(routes_t)
            console.print(
                f"[dim]{data['people_in_hidden_routes']} people on routes shared by "
                f"fewer than {data['k']} are not shown.[/]"
            )
        else:
            console.print(
                "[dim]No linked encounter records for this audience: multi-country "
                "routes need members whose law allows linkage tokens.[/]"
            )
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
            table.add_row(
                a["kind"],
                a["series"],
                str(a["count"]),
                str(a["baseline_mean"]),
                f"{a['ratio']}×",
                p_text(a),
            )
        console.print(table if data["alerts"] else "[green]No alerts.[/]")
    elif view == "regional":
        countries = data["countries"]
        periods = sorted({r["period"] for r in data["rows"]})
        for period in periods:
            table = Table(title=f"Regional totals, {period}", title_justify="left")
            table.add_column("Nationality")
            for c in countries:
                table.add_column(c, justify="right")
            table.add_column(region, justify="right", style="bold")
            for r in data["rows"]:
                if r["period"] == period:
                    table.add_row(
                        r["nationality"],
                        *(
                            ("·" if r["numbers"][c] is None else _num(r["numbers"][c]))
                            for c in countries
                        ),
                        _num(r, "total"),
                    )
            console.print(table)
        console.print(
            "[dim]· no published count: none, suppressed by the reporting country, "
            "or not released to this audience. Totals add the counts shown.[/]"
        )
    if view in ("trends", "corridors", "regional"):
        render_coverage(console, data.get("coverage", []))
        console.print(STATUS_NOTE)
    console.print(who)
