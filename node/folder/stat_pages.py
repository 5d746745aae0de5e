"""The folder's statistical pages: sign-in, overview, flows, trends,
corridors and alerts, each chart beside the table it draws."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlencode

from node.folder.chart_specs import country_spec, nationality_spec, trends_spec
from node.folder.data import FlowFilter, FlowPage
from node.folder.layout import e, message, table, vl_chart
from node.report.regional import country_totals, weekly
from node.report.svg import bar_chart, corridor_diagram, country_statuses, line_chart
from node.report.tables import Number, total_short
from node.report.views import p_text


def signin_page(csrf: str, error: str | None, public: bool) -> str:
    err = f"<p class='error' id='error'>{e(error)}</p>" if error else ""
    pub = "<p><a href='/'>Continue as a public visitor</a></p>" if public else ""
    return (
        f"{err}<form method='post' action='/signin' id='signin'>"
        f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
        "<label>User <input name='username' autocomplete='username' required "
        "maxlength='64'></label>"
        "<label>Password <input name='password' type='password' "
        "autocomplete='current-password' required maxlength='1024'></label>"
        f"<button type='submit'>Sign in</button></form>{pub}"
    )


def overview(audience: str, counts: dict[str, int], cells: int) -> str:
    return (
        f"<p>You see the regional picture as released to <b>{e(audience)}</b>: only what "
        "the reporting countries released to this audience, for the view's purpose, past "
        "any embargo and within its retention period.</p>"
        + table(
            ["", ""],
            [
                ["Flow cells you may see", f"{cells:,}"],
                ["Events applied by the Secretariat", f"{counts['events_applied']:,}"],
            ],
            tid="overview",
        )
    )


def _period_options(periods: list[str], chosen: str | None) -> str:
    opts = ["<option value=''>any</option>"]
    for p in periods:
        sel = " selected" if p == chosen else ""
        opts.append(f"<option value='{e(p)}'{sel}>{e(p)}</option>")
    return "".join(opts)


def flows_page(
    page: FlowPage, flt: FlowFilter, all_periods: list[str], all_countries: list[str]
) -> str:
    country_opts = "<option value=''>all</option>" + "".join(
        f"<option value='{e(c)}'{' selected' if c == flt.country else ''}>{e(c)}</option>"
        for c in all_countries
    )
    form = (
        "<form method='get' action='/flows' id='filters' class='filters'>"
        f"<label>From <select name='from'>{_period_options(all_periods, flt.period_from)}"
        "</select></label>"
        f"<label>To <select name='to'>{_period_options(all_periods, flt.period_to)}"
        "</select></label>"
        f"<label>Reporting country <select name='country'>{country_opts}</select></label>"
        f"<label>Nationality <input name='nationality' maxlength='3' size='4' "
        f"value='{e(flt.nationality or '')}'></label>"
        f"<label>Region <input name='region' maxlength='60' "
        f"value='{e(flt.region or '')}'></label>"
        "<button type='submit'>Filter</button></form>"
    )
    totals: Counter[str] = Counter()
    for (_, country), n in country_totals(page.cells).items():
        totals[country] += n.count
    query = urlencode(flt.as_query())
    dl = (
        f"<p class='downloads'>This selection: <a href='/download/flows.csv?{e(query)}'>CSV"
        f"</a> · <a href='/download/flows.json?{e(query)}'>JSON</a></p>"
    )
    if not page.rows:
        return form + message("No flows released to this audience match the filters.")
    statuses = country_statuses(page.cells)
    charts = "<h2>By reporting country</h2>" + vl_chart(
        "chart-by-country",
        country_spec(dict(totals), statuses),
        bar_chart(dict(totals), statuses=statuses),
    )
    if weekly(page.cells):
        charts += (
            "<h2>Weekly, by nationality</h2><p class='note'>Click a nationality in the "
            "legend to pick it out; hover a point for its numbers.</p>"
            + vl_chart("chart-by-nationality", nationality_spec(page.cells), line_chart(page.cells))
        )
    rows = [
        [
            r.period,
            r.reporting_country,
            r.nationality or "",
            r.nationality_region or "",
            f"{r.count:,}",
            status,
            _text(r.count, r.status, r.ci95) + f" ({r.status})",
        ]
        for r, status in page.rows
    ]
    return (
        form
        + dl
        + charts
        + f"<h2>Table</h2><p class='note'>{len(rows):,} rows, {sum(totals.values()):,} "
        "encounters (the unit: not persons). Status A: as published; E: estimated (rounded "
        "by the country); N: noisy (± its 95% interval); then the number's status: exact, "
        "rounded, noisy, or lower-bound (≥: a sum of detail cells, protected cells missing). "
        "A combination not shown was not published: none, suppressed by the country, or not "
        "released to this audience.</p>"
        + table(
            ["Period", "Reporting country", "Nationality", "Region", "Count", "Status", "Number"],
            rows[:5000],
            "num",
            "flows-table",
        )
    )


def _text(count: int, status: str, ci95: list[int] | None) -> str:
    """A number with its status mark: ≥ lower bound, ~ rounded, ± noisy."""
    n = Number(count, status, (ci95[0], ci95[1]) if ci95 else None)
    return n.text() if status != "exact" else f"{count:,}"


def trends_page(data: dict[str, Any], cells_chart: str) -> str:
    audience = data.get("audience", "TS")
    tot = [
        [
            r["period"],
            total_short(audience) if r["reporting_country"] == "_T" else r["reporting_country"],
            f"{r['count']:,}",
            "" if r["change"] is None else f"{r['change']:+,}",
            "" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%",
            _text(r["count"], r.get("status", "exact"), r.get("ci95"))
            + f" ({r.get('status', 'exact')})",
        ]
        for r in data["totals"]
    ]
    top = [
        [
            r["nationality"],
            f"{r['count']:,}",
            "" if r["change"] is None else f"{r['change']:+,}",
            r.get("status", "exact"),
        ]
        for r in data["top_nationalities"]
    ]
    org = [
        [
            r["period"],
            *(
                Number(r[g], r.get(f"{g}_status", "exact")).text()
                for g in ("extracontinental", "caribbean", "other")
            ),
        ]
        for r in data["origins"]
    ]
    return (
        "<h2>Weekly totals, the region and each country</h2><p class='note'>Click a line's "
        "name in the legend to pick it out; hover a point for the week's count and change.</p>"
        + vl_chart("chart-trends", trends_spec(data["totals"]), cells_chart)
        + "<h2>Weekly totals and change</h2>"
        + table(["Week", "Country", "Count", "Change", "%", "Status"], tot, "num", "trends-table")
        + "<h2>Top nationalities, latest week</h2>"
        + table(["Nationality", "Count", "Change", "Status"], top, "num")
        + "<h2>Africa and Asia vs Cuba and Haiti</h2>"
        + table(["Week", "Extracontinental", "Caribbean", "Other"], org, "num")
    )


def corridors_page(data: dict[str, Any]) -> str:
    legs = [[g["from"], g["to"], f"{g['count']:,}", g.get("status", "exact")] for g in data["legs"]]
    routes = [[" → ".join(r["route"]), r["people"]] for r in data["routes"]]
    return (
        corridor_diagram(data["legs"])
        + "<h2>Route legs</h2>"
        + table(["From", "To", "Count", "Status"], legs, "num", "legs")
        + f"<h2>Multi-country routes (k ≥ {e(data['k'])})</h2>"
        + (
            table(["Route", "People"], routes, "num")
            if routes
            else message("No route shared by enough people for this audience.")
        )
    )


def alerts_page(data: dict[str, Any]) -> str:
    m = data["method"]
    rows = [
        [
            a["kind"],
            a["series"],
            a["period"],
            f"{a['count']:,}",
            a["baseline_mean"],
            f"{a['ratio']}×",
            p_text(a),
        ]
        for a in data["alerts"]
    ]
    return message(
        f"Latest week against the mean of the previous {m['baseline_periods']}; an "
        f"alert needs at least {m['min_count']}, {m['min_ratio']}× the mean and a "
        f"Poisson upper tail below {m['p_value']}."
    ) + (
        table(
            ["Kind", "Series", "Week", "Count", "Baseline mean", "Ratio", "p"],
            rows,
            "num",
            "alerts",
        )
        if rows
        else "<p id='alerts'>No alerts.</p>"
    )
