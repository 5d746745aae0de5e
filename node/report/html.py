"""The regional picture as one self-contained HTML file.

Charts are SVG (drawn by ``node.report.svg``), styles are inline CSS: the file makes no request
to anything (no scripts, fonts, images or style sheets from elsewhere), so it
opens the same offline, in a mail attachment or on an air-gapped machine.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from typing import Any

from node.model.codes import corridor_sort_key
from node.report.alerts import alerts
from node.report.audience import Scope
from node.report.corridors import route_legs, routes
from node.report.reference import LEGISLATION_TOPICS, ViewFilter, legislation_cell
from node.report.regional import (
    FlowCell,
    admitted_cells,
    country_totals,
    coverage,
    regional_rows,
    weekly,
)
from node.report.svg import (
    bar_chart,
    corridor_diagram,
    country_name,
    country_statuses,
    escape,
    line_chart,
)
from node.report.tables import Number, total_label, total_short
from node.report.trends import trends
from node.report.views import DEFAULT_ROUTE_K, admitted_view_rows, p_text
from node.store.picture import PictureStore

SUPPRESSED_MARK = "s"

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;
max-width:1200px;color:#1d2733;line-height:1.4}
h1{font-size:26px;margin-bottom:0}h2{font-size:20px;border-bottom:2px solid #1b6ca8;
padding-bottom:4px;margin-top:36px}.meta{color:#5b6b7b;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}
th,td{border:1px solid #cfd8e3;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#eef3f8}td.l,th.l{text-align:left}
td.supp{background:repeating-linear-gradient(45deg,#f6e3e3,#f6e3e3 4px,#fff 4px,#fff 8px);
color:#a02b2b;font-weight:bold;text-align:center}
td.est{font-style:italic}td.lb{color:#7a5a00}td.noisy{color:#5a3d8a}.alert{color:#a02b2b;font-weight:bold}
.matrix td{text-align:left;max-width:260px}.text th,.matrix th{text-align:left}
.note{font-size:12px;color:#5b6b7b}
svg text{font-family:system-ui,sans-serif}svg.chart{max-width:100%;height:auto}
"""


# -- tables ------------------------------------------------------------------------


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(
        f'<th class="l">{escape(h)}</th>' if i == 0 else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: object, left: bool = False) -> str:
    return f'<td class="l">{escape(value)}</td>' if left else f"<td>{escape(value)}</td>"


#: CSS class of a number's status in the report's tables.
_STATUS_CLASS = {"exact": "", "rounded": "est", "noisy": "noisy", "lower-bound": "lb"}


def _num_td(n: Number, bold: bool = False) -> str:
    """A number's cell: its status as a class, a mark (≥, ~, ±) and a tooltip."""
    tip = {
        "exact": "exact",
        "rounded": "rounded by the country",
        "lower-bound": "lower bound: a sum of published detail cells; protected cells "
        "are missing" + (f" ({n.protected:,} encounters)" if n.protected else ""),
        "noisy": "noisy (differential privacy)"
        + (f", 95% interval {n.ci95[0]:,}–{n.ci95[1]:,}" if n.ci95 else ""),
    }[n.status]
    text = escape(n.text())
    if bold:
        text = f"<b>{text}</b>"
    return (
        f'<td class="{_STATUS_CLASS[n.status]}" data-status="{n.status}" '
        f'title="{escape(tip)}">{text}</td>'
    )


def _row_td(row: dict[str, Any], key: str = "count") -> str:
    ci = row.get("ci95")
    return _num_td(
        Number(
            row[key],
            row.get("status", "exact"),
            (ci[0], ci[1]) if ci else None,
            row.get("protected"),
        )
    )


def _coverage_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>No flows for this audience.</p>"
    views = list(rows[0]["views"])
    return _table(
        ["Country", "Encounters", *(f"exact in {v}" for v in views)],
        [
            [
                _td(r["country"], True),
                _num_td(Number(r["encounters"], r["encounters_status"])),
                *(
                    _td(
                        ""
                        if r["views"][v]["share"] is None
                        else f"{100 * r['views'][v]['share']:.1f}%"
                    )
                    for v in views
                ),
            ]
            for r in rows
        ],
    )


def _regional_table(cells: list[FlowCell], period: str, audience: str = "TS") -> str:
    countries, rows = regional_rows([c for c in cells if c.period == period])
    out = []
    for r in rows:
        tds = [_td(r.nationality, True)]
        for c in countries:
            n = r.numbers.get(c)
            if n is None:
                tds.append(
                    f'<td class="supp" data-status="suppressed" title="no published '
                    f"count: none, suppressed by {escape(c)}, or not released to this "
                    f'audience">{SUPPRESSED_MARK}</td>'
                )
            else:
                tds.append(_num_td(n))
        tds.append(_num_td(r.total_number, bold=True))
        out.append(tds)
    return _table(["Nationality", *countries, total_short(audience)], out)


def _reference_tables(store: PictureStore, scope: Scope) -> str:
    flt = ViewFilter(as_of=scope.now.date())
    parts = [
        "<h2>Legislation matrix (IOM mapping)</h2>",
        _legislation_matrix_rows(admitted_view_rows(store, "legislation", scope, flt)),
    ]
    consul = admitted_view_rows(store, "consulates", scope, flt)
    parts.append("<h2>Consular directory</h2>")
    parts.append(
        _table(
            ["Of", "In", "Type", "City", "Phone", "Email"],
            [
                [
                    _td(r["sending_country"], True),
                    _td(r["host_country"], True),
                    _td(r["mission_type"].replace("_", " ").lower(), True),
                    _td(r["city"], True),
                    _td(r.get("phone") or "", True),
                    _td(r.get("email") or "", True),
                ]
                for r in consul
            ],
            "text",
        )
    )
    health = admitted_view_rows(store, "health", scope, flt)
    parts.append("<h2>Health advisories (current)</h2>")
    parts.append(
        _table(
            ["Origin", "Disease", "Impact", "Confidence", "Issuer", "Valid"],
            [
                [
                    _td(r["country_of_origin"], True),
                    _td(r["disease"], True),
                    _td(r["impact"], True),
                    _td(r["confidence"], True),
                    _td(r["issuer"], True),
                    _td(f"{r['valid_from']} – {r.get('valid_until') or 'open'}", True),
                ]
                for r in health
            ],
            "text",
        )
    )
    focal = admitted_view_rows(store, "focal-points", scope, flt)
    parts.append("<h2>Focal points</h2>")
    parts.append(
        _table(
            ["Country", "Name", "Role", "Institution", "Email"],
            [
                [
                    _td(r["country"], True),
                    _td(r["name"], True),
                    _td(r["role"], True),
                    _td(r["institution"], True),
                    _td(r["email"], True),
                ]
                for r in focal
            ],
            "text",
        )
    )
    return "".join(parts)


def _legislation_matrix_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>No legislation entries for this audience.</p>"
    countries = sorted({r["country"] for r in rows}, key=corridor_sort_key)
    out = []
    for country in countries:
        tds = [_td(country_name(country), True)]
        for topic in LEGISLATION_TOPICS:
            entries = [r for r in rows if r["country"] == country and r["topic"] == topic]
            tds.append(_td("; ".join(legislation_cell(e) for e in entries) or "·", True))
        out.append(tds)
    return _table(
        ["Country", *(t.replace("_", " ").title() for t in LEGISLATION_TOPICS)], out, "matrix"
    )


def report_html(
    store: PictureStore, scope: Scope, *, last: int = 12, k: int = DEFAULT_ROUTE_K
) -> str:
    """The whole report for ``scope``'s audience, as one HTML document."""
    cells = admitted_cells(store, scope, "flows")
    periods = sorted({c.period for c in weekly(cells)})
    window = periods[-last:] if last > 0 else periods
    shown = [c for c in cells if c.period in set(window)] if window else cells
    tr = trends(shown)
    al = alerts(cells)
    legs = route_legs(shown)
    linked = routes(store, scope, k)
    by_country: Counter[str] = Counter()
    for (_, country), n in country_totals(weekly(shown)).items():
        by_country[country] += n.count
    latest = window[-1] if window else None
    generated = scope.now.astimezone(UTC).isoformat(timespec="seconds")
    body = [
        "<h1>Extraregional migration flows: the regional picture</h1>",
        f"<p class='meta'>Regional Conference on Migration · made for <b>{escape(scope.audience)}"
        f"</b>, purpose {escape(scope.purpose_for('flows'))} · generated {escape(generated)} · "
        f"weeks {escape(window[0] if window else '–')} to {escape(latest or '–')}</p>",
        "<p class='note'>Unit: <b>encounters</b>, not persons (one person crossing several "
        "countries is counted by each). Every number is a cell the reporting countries "
        "published to this audience, or a sum of them, each country's taken from its most "
        "precise table. Cells marked <b>s</b> have no published count: none, suppressed by "
        "the reporting country (small cells), or not released to this audience. Totals over "
        f"countries add exactly the counts shown and cover {escape(total_label(scope.audience))}."
        " Exact numbers are plain; <b>≥</b> marks a lower bound (a sum of detail cells whose "
        "protected cells are missing), italic <b>~</b> a count rounded by the country, "
        "<b>±</b> a noisy count with its 95% interval.</p>",
        "<h2>Coverage: encounters in exact numbers</h2>",
        _coverage_table(coverage(shown)),
        "<h2>Alerts</h2>",
    ]
    if al["alerts"]:
        body.append(
            _table(
                ["Series", "Week", "Count", "Baseline mean", "Ratio", "p"],
                [
                    [
                        f'<td class="l alert">{escape(a["kind"])}: {escape(a["series"])}</td>',
                        _td(a["period"]),
                        _td(f"{a['count']:,}"),
                        _td(a["baseline_mean"]),
                        _td(f"{a['ratio']}×"),
                        _td(p_text(a)),
                    ]
                    for a in al["alerts"]
                ],
            )
        )
    else:
        body.append("<p>No alerts.</p>")
    m = al["method"]
    body.append(
        f"<p class='note'>Method: latest week against the mean of the previous "
        f"{m['baseline_periods']} weeks; an alert needs at least {m['min_count']} "
        f"encounters, {m['min_ratio']}× the mean and a Poisson upper-tail probability "
        f"below {m['p_value']}.</p>"
    )
    body += ["<h2>Flows over time by nationality</h2>", line_chart(shown)]
    body += ["<h2>Corridor: route legs</h2>", corridor_diagram(legs)]
    if linked["routes"]:
        body.append(
            _table(
                [f"Multi-country route (k ≥ {k})", "People"],
                [[_td(" → ".join(r["route"]), True), _td(r["people"])] for r in linked["routes"]],
            )
        )
    body += [
        "<h2>Country comparison</h2>",
        bar_chart(dict(by_country), statuses=country_statuses(weekly(shown))),
        "<p class='note'>Weekly cells only: a country that coarsened small weeks to "
        "a month shows those in the tables, not here.</p>",
    ]
    body.append("<h2>Weekly totals and change</h2>")
    body.append(
        _table(
            ["Week", "Countries", "Encounters", "Change", "%"],
            [
                [
                    _td(r["period"], True),
                    _td(
                        total_short(scope.audience) + ": " + ", ".join(r.get("countries", [])), True
                    ),
                    _row_td(r),
                    _td("" if r["change"] is None else f"{r['change']:+,}"),
                    _td("" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%"),
                ]
                for r in tr["totals"]
                if r["reporting_country"] == "_T"
            ],
        )
    )
    body.append("<h2>Top nationalities, latest week</h2>")
    body.append(
        _table(
            ["Nationality", "Count", "Change"],
            [
                [
                    _td(r["nationality"], True),
                    _row_td(r),
                    _td("" if r["change"] is None else f"{r['change']:+,}"),
                ]
                for r in tr["top_nationalities"]
            ],
        )
    )
    body.append("<h2>Extracontinental vs extraregional Caribbean origins</h2>")
    body.append(
        _table(
            ["Week", "Africa and Asia", "Cuba and Haiti", "Other"],
            [
                [
                    _td(r["period"], True),
                    *(
                        _num_td(Number(r[g], r.get(f"{g}_status", "exact")))
                        for g in ("extracontinental", "caribbean", "other")
                    ),
                ]
                for r in tr["origins"]
            ],
        )
    )
    if latest is not None:
        body += [
            f"<h2>Regional totals, {escape(latest)}</h2>",
            _regional_table(cells, latest, scope.audience),
        ]
    body.append(_reference_tables(store, scope))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Corredor: regional picture</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
