"""The regional picture as one self-contained HTML file.

Charts are SVG written here, styles are inline CSS: the file makes no request
to anything (no scripts, fonts, images or style sheets from elsewhere), so it
opens the same offline, in a mail attachment or on an air-gapped machine.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from datetime import UTC
from typing import Any

from node.model.codes import COUNTRY_NAMES, corridor_sort_key
from node.report.audience import Scope
from node.report.charts import (
    STATUS_LABELS,
    UNCERTAIN,
    cell_status,
    combined_status,
    country_colour,
    nationality_colour,
    nice_ticks,
    place_labels,
)
from node.report.reference import LEGISLATION_TOPICS, ViewFilter, legislation_cell
from node.report.regional import (
    FlowCell,
    admitted_cells,
    alerts,
    country_totals,
    coverage,
    nationality_answers,
    regional_rows,
    route_legs,
    routes,
    trends,
    weekly,
)
from node.report.tables import Number, total_label, total_short
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


def _e(value: object) -> str:
    return html.escape(str(value))


def _name(code: str) -> str:
    return COUNTRY_NAMES.get(code, code)


# -- charts ------------------------------------------------------------------------


def _status_defs() -> str:
    """SVG patterns for the statuses drawn differently from exact numbers."""
    return ('<defs><pattern id="hatch-lower-bound" width="6" height="6" '
            'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            '<rect width="6" height="6" fill="#ffffff"/><rect width="3" height="6" '
            'fill="currentColor"/></pattern></defs>')


def _status_key(statuses: set[str], x: float, y: float) -> str:
    """A legend line for the statuses shown that are not exact."""
    shown = [s for s in ("noisy", "lower-bound") if s in statuses]
    if not shown:
        return ""
    marks = {"noisy": '<circle cx="{x}" cy="{y}" r="4.5" fill="#ffffff" stroke="#1d2733" '
                      'stroke-width="1.5" stroke-dasharray="2 1.5"/>',
             "lower-bound": '<path d="M{x0},{y1} L{x},{y0} L{x1},{y1} z" fill="#ffffff" '
                            'stroke="#1d2733" stroke-width="1.5"/>'}
    parts = [f'<g class="status-key"><text x="{x:.1f}" y="{y + 4:.1f}" font-size="11">'
             'Marks:</text>']
    cx = x + 52
    for s in ("exact", *shown):
        if s == "exact":
            parts.append(f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="4.5" fill="#1d2733"/>')
        else:
            parts.append(marks[s].format(x=f"{cx:.1f}", y=f"{y:.1f}", x0=f"{cx - 5:.1f}",
                                         x1=f"{cx + 5:.1f}", y0=f"{y - 5:.1f}",
                                         y1=f"{y + 4:.1f}"))
        label = STATUS_LABELS[s]
        parts.append(f'<text x="{cx + 9:.1f}" y="{y + 4:.1f}" font-size="11">{_e(label)}</text>')
        cx += 20 + 6.2 * len(label)
    parts.append("</g>")
    return "".join(parts)


def _point(x: float, y: float, colour: str, status: str, title: str) -> str:
    """One point of a line: solid for exact (and rounded), hollow and dashed
    for noisy, a hollow up-triangle ("at least") for a lower bound."""
    cls = f'class="point" data-status="{_e(status)}"'
    if status == "noisy":
        return (f'<circle {cls} cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="#ffffff" '
                f'stroke="{colour}" stroke-width="2" stroke-dasharray="2 1.5">'
                f'<title>{_e(title)}</title></circle>')
    if status == "lower-bound":
        return (f'<path {cls} d="M{x - 5:.1f},{y + 4:.1f} L{x:.1f},{y - 5:.1f} '
                f'L{x + 5:.1f},{y + 4:.1f} z" fill="#ffffff" stroke="{colour}" '
                f'stroke-width="2"><title>{_e(title)}</title></path>')
    return (f'<circle {cls} cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
            f'<title>{_e(title)}</title></circle>')


def line_chart(cells: list[FlowCell], top: int = 6, width: int = 1100, height: int = 380) -> str:
    """Weekly regional encounters of the top nationalities, one line each;
    y ticks on round numbers, week labels with their year, each point drawn
    by its status (a noisy one with its 95% interval)."""
    series: dict[str, Counter[str]] = defaultdict(Counter)
    statuses: dict[tuple[str, str], list[str]] = defaultdict(list)
    intervals: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for a in nationality_answers(weekly(cells)):
        series[a.first.label][a.period] += a.number.count
        statuses[(a.first.label, a.period)].append(a.number.status)
        intervals[(a.first.label, a.period)].append(a.number.ci95)
    periods = sorted({c.period for c in weekly(cells)})
    if not periods:
        return "<p class='note'>No weekly flows for this audience.</p>"
    ranked = sorted(series, key=lambda n: (-sum(series[n].values()), n))[:top]

    def interval(label: str, p: str) -> tuple[int, int] | None:
        parts = intervals[(label, p)]
        if not parts or not all(parts):
            return None
        return (sum(int(i[0]) for i in parts), sum(int(i[1]) for i in parts))

    peak = max(max(series[n].values()) for n in ranked) or 1
    for n in ranked:
        for p in periods:
            ci = interval(n, p) if combined_status(statuses[(n, p)]) == "noisy" else None
            if ci:
                peak = max(peak, ci[1])
    ticks = nice_ticks(peak)
    left, right, top_m, bottom = 78, 150, 34, 62
    pw, ph = width - left - right, height - top_m - bottom

    def x(i: int) -> float:
        return left + (pw * i / max(1, len(periods) - 1))

    def y(v: float) -> float:
        return top_m + ph - ph * v / ticks[-1]

    parts = [f'<svg class="chart" id="chart-flows" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg"><title>Encounters per week by nationality'
             '</title>']
    for v in ticks:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     'stroke="#e3e9ef"/>')
        parts.append(f'<text class="tick y-tick" x="{left - 6}" y="{y(v) + 4:.1f}" '
                     f'font-size="11" text-anchor="end">{v:,}</text>')
    # Week labels carry the year (2024-W03); every k-th when they would crowd.
    every = max(1, math.ceil(58 * len(periods) / pw))
    for i, p in enumerate(periods):
        if i % every == 0:
            parts.append(f'<text class="tick x-tick" x="{x(i):.1f}" y="{top_m + ph + 18}" '
                         f'font-size="11" text-anchor="middle">{_e(p)}</text>')
    parts.append(f'<text class="axis-title" x="{left + pw / 2:.1f}" y="{height - 22}" '
                 'font-size="12" text-anchor="middle">ISO week (year-Www)</text>')
    parts.append(f'<text class="axis-title" transform="translate(18,{top_m + ph / 2:.1f}) '
                 'rotate(-90)" font-size="12" text-anchor="middle">Encounters per week'
                 '</text>')
    seen: set[str] = set()
    for j, label in enumerate(ranked):
        colour = nationality_colour(j)
        points = " ".join(f"{x(i):.1f},{y(series[label].get(p, 0)):.1f}"
                          for i, p in enumerate(periods))
        parts.append(f'<polyline class="series" fill="none" stroke="{colour}" '
                     f'stroke-width="2.5" points="{points}"><title>{_e(label)}</title>'
                     '</polyline>')
        for i, p in enumerate(periods):
            if p not in series[label]:
                continue
            count = series[label][p]
            status = combined_status(statuses[(label, p)])
            seen.add(status)
            ci = interval(label, p) if status == "noisy" else None
            if ci:
                parts.append(f'<line class="interval" x1="{x(i):.1f}" x2="{x(i):.1f}" '
                             f'y1="{y(ci[0]):.1f}" y2="{y(ci[1]):.1f}" stroke="{colour}" '
                             'stroke-width="1.5"/>')
            shown = f"≥ {count:,}" if status == "lower-bound" else f"{count:,}"
            extra = f" (95%: {ci[0]:,}–{ci[1]:,})" if ci else ""
            parts.append(_point(x(i), y(count), colour, status,
                                f"{label} {p}: {shown} encounters, {status}{extra}"))
        ly = top_m + 18 * j + 8
        parts.append(f'<rect x="{left + pw + 16}" y="{ly - 8}" width="12" height="12" '
                     f'fill="{colour}"/><text class="legend" x="{left + pw + 34}" '
                     f'y="{ly + 2}" font-size="12">{_e(label)}</text>')
    parts.append(_status_key(seen, left, 14))
    parts.append("</svg>")
    return "".join(parts)


def corridor_diagram(legs: list[dict[str, Any]], width: int = 1100, height: int = 300) -> str:
    """The corridor north as a row of countries, each leg an arrow-headed arc
    whose width follows its count: above the row when it runs north along the
    corridor, below when it runs back. Count labels are moved away from the
    row until none touches another label or a country; the picture grows to
    hold them, so none is cut off."""
    if not legs:
        return "<p class='note'>No route legs published for this audience.</p>"
    nodes = sorted({leg["from"] for leg in legs} | {leg["to"] for leg in legs},
                   key=corridor_sort_key)
    gap = (width - 80) / max(1, len(nodes) - 1)
    pos = {n: 40 + i * gap for i, n in enumerate(nodes)}
    peak = max(leg["count"] for leg in legs) or 1
    base = height * 0.6
    arcs: list[str] = []
    wanted: list[tuple[float, float, str, int]] = []
    ordered = sorted(legs, key=lambda g: -g["count"])
    for leg in ordered:
        a, b = pos[leg["from"]], pos[leg["to"]]
        north = b > a
        room = base - 24 if north else height - base - 40
        lift = min(room, 30 + abs(b - a) / 4)
        w = 1.5 + 14 * leg["count"] / peak
        mid = (a + b) / 2
        side = -1 if north else 1
        ctrl = base + side * 2 * lift
        status = cell_status(leg)
        dash = ' stroke-dasharray="6 3"' if status in UNCERTAIN else ""
        # End short of the target's dot so the arrowhead shows.
        end_x, end_y = b - 14 * (1 if north else -1), base + side * 12
        arcs.append(f'<path class="leg" data-status="{_e(status)}" '
                    f'd="M{a:.1f},{base:.1f} Q{mid:.1f},{ctrl:.1f} {end_x:.1f},{end_y:.1f}" '
                    f'fill="none" stroke="#1b6ca8" stroke-opacity="0.55" '
                    f'stroke-width="{w:.1f}"{dash} marker-end="url(#arrow)"><title>'
                    f'{_e(leg["from"])} → {_e(leg["to"])}: {leg["count"]:,} encounters '
                    f'({_e(status)})</title></path>')
        text = f"≥{leg['count']:,}" if status == "lower-bound" else f"{leg['count']:,}"
        label_y = base - lift - 4 if north else base + lift + 14
        wanted.append((mid, label_y, text, side))
    circles = [(px - 19, base - 19, px + 19, base + 19) for px in pos.values()]
    spots = place_labels(wanted, circles, size=13, step=15)
    labels = [
        f'<text class="leg-label" x="{lx:.1f}" y="{ly:.1f}" font-size="13" '
        f'text-anchor="middle">{_e(text)}</text>'
        for (lx, ly), (_, _, text, _) in zip(spots, wanted, strict=True)
    ]
    top_y = min([0.0, *(ly - 14 for _, ly in spots)])
    bottom_y = max([float(height), *(ly + 8 for _, ly in spots)]) + 22  # the axis title
    left_x = min([0.0, *(lx - 40 for lx, _ in spots)])
    right_x = max([float(width), *(lx + 40 for lx, _ in spots)])
    vw, vh = right_x - left_x, bottom_y - top_y
    parts = [f'<svg class="chart" id="chart-corridor" role="img" width="{vw:.0f}" '
             f'height="{vh:.0f}" viewBox="{left_x:.1f} {top_y:.1f} {vw:.1f} {vh:.1f}" '
             'xmlns="http://www.w3.org/2000/svg"><title>Route legs: previous country to '
             'reporting country, in encounters</title><defs><marker id="arrow" '
             'viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
             'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
             '<path d="M0,0 L10,5 L0,10 z" fill="#0d3d61"/></marker></defs>',
             *arcs, *labels]
    for n, px in pos.items():
        parts.append(f'<circle cx="{px:.1f}" cy="{base:.1f}" r="17" fill="#ffffff" '
                     f'stroke="{country_colour(n)}" stroke-width="2.5"/>'
                     f'<text class="node-label" x="{px:.1f}" y="{base + 4:.1f}" font-size="12" '
                     f'font-weight="bold" text-anchor="middle">{_e(n)}</text>')
    parts.append(f'<text class="axis-title" x="{left_x + 8:.1f}" y="{bottom_y - 8:.1f}" '
                 'font-size="11">Encounters per leg (arcs above run north, below south)</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(totals: dict[str, int], width: int = 1100, bar: int = 26,
              statuses: dict[str, str] | None = None) -> str:
    """Encounters by reporting country over the report's weeks, on an axis
    with round ticks; a country whose total is a lower bound is hatched and
    labelled "≥", a noisy one dashed and hollow."""
    if not totals:
        return "<p class='note'>No flows for this audience.</p>"
    statuses = statuses or {}
    countries = sorted(totals, key=corridor_sort_key)
    ticks = nice_ticks(max(totals.values()) or 1)
    left, pw = 160, width - 260
    axis_y = 10 + len(countries) * (bar + 8)
    height = axis_y + 48

    def xv(v: float) -> float:
        return left + pw * v / ticks[-1]

    parts = [f'<svg class="chart" id="chart-countries" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg"><title>Encounters by reporting country'
             f'</title>{_status_defs()}']
    for v in ticks:
        parts.append(f'<line x1="{xv(v):.1f}" x2="{xv(v):.1f}" y1="6" y2="{axis_y}" '
                     f'stroke="#e3e9ef"/><text class="tick x-tick" x="{xv(v):.1f}" '
                     f'y="{axis_y + 14}" font-size="11" text-anchor="middle">{v:,}</text>')
    parts.append(f'<text class="axis-title" x="{left + pw / 2:.1f}" y="{axis_y + 36}" '
                 'font-size="12" text-anchor="middle">Encounters (all weeks shown)</text>')
    for i, c in enumerate(countries):
        yy = 10 + i * (bar + 8)
        w = xv(totals[c]) - left
        colour = country_colour(c)
        status = statuses.get(c, "exact")
        if status == "lower-bound":
            fill = f'fill="url(#hatch-lower-bound)" color="{colour}" stroke="{colour}"'
        elif status == "noisy":
            fill = f'fill="#ffffff" stroke="{colour}" stroke-width="2" stroke-dasharray="5 3"'
        else:
            fill = f'fill="{colour}"'
        shown = f"≥ {totals[c]:,}" if status == "lower-bound" else f"{totals[c]:,}"
        parts.append(f'<text x="{left - 8}" y="{yy + bar * 0.7:.1f}" font-size="13" '
                     f'text-anchor="end">{_e(_name(c))}</text>'
                     f'<rect class="bar" data-status="{_e(status)}" '
                     f'x="{left}" y="{yy}" width="{w:.1f}" height="{bar}" {fill}>'
                     f'<title>{_e(c)}: {shown} encounters ({_e(status)})</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{yy + bar * 0.7:.1f}" '
                     f'font-size="12">{_e(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def country_statuses(cells: list[FlowCell]) -> dict[str, str]:
    """Each reporting country's status over the cells: its least precise part."""
    by_country: dict[str, list[str]] = defaultdict(list)
    for (_, country), n in country_totals(cells).items():
        by_country[country].append(n.status)
    return {country: combined_status(s) for country, s in by_country.items()}


# -- tables ------------------------------------------------------------------------


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f'<th class="l">{_e(h)}</th>' if i == 0 else f"<th>{_e(h)}</th>"
                 for i, h in enumerate(head))
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: object, left: bool = False) -> str:
    return f'<td class="l">{_e(value)}</td>' if left else f"<td>{_e(value)}</td>"


#: CSS class of a number's status in the report's tables.
_STATUS_CLASS = {"exact": "", "rounded": "est", "noisy": "noisy", "lower-bound": "lb"}


def _num_td(n: Number, bold: bool = False) -> str:
    """A number's cell: its status as a class, a mark (≥, ~, ±) and a tooltip."""
    tip = {"exact": "exact", "rounded": "rounded by the country",
           "lower-bound": "lower bound: a sum of published detail cells; protected cells "
           "are missing" + (f" ({n.protected:,} encounters)" if n.protected else ""),
           "noisy": "noisy (differential privacy)"
           + (f", 95% interval {n.ci95[0]:,}–{n.ci95[1]:,}" if n.ci95 else "")}[n.status]
    text = _e(n.text())
    if bold:
        text = f"<b>{text}</b>"
    return (f'<td class="{_STATUS_CLASS[n.status]}" data-status="{n.status}" '
            f'title="{_e(tip)}">{text}</td>')


def _row_td(row: dict[str, Any], key: str = "count") -> str:
    ci = row.get("ci95")
    return _num_td(Number(row[key], row.get("status", "exact"), (ci[0], ci[1]) if ci else None,
                          row.get("protected")))


def _coverage_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>No flows for this audience.</p>"
    views = list(rows[0]["views"])
    return _table(["Country", "Encounters", *(f"exact in {v}" for v in views)], [
        [_td(r["country"], True),
         _num_td(Number(r["encounters"], r["encounters_status"])),
         *(_td("" if r["views"][v]["share"] is None else f"{100 * r['views'][v]['share']:.1f}%")
           for v in views)]
        for r in rows
    ])


def _regional_table(cells: list[FlowCell], period: str, audience: str = "TS") -> str:
    countries, rows = regional_rows([c for c in cells if c.period == period])
    out = []
    for r in rows:
        tds = [_td(r.nationality, True)]
        for c in countries:
            n = r.numbers.get(c)
            if n is None:
                tds.append(f'<td class="supp" data-status="suppressed" title="no published '
                           f'count: none, suppressed by {_e(c)}, or not released to this '
                           f'audience">{SUPPRESSED_MARK}</td>')
            else:
                tds.append(_num_td(n))
        tds.append(_num_td(r.total_number, bold=True))
        out.append(tds)
    return _table(["Nationality", *countries, total_short(audience)], out)


def _reference_tables(store: PictureStore, scope: Scope) -> str:
    flt = ViewFilter(as_of=scope.now.date())
    parts = ["<h2>Legislation matrix (IOM mapping)</h2>",
             _legislation_matrix_rows(admitted_view_rows(store, "legislation", scope, flt))]
    consul = admitted_view_rows(store, "consulates", scope, flt)
    parts.append("<h2>Consular directory</h2>")
    parts.append(_table(["Of", "In", "Type", "City", "Phone", "Email"], [
        [_td(r["sending_country"], True), _td(r["host_country"], True),
         _td(r["mission_type"].replace("_", " ").lower(), True), _td(r["city"], True),
         _td(r.get("phone") or "", True), _td(r.get("email") or "", True)] for r in consul
    ], "text"))
    health = admitted_view_rows(store, "health", scope, flt)
    parts.append("<h2>Health advisories (current)</h2>")
    parts.append(_table(["Origin", "Disease", "Impact", "Confidence", "Issuer", "Valid"], [
        [_td(r["country_of_origin"], True), _td(r["disease"], True), _td(r["impact"], True),
         _td(r["confidence"], True), _td(r["issuer"], True),
         _td(f"{r['valid_from']} – {r.get('valid_until') or 'open'}", True)] for r in health
    ], "text"))
    focal = admitted_view_rows(store, "focal-points", scope, flt)
    parts.append("<h2>Focal points</h2>")
    parts.append(_table(["Country", "Name", "Role", "Institution", "Email"], [
        [_td(r["country"], True), _td(r["name"], True), _td(r["role"], True),
         _td(r["institution"], True), _td(r["email"], True)] for r in focal
    ], "text"))
    return "".join(parts)


def _legislation_matrix_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>No legislation entries for this audience.</p>"
    countries = sorted({r["country"] for r in rows}, key=corridor_sort_key)
    out = []
    for country in countries:
        tds = [_td(_name(country), True)]
        for topic in LEGISLATION_TOPICS:
            entries = [r for r in rows if r["country"] == country and r["topic"] == topic]
            tds.append(_td("; ".join(legislation_cell(e) for e in entries) or "·", True))
        out.append(tds)
    return _table(["Country", *(t.replace("_", " ").title() for t in LEGISLATION_TOPICS)],
                  out, "matrix")


def report_html(store: PictureStore, scope: Scope, *, last: int = 12,
                k: int = DEFAULT_ROUTE_K) -> str:
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
        f"<p class='meta'>Regional Conference on Migration · made for <b>{_e(scope.audience)}"
        f"</b>, purpose {_e(scope.purpose_for('flows'))} · generated {_e(generated)} · "
        f"weeks {_e(window[0] if window else '–')} to {_e(latest or '–')}</p>",
        "<p class='note'>Unit: <b>encounters</b>, not persons (one person crossing several "
        "countries is counted by each). Every number is a cell the reporting countries "
        "published to this audience, or a sum of them, each country's taken from its most "
        "precise table. Cells marked <b>s</b> have no published count: none, suppressed by "
        "the reporting country (small cells), or not released to this audience. Totals over "
        f"countries add exactly the counts shown and cover {_e(total_label(scope.audience))}."
        " Exact numbers are plain; <b>≥</b> marks a lower bound (a sum of detail cells whose "
        "protected cells are missing), italic <b>~</b> a count rounded by the country, "
        "<b>±</b> a noisy count with its 95% interval.</p>",
        "<h2>Coverage: encounters in exact numbers</h2>",
        _coverage_table(coverage(shown)),
        "<h2>Alerts</h2>",
    ]
    if al["alerts"]:
        body.append(_table(["Series", "Week", "Count", "Baseline mean", "Ratio", "p"], [
            [f'<td class="l alert">{_e(a["kind"])}: {_e(a["series"])}</td>',
             _td(a["period"]), _td(f"{a['count']:,}"), _td(a["baseline_mean"]),
             _td(f"{a['ratio']}×"), _td(p_text(a))] for a in al["alerts"]
        ]))
    else:
        body.append("<p>No alerts.</p>")
    m = al["method"]
    body.append(f"<p class='note'>Method: latest week against the mean of the previous "
                f"{m['baseline_periods']} weeks; an alert needs at least {m['min_count']} "
                f"encounters, {m['min_ratio']}× the mean and a Poisson upper-tail probability "
                f"below {m['p_value']}.</p>")
    body += ["<h2>Flows over time by nationality</h2>", line_chart(shown)]
    body += ["<h2>Corridor: route legs</h2>", corridor_diagram(legs)]
    if linked["routes"]:
        body.append(_table([f"Multi-country route (k ≥ {k})", "People"], [
            [_td(" → ".join(r["route"]), True), _td(r["people"])] for r in linked["routes"]
        ]))
    body += ["<h2>Country comparison</h2>",
             bar_chart(dict(by_country), statuses=country_statuses(weekly(shown))),
             "<p class='note'>Weekly cells only: a country that coarsened small weeks to "
             "a month shows those in the tables, not here.</p>"]
    body.append("<h2>Weekly totals and change</h2>")
    body.append(_table(["Week", "Countries", "Encounters", "Change", "%"], [
        [_td(r["period"], True), _td(total_short(scope.audience) + ": "
                                     + ", ".join(r.get("countries", [])), True),
         _row_td(r), _td("" if r["change"] is None else f"{r['change']:+,}"),
         _td("" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%")]
        for r in tr["totals"] if r["reporting_country"] == "_T"
    ]))
    body.append("<h2>Top nationalities, latest week</h2>")
    body.append(_table(["Nationality", "Count", "Change"], [
        [_td(r["nationality"], True), _row_td(r),
         _td("" if r["change"] is None else f"{r['change']:+,}")]
        for r in tr["top_nationalities"]
    ]))
    body.append("<h2>Extracontinental vs extraregional Caribbean origins</h2>")
    body.append(_table(["Week", "Africa and Asia", "Cuba and Haiti", "Other"], [
        [_td(r["period"], True), *(
            _num_td(Number(r[g], r.get(f"{g}_status", "exact")))
            for g in ("extracontinental", "caribbean", "other"))] for r in tr["origins"]
    ]))
    if latest is not None:
        body += [f"<h2>Regional totals, {_e(latest)}</h2>",
                 _regional_table(cells, latest, scope.audience)]
    body.append(_reference_tables(store, scope))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>Corredor: regional picture</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
