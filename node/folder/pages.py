"""HTML of the folder's pages. Every value is escaped; no page carries a script
or an inline style (the CSP forbids both); charts are the SVG of the HTML
report (``node.report.html``), drawn on the server from the same admitted
cells as the tables beside them, with a tooltip (``<title>``) per mark."""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from node.folder.data import FlowFilter, FlowPage
from node.model.codes import COUNTRY_NAMES, corridor_sort_key
from node.report.charts import (
    REGION_COLOUR,
    STATUSES,
    cell_status,
    combined_status,
    country_colour,
    nationality_colour,
)
from node.report.html import bar_chart, corridor_diagram, country_statuses, line_chart
from node.report.reference import LEGISLATION_TOPICS, legislation_cell
from node.report.regional import country_totals, nationality_answers, weekly
from node.report.tables import Number, total_short
from node.report.views import p_text


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _ts(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


NAV: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/flows", "Flows"),
    ("/trends", "Trends"),
    ("/corridors", "Corridors"),
    ("/alerts", "Alerts"),
    ("/countries", "Countries"),
    ("/reference/legislation", "Legislation"),
    ("/reference/consulates", "Consulates"),
    ("/reference/health", "Health"),
    ("/reference/focal-points", "Focal points"),
    ("/intelligence", "Intelligence"),
    ("/downloads", "Downloads"),
)


#: The vendored chart library (deploy/vendor_charts.py) and the folder's own
#: script that draws each ``.vl-chart``; only pages with charts load them.
CHART_SCRIPTS = "".join(
    f"<script src='/static/{name}'></script>"
    for name in (
        "vendor/vega.min.js",
        "vendor/vega-lite.min.js",
        "vendor/vega-embed.min.js",
        "vendor/vega-interpreter.js",
        "folder.js",
    )
)


def vl_chart(chart_id: str, spec: dict[str, Any], fallback: str = "") -> str:
    """A Vega-Lite chart: its spec in a JSON block (not executed; '<' escaped
    so no value can close the block), drawn by folder.js; ``fallback`` (the
    server-drawn SVG) for browsers without scripts."""
    text = json.dumps(spec, separators=(",", ":")).replace("<", "\\u003c")
    return (
        f"<script type='application/json' id='{e(chart_id)}-spec'>{text}</script>"
        f"<div class='vl-chart' id='{e(chart_id)}' data-spec='{e(chart_id)}-spec'></div>"
        + (f"<noscript>{fallback}</noscript>" if fallback else "")
    )


def layout(
    title: str, body: str, *, user: str | None, audience: str | None, csrf: str | None
) -> str:
    links = [*NAV]
    if audience is not None and audience not in ("TS", "public") and len(audience) == 3:
        links.append((f"/received/{audience}", "Received from us"))
    if audience == "TS":
        links.append(("/access-log", "Access log"))
    nav = (
        "".join(f'<a href="{e(href)}">{e(label)}</a>' for href, label in links)
        if audience is not None
        else ""
    )
    if user is not None and csrf is not None:
        who = (
            f'<span id="who">{e(user)} · <b id="audience">{e(audience)}</b></span>'
            f'<form method="post" action="/signout" class="inline">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<button type="submit" id="signout">Sign out</button></form>'
        )
    elif audience == "public":
        who = (
            '<span id="who">public visitor · <b id="audience">public</b></span>'
            '<a href="/signin" id="signin-link">Sign in</a>'
        )
    else:
        who = ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)} · Corredor</title>"
        "<link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='/static/folder.css'></head><body>"
        f"<header><b>Corredor</b> · the RCM online folder <nav>{nav}</nav>"
        f"<div class='who'>{who}</div></header>"
        f"<main><h1>{e(title)}</h1>{body}</main>"
        + (CHART_SCRIPTS if "class='vl-chart'" in body else "")
        + "</body></html>"
    )


def table(head: list[str], rows: list[list[Any]], cls: str = "", tid: str = "") -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows)
    ident = f' id="{e(tid)}"' if tid else ""
    return (
        f'<table class="{e(cls)}"{ident}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'
    )


def message(text: str, cls: str = "note") -> str:
    return f"<p class='{e(cls)}'>{e(text)}</p>"


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
            ["Period", "Reporting country", "Nationality", "Region", "Count", "Status",
             "Number"],
            rows[:5000],
            "num",
            "flows-table",
        )
    )


#: Every chart fills its container's width (a narrow window too) and is drawn
#: within it: nothing is clipped.
#: Legends go below the plot, in rows, so a narrow window keeps the plot's width.
_FIT: dict[str, Any] = {
    "width": "container",
    "autosize": {"type": "fit-x", "contains": "padding"},
    "config": {"legend": {"orient": "bottom", "direction": "horizontal", "columns": 5}},
}
#: Round ticks (about six) on an integer count axis.
_COUNT_AXIS: dict[str, Any] = {"format": ",d", "tickMinStep": 1, "tickCount": 6,
                               "labelOverlap": True}
#: Week labels carry their year (2024-W03); crowded ones are thinned, not overlapped.
_WEEK_AXIS: dict[str, Any] = {"labelOverlap": "parity", "labelAngle": -40}
#: The x and y of a weekly line chart: ISO weeks, and encounters per week.
_WEEK_X: dict[str, Any] = {
    "field": "period", "type": "ordinal", "title": "ISO week (year-Www)", "axis": _WEEK_AXIS
}
_WEEKLY_COUNT_Y: dict[str, Any] = {
    "field": "count", "type": "quantitative", "title": "Encounters per week",
    "scale": {"nice": True, "zero": True}, "axis": _COUNT_AXIS,
}


def _status_encoding(present: set[str], looks: dict[str, Any], kind: str = "nominal"
                     ) -> dict[str, Any]:
    """A channel that draws each status shown its own way (``looks``: status ->
    value), its legend listing only the statuses present."""
    domain = [s for s in STATUSES if s in present] or ["exact"]
    return {
        "field": "status",
        "type": kind,
        "title": "How exact",
        "sort": domain,
        "scale": {"type": "ordinal", "domain": domain, "range": [looks[s] for s in domain]},
    }


#: Points: filled circle exact/rounded, diamond noisy, up-triangle ("at least") lower bound.
_SHAPES = {"exact": "circle", "rounded": "circle", "noisy": "diamond",
           "lower-bound": "triangle-up", "suppressed": "cross"}


def country_spec(totals: dict[str, int], statuses: dict[str, str] | None = None) -> dict[str, Any]:
    """Bars: encounters by reporting country (corridor order), with tooltips;
    each country in its own colour (never a nationality's); a lower bound
    pale and dashed, a noisy total hollow and dashed."""
    order = sorted(totals, key=corridor_sort_key)
    statuses = statuses or {}
    present = {statuses.get(c, "exact") for c in order}
    return {
        "description": "Encounters by reporting country",
        **_FIT,
        "height": {"step": 28},
        "data": {
            "values": [
                {"country": c, "name": COUNTRY_NAMES.get(c, c), "count": totals[c],
                 "status": statuses.get(c, "exact"), "unit": "encounters"}
                for c in order
            ]
        },
        "mark": {"type": "bar", "tooltip": True, "strokeWidth": 2},
        "encoding": {
            "y": {"field": "country", "type": "nominal", "sort": order,
                  "title": "Reporting country"},
            "x": {"field": "count", "type": "quantitative", "title": "Encounters",
                  "scale": {"nice": True, "zero": True}, "axis": _COUNT_AXIS},
            "color": {"field": "country", "type": "nominal", "legend": None,
                      "scale": {"domain": order, "range": [country_colour(c) for c in order]}},
            "stroke": {"field": "country", "type": "nominal", "legend": None,
                       "scale": {"domain": order, "range": [country_colour(c) for c in order]}},
            # Exact and rounded solid; noisy nearly hollow, dashed; a lower bound
            # pale, dotted (the legend says which is which).
            "fillOpacity": _status_encoding(
                present, {"exact": 1, "rounded": 1, "noisy": 0.12, "lower-bound": 0.35,
                          "suppressed": 0}, "ordinal"),
            "strokeDash": {**_status_encoding(
                present, {"exact": [1, 0], "rounded": [1, 0], "noisy": [5, 3],
                          "lower-bound": [2, 2], "suppressed": [1, 0]}, "ordinal"),
                "legend": None},
            "tooltip": [
                {"field": "name", "title": "Country"},
                {"field": "count", "title": "Encounters", "format": ","},
                {"field": "status", "title": "How exact"},
            ],
        },
    }


def nationality_spec(cells: list[Any], top: int = 8) -> dict[str, Any]:
    """Lines: weekly encounters of the top nationalities; the legend picks one;
    each point's shape says how exact it is."""
    series: dict[tuple[str, str], int] = Counter()
    parts: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a in nationality_answers(weekly(cells)):
        series[(a.period, a.first.label)] += a.number.count
        parts[(a.period, a.first.label)].append(a.number.status)
    by_label: Counter[str] = Counter()
    for (_, label), n in series.items():
        by_label[label] += n
    ranked = [label for label, _ in sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))]
    keep = set(ranked[:top])
    values = [
        {"period": p, "nationality": label, "count": n,
         "status": combined_status(parts[(p, label)]), "unit": "encounters"}
        for (p, label), n in sorted(series.items())
        if label in keep
    ]
    shown = ranked[:top]
    return {
        "description": "Weekly encounters by nationality",
        **_FIT,
        "height": 320,
        "data": {"values": values},
        "params": [
            {
                "name": "pick",
                "select": {"type": "point", "fields": ["nationality"]},
                "bind": "legend",
            }
        ],
        "mark": {"type": "line", "point": {"filled": True, "size": 60}, "tooltip": True},
        "encoding": {
            "x": _WEEK_X,
            "y": _WEEKLY_COUNT_Y,
            "color": {"field": "nationality", "type": "nominal", "title": "Nationality",
                      "scale": {"domain": shown,
                                "range": [nationality_colour(i) for i in range(len(shown))]}},
            "shape": _status_encoding({str(v["status"]) for v in values}, _SHAPES),
            "opacity": {"condition": {"param": "pick", "value": 1}, "value": 0.15},
            "tooltip": [
                {"field": "period", "title": "Week"},
                {"field": "nationality", "title": "Nationality"},
                {"field": "count", "title": "Encounters", "format": ","},
                {"field": "status", "title": "How exact"},
            ],
        },
    }


def trends_spec(totals: list[dict[str, Any]]) -> dict[str, Any]:
    """Lines: weekly encounters of the region and of each reporting country,
    in the countries' own colours (the region in near-black)."""
    values = [
        {
            "period": r["period"],
            "series": "Region" if r["reporting_country"] == "_T" else r["reporting_country"],
            "count": r["count"],
            "change": r["change"],
            "status": cell_status(r),
            "unit": "encounters",
        }
        for r in totals
    ]
    names = sorted({v["series"] for v in values} - {"Region"}, key=corridor_sort_key)
    domain = ["Region", *names]
    return {
        "description": "Weekly encounters: the region and each reporting country",
        **_FIT,
        "height": 300,
        "data": {"values": values},
        "params": [
            {"name": "pick", "select": {"type": "point", "fields": ["series"]}, "bind": "legend"}
        ],
        "mark": {"type": "line", "point": {"filled": True, "size": 60}, "tooltip": True},
        "encoding": {
            "x": _WEEK_X,
            "y": _WEEKLY_COUNT_Y,
            "color": {"field": "series", "type": "nominal", "title": "Series",
                      "scale": {"domain": domain,
                                "range": [REGION_COLOUR, *map(country_colour, names)]}},
            "shape": _status_encoding({str(v["status"]) for v in values}, _SHAPES),
            "opacity": {"condition": {"param": "pick", "value": 1}, "value": 0.15},
            "tooltip": [
                {"field": "period", "title": "Week"},
                {"field": "series", "title": "Series"},
                {"field": "count", "title": "Encounters", "format": ","},
                {"field": "change", "title": "Change", "format": "+,"},
                {"field": "status", "title": "How exact"},
            ],
        },
    }


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
        [r["nationality"], f"{r['count']:,}", "" if r["change"] is None else f"{r['change']:+,}",
         r.get("status", "exact")]
        for r in data["top_nationalities"]
    ]
    org = [
        [r["period"], *(Number(r[g], r.get(f"{g}_status", "exact")).text()
                        for g in ("extracontinental", "caribbean", "other"))]
        for r in data["origins"]
    ]
    return (
        "<h2>Weekly totals, the region and each country</h2><p class='note'>Click a line's "
        "name in the legend to pick it out; hover a point for the week's count and change.</p>"
        + vl_chart("chart-trends", trends_spec(data["totals"]), cells_chart)
        + "<h2>Weekly totals and change</h2>"
        + table(["Week", "Country", "Count", "Change", "%", "Status"], tot, "num",
                "trends-table")
        + "<h2>Top nationalities, latest week</h2>"
        + table(["Nationality", "Count", "Change", "Status"], top, "num")
        + "<h2>Africa and Asia vs Cuba and Haiti</h2>"
        + table(["Week", "Extracontinental", "Caribbean", "Other"], org, "num")
    )


def corridors_page(data: dict[str, Any]) -> str:
    legs = [[g["from"], g["to"], f"{g['count']:,}", g.get("status", "exact")]
            for g in data["legs"]]
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


def legislation_page(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return message("No legislation entries for this audience.")
    countries = sorted({r["country"] for r in rows}, key=corridor_sort_key)
    out = []
    for c in countries:
        line = [COUNTRY_NAMES.get(c, c)]
        for t in LEGISLATION_TOPICS:
            entries = [r for r in rows if r["country"] == c and r["topic"] == t]
            line.append("; ".join(legislation_cell(x) for x in entries) or "·")
        out.append(line)
    return table(
        ["Country", *(t.replace("_", " ").title() for t in LEGISLATION_TOPICS)],
        out,
        "matrix",
        "legislation",
    )


_REF_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "consulates": [
        ("sending_country", "Of"),
        ("host_country", "In"),
        ("mission_type", "Type"),
        ("city", "City"),
        ("phone", "Phone"),
        ("email", "Email"),
    ],
    "health": [
        ("country_of_origin", "Origin"),
        ("disease", "Disease"),
        ("impact", "Impact"),
        ("confidence", "Confidence"),
        ("issuer", "Issuer"),
        ("valid_from", "From"),
        ("valid_until", "Until"),
    ],
    "focal-points": [
        ("country", "Country"),
        ("name", "Name"),
        ("role", "Role"),
        ("institution", "Institution"),
        ("email", "Email"),
    ],
}


def reference_page(kind: str, rows: list[dict[str, Any]]) -> str:
    if kind == "legislation":
        return legislation_page(rows)
    cols = _REF_COLUMNS[kind]
    if not rows:
        return message("Nothing in this view for this audience.")
    return table(
        [label for _, label in cols],
        [[r.get(k) or "" for k, _ in cols] for r in rows],
        "text",
        kind,
    )


def countries_page(countries: list[str]) -> str:
    items = "".join(
        f"<li><a href='/countries/{e(c)}'>{e(COUNTRY_NAMES.get(c, c))} ({e(c)})</a></li>"
        for c in countries
    )
    return f"<ul id='countries'>{items}</ul>"


def country_page(doc: dict[str, Any], own: bool) -> str:
    c = doc["country"]
    kinds = [[k, n] for k, n in doc["subjects_by_kind"].items()]
    rows = [
        [
            r["kind"],
            r["subject"],
            r["revision"],
            r["revisions"],
            r["action"],
            r["produced_at"],
            "yes" if r["current"] else "no",
        ]
        for r in doc["releases"][:500]
    ]
    links = "".join(
        f"<li><a href='/history?subject={e(r['subject'])}'>{e(r['subject'])}</a></li>"
        for r in doc["releases"][:20]
    )
    own_note = (
        (
            f"<p><a href='/received/{e(c)}'>What the Secretariat received from "
            f"{e(c)}, and what it set aside</a></p>"
        )
        if own
        else ""
    )
    return (
        f"<p>What {e(COUNTRY_NAMES.get(c, c))} released"
        + (" (all of your own releases)" if own else ", as far as it was released to you")
        + ": the latest revision of each subject and how many revisions it had.</p>"
        + own_note
        + (
            table(["Kind", "Subjects"], kinds, "", "kinds")
            if kinds
            else message("Nothing released to this audience.")
        )
        + (
            table(
                [
                    "Kind",
                    "Subject",
                    "Latest revision",
                    "Revisions",
                    "Action",
                    "Produced",
                    "Current",
                ],
                rows,
                "text",
                "releases",
            )
            if rows
            else ""
        )
        + (f"<h2>History of the latest subjects</h2><ul>{links}</ul>" if links else "")
    )


def history_page(subject: str, revisions: list[dict[str, Any]]) -> str:
    if not revisions:
        return message("No revision of this subject was released to this audience.")
    rows = [
        [
            r["revision"],
            r["action"],
            r["produced_at"],
            r["producer"],
            "yes" if r["applied"] else "no",
            "yes" if r["current"] else "no",
            ""
            if r["body"] is None
            else ", ".join(f"{k}={v}" for k, v in sorted(r["body"].items())),
        ]
        for r in revisions
    ]
    return table(
        ["Revision", "Action", "Produced", "Producer", "Applied", "Current", "Content"],
        rows,
        "text",
        "history",
    )


def received_page(doc: dict[str, Any]) -> str:
    events = [
        [
            r["kind"],
            r["subject"],
            r["revision"],
            "applied" if r["applied"] else "superseded",
            r["policy_id"] + " " + r["policy_version"],
            _ts(r["received_at"]),
        ]
        for r in doc["events"]
    ]
    aside = [
        [r["reason"], r["detail"], r["event_id"] or "", _ts(r["received_at"])]
        for r in doc["set_aside"]
    ]
    return (
        f"<p>{doc['received']:,} events received from {e(doc['country'])}, "
        f"{doc['applied']:,} applied.</p>"
        "<h2>Set aside (quarantined), with the reason</h2>"
        + (
            table(["Reason", "Detail", "Event", "Received"], aside, "text", "set-aside")
            if aside
            else "<p id='set-aside'>Nothing set aside.</p>"
        )
        + "<h2>Received (latest 500)</h2>"
        + table(
            ["Kind", "Subject", "Revision", "State", "Policy", "Received"],
            events,
            "text",
            "received",
        )
    )


def intelligence_page(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return message("No intelligence report addressed to you.", "note")
    return message(
        "Metadata only: the content is sealed to its recipients end to end and is "
        "read with `corredor inbox` at the recipient's node."
    ) + table(
        ["Producer", "Subject", "Revision", "Recipients", "Received", "Relayed"],
        [
            [
                r["producer"],
                r["subject"],
                r["revision"],
                " ".join(r["recipients"]) or f"not named ({r['sealed_entries']} sealed entries)",
                r["received_at"],
                "yes" if r["relayed"] else "not yet",
            ]
            for r in rows
        ],
        "text",
        "intelligence",
    )


def downloads_page(audience: str) -> str:
    items = [
        ("flows.csv", "Flows, CSV (report --format csv)"),
        ("flows.json", "Flows, JSON (report --format json)"),
        ("flows.sdmx.csv", "Flows, SDMX-CSV 2.0"),
        ("regional.sdmx.csv", "Regional totals, SDMX-CSV 2.0 (with _T totals)"),
        (
            "sdmx-structure.json",
            "The SDMX dataflow's structure (dimensions, measure, attributes, codes)",
        ),
        (
            "sdmx-structure.xml",
            "The SDMX-ML 3.0 structure message: dataflow, DSD and code lists (1.0.0)",
        ),
        ("report.html", "The HTML report (self-contained file)"),
    ]
    lis = "".join(
        f"<li><a href='/download/{e(n)}' download>{e(n)}</a>: {e(d)}</li>" for n, d in items
    )
    return f"<p>Each file is made for <b>{e(audience)}</b> only.</p><ul id='downloads'>{lis}</ul>"


def access_log_page(rows: list[dict[str, Any]]) -> str:
    return table(
        ["When", "User", "Audience", "Action", "What", "Status", "Client"],
        [
            [
                _ts(r["at"]),
                r["user"] or "(public)",
                r["audience"] or "",
                r["action"],
                r["target"],
                r["status"],
                r["client"],
            ]
            for r in rows
        ],
        "text",
        "access-log",
    )
