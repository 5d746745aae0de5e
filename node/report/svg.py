"""The HTML report's charts, as SVG written here: weekly lines by
nationality, the corridor's route legs, bars by reporting country. Every mark
is drawn by the status of its number and carries a tooltip (``<title>``); no
chart needs a script, a font or an image from elsewhere.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from typing import Any

from node.model.codes import COUNTRY_NAMES, corridor_sort_key
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
from node.report.regional import FlowCell, country_totals, nationality_answers, weekly


def escape(value: object) -> str:
    """``value`` as text safe in HTML and SVG, quotes included."""
    return html.escape(str(value))


def country_name(code: str) -> str:
    return COUNTRY_NAMES.get(code, code)


def _status_defs() -> str:
    """SVG patterns for the statuses drawn differently from exact numbers."""
    return (
        '<defs><pattern id="hatch-lower-bound" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#ffffff"/><rect width="3" height="6" '
        'fill="currentColor"/></pattern></defs>'
    )


def _status_key(statuses: set[str], x: float, y: float) -> str:
    """A legend line for the statuses shown that are not exact."""
    shown = [s for s in ("noisy", "lower-bound") if s in statuses]
    if not shown:
        return ""
    marks = {
        "noisy": '<circle cx="{x}" cy="{y}" r="4.5" fill="#ffffff" stroke="#1d2733" '
        'stroke-width="1.5" stroke-dasharray="2 1.5"/>',
        "lower-bound": '<path d="M{x0},{y1} L{x},{y0} L{x1},{y1} z" fill="#ffffff" '
        'stroke="#1d2733" stroke-width="1.5"/>',
    }
    parts = [
        f'<g class="status-key"><text x="{x:.1f}" y="{y + 4:.1f}" font-size="11">Marks:</text>'
    ]
    cx = x + 52
    for s in ("exact", *shown):
        if s == "exact":
            parts.append(f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="4.5" fill="#1d2733"/>')
        else:
            parts.append(
                marks[s].format(
                    x=f"{cx:.1f}",
                    y=f"{y:.1f}",
                    x0=f"{cx - 5:.1f}",
                    x1=f"{cx + 5:.1f}",
                    y0=f"{y - 5:.1f}",
                    y1=f"{y + 4:.1f}",
                )
            )
        label = STATUS_LABELS[s]
        parts.append(
            f'<text x="{cx + 9:.1f}" y="{y + 4:.1f}" font-size="11">{escape(label)}</text>'
        )
        cx += 20 + 6.2 * len(label)
    parts.append("</g>")
    return "".join(parts)


def _point(x: float, y: float, colour: str, status: str, title: str) -> str:
    """One point of a line: solid for exact (and rounded), hollow and dashed
    for noisy, a hollow up-triangle ("at least") for a lower bound."""
    cls = f'class="point" data-status="{escape(status)}"'
    if status == "noisy":
        return (
            f'<circle {cls} cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="#ffffff" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="2 1.5">'
            f"<title>{escape(title)}</title></circle>"
        )
    if status == "lower-bound":
        return (
            f'<path {cls} d="M{x - 5:.1f},{y + 4:.1f} L{x:.1f},{y - 5:.1f} '
            f'L{x + 5:.1f},{y + 4:.1f} z" fill="#ffffff" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(title)}</title></path>'
        )
    return (
        f'<circle {cls} cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
        f"<title>{escape(title)}</title></circle>"
    )


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

    parts = [
        f'<svg class="chart" id="chart-flows" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg"><title>Encounters per week by nationality'
        "</title>"
    ]
    for v in ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e9ef"/>'
        )
        parts.append(
            f'<text class="tick y-tick" x="{left - 6}" y="{y(v) + 4:.1f}" '
            f'font-size="11" text-anchor="end">{v:,}</text>'
        )
    # Week labels carry the year (2024-W03); every k-th when they would crowd.
    every = max(1, math.ceil(58 * len(periods) / pw))
    for i, p in enumerate(periods):
        if i % every == 0:
            parts.append(
                f'<text class="tick x-tick" x="{x(i):.1f}" y="{top_m + ph + 18}" '
                f'font-size="11" text-anchor="middle">{escape(p)}</text>'
            )
    parts.append(
        f'<text class="axis-title" x="{left + pw / 2:.1f}" y="{height - 22}" '
        'font-size="12" text-anchor="middle">ISO week (year-Www)</text>'
    )
    parts.append(
        f'<text class="axis-title" transform="translate(18,{top_m + ph / 2:.1f}) '
        'rotate(-90)" font-size="12" text-anchor="middle">Encounters per week'
        "</text>"
    )
    seen: set[str] = set()
    for j, label in enumerate(ranked):
        colour = nationality_colour(j)
        points = " ".join(
            f"{x(i):.1f},{y(series[label].get(p, 0)):.1f}" for i, p in enumerate(periods)
        )
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" '
            f'stroke-width="2.5" points="{points}"><title>{escape(label)}</title>'
            "</polyline>"
        )
        for i, p in enumerate(periods):
            if p not in series[label]:
                continue
            count = series[label][p]
            status = combined_status(statuses[(label, p)])
            seen.add(status)
            ci = interval(label, p) if status == "noisy" else None
            if ci:
                parts.append(
                    f'<line class="interval" x1="{x(i):.1f}" x2="{x(i):.1f}" '
                    f'y1="{y(ci[0]):.1f}" y2="{y(ci[1]):.1f}" stroke="{colour}" '
                    'stroke-width="1.5"/>'
                )
            shown = f"≥ {count:,}" if status == "lower-bound" else f"{count:,}"
            extra = f" (95%: {ci[0]:,}–{ci[1]:,})" if ci else ""
            parts.append(
                _point(
                    x(i),
                    y(count),
                    colour,
                    status,
                    f"{label} {p}: {shown} encounters, {status}{extra}",
                )
            )
        ly = top_m + 18 * j + 8
        parts.append(
            f'<rect x="{left + pw + 16}" y="{ly - 8}" width="12" height="12" '
            f'fill="{colour}"/><text class="legend" x="{left + pw + 34}" '
            f'y="{ly + 2}" font-size="12">{escape(label)}</text>'
        )
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
    nodes = sorted(
        {leg["from"] for leg in legs} | {leg["to"] for leg in legs}, key=corridor_sort_key
    )
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
        arcs.append(
            f'<path class="leg" data-status="{escape(status)}" '
            f'd="M{a:.1f},{base:.1f} Q{mid:.1f},{ctrl:.1f} {end_x:.1f},{end_y:.1f}" '
            f'fill="none" stroke="#1b6ca8" stroke-opacity="0.55" '
            f'stroke-width="{w:.1f}"{dash} marker-end="url(#arrow)"><title>'
            f"{escape(leg['from'])} → {escape(leg['to'])}: {leg['count']:,} encounters "
            f"({escape(status)})</title></path>"
        )
        text = f"≥{leg['count']:,}" if status == "lower-bound" else f"{leg['count']:,}"
        label_y = base - lift - 4 if north else base + lift + 14
        wanted.append((mid, label_y, text, side))
    circles = [(px - 19, base - 19, px + 19, base + 19) for px in pos.values()]
    spots = place_labels(wanted, circles, size=13, step=15)
    labels = [
        f'<text class="leg-label" x="{lx:.1f}" y="{ly:.1f}" font-size="13" '
        f'text-anchor="middle">{escape(text)}</text>'
        for (lx, ly), (_, _, text, _) in zip(spots, wanted, strict=True)
    ]
    top_y = min([0.0, *(ly - 14 for _, ly in spots)])
    bottom_y = max([float(height), *(ly + 8 for _, ly in spots)]) + 22  # the axis title
    left_x = min([0.0, *(lx - 40 for lx, _ in spots)])
    right_x = max([float(width), *(lx + 40 for lx, _ in spots)])
    vw, vh = right_x - left_x, bottom_y - top_y
    parts = [
        f'<svg class="chart" id="chart-corridor" role="img" width="{vw:.0f}" '
        f'height="{vh:.0f}" viewBox="{left_x:.1f} {top_y:.1f} {vw:.1f} {vh:.1f}" '
        'xmlns="http://www.w3.org/2000/svg"><title>Route legs: previous country to '
        'reporting country, in encounters</title><defs><marker id="arrow" '
        'viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
        'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#0d3d61"/></marker></defs>',
        *arcs,
        *labels,
    ]
    for n, px in pos.items():
        parts.append(
            f'<circle cx="{px:.1f}" cy="{base:.1f}" r="17" fill="#ffffff" '
            f'stroke="{country_colour(n)}" stroke-width="2.5"/>'
            f'<text class="node-label" x="{px:.1f}" y="{base + 4:.1f}" font-size="12" '
            f'font-weight="bold" text-anchor="middle">{escape(n)}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{left_x + 8:.1f}" y="{bottom_y - 8:.1f}" '
        'font-size="11">Encounters per leg (arcs above run north, below south)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    totals: dict[str, int], width: int = 1100, bar: int = 26, statuses: dict[str, str] | None = None
) -> str:
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

    parts = [
        f'<svg class="chart" id="chart-countries" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg"><title>Encounters by reporting country'
        f"</title>{_status_defs()}"
    ]
    for v in ticks:
        parts.append(
            f'<line x1="{xv(v):.1f}" x2="{xv(v):.1f}" y1="6" y2="{axis_y}" '
            f'stroke="#e3e9ef"/><text class="tick x-tick" x="{xv(v):.1f}" '
            f'y="{axis_y + 14}" font-size="11" text-anchor="middle">{v:,}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{left + pw / 2:.1f}" y="{axis_y + 36}" '
        'font-size="12" text-anchor="middle">Encounters (all weeks shown)</text>'
    )
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
        parts.append(
            f'<text x="{left - 8}" y="{yy + bar * 0.7:.1f}" font-size="13" '
            f'text-anchor="end">{escape(country_name(c))}</text>'
            f'<rect class="bar" data-status="{escape(status)}" '
            f'x="{left}" y="{yy}" width="{w:.1f}" height="{bar}" {fill}>'
            f"<title>{escape(c)}: {shown} encounters ({escape(status)})</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{yy + bar * 0.7:.1f}" '
            f'font-size="12">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def country_statuses(cells: list[FlowCell]) -> dict[str, str]:
    """Each reporting country's status over the cells: its least precise part."""
    by_country: dict[str, list[str]] = defaultdict(list)
    for (_, country), n in country_totals(cells).items():
        by_country[country].append(n.status)
    return {country: combined_status(s) for country, s in by_country.items()}
