"""The folder's Vega-Lite chart specifications: counts by reporting country,
by nationality and by week, each mark shaped and marked by the status of
its number, from the same admitted cells as the tables beside them."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from node.model.codes import COUNTRY_NAMES, corridor_sort_key
from node.report.charts import (
    REGION_COLOUR,
    STATUSES,
    cell_status,
    combined_status,
    country_colour,
    nationality_colour,
)
from node.report.regional import nationality_answers, weekly

#: Every chart fills its container's width (a narrow window too) and is drawn
#: within it: nothing is clipped.
#: Legends go below the plot, in rows, so a narrow window keeps the plot's width.
_FIT: dict[str, Any] = {
    "width": "container",
    "autosize": {"type": "fit-x", "contains": "padding"},
    "config": {"legend": {"orient": "bottom", "direction": "horizontal", "columns": 5}},
}
#: Round ticks (about six) on an integer count axis.
_COUNT_AXIS: dict[str, Any] = {
    "format": ",d",
    "tickMinStep": 1,
    "tickCount": 6,
    "labelOverlap": True,
}
#: Week labels carry their year (2024-W03); crowded ones are thinned, not overlapped.
_WEEK_AXIS: dict[str, Any] = {"labelOverlap": "parity", "labelAngle": -40}
#: The x and y of a weekly line chart: ISO weeks, and encounters per week.
_WEEK_X: dict[str, Any] = {
    "field": "period",
    "type": "ordinal",
    "title": "ISO week (year-Www)",
    "axis": _WEEK_AXIS,
}
_WEEKLY_COUNT_Y: dict[str, Any] = {
    "field": "count",
    "type": "quantitative",
    "title": "Encounters per week",
    "scale": {"nice": True, "zero": True},
    "axis": _COUNT_AXIS,
}


def _status_encoding(
    present: set[str], looks: dict[str, Any], kind: str = "nominal"
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
_SHAPES = {
    "exact": "circle",
    "rounded": "circle",
    "noisy": "diamond",
    "lower-bound": "triangle-up",
    "suppressed": "cross",
}


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
                {
                    "country": c,
                    "name": COUNTRY_NAMES.get(c, c),
                    "count": totals[c],
                    "status": statuses.get(c, "exact"),
                    "unit": "encounters",
                }
                for c in order
            ]
        },
        "mark": {"type": "bar", "tooltip": True, "strokeWidth": 2},
        "encoding": {
            "y": {
                "field": "country",
                "type": "nominal",
                "sort": order,
                "title": "Reporting country",
            },
            "x": {
                "field": "count",
                "type": "quantitative",
                "title": "Encounters",
                "scale": {"nice": True, "zero": True},
                "axis": _COUNT_AXIS,
            },
            "color": {
                "field": "country",
                "type": "nominal",
                "legend": None,
                "scale": {"domain": order, "range": [country_colour(c) for c in order]},
            },
            "stroke": {
                "field": "country",
                "type": "nominal",
                "legend": None,
                "scale": {"domain": order, "range": [country_colour(c) for c in order]},
            },
            # Exact and rounded solid; noisy nearly hollow, dashed; a lower bound
            # pale, dotted (the legend says which is which).
            "fillOpacity": _status_encoding(
                present,
                {"exact": 1, "rounded": 1, "noisy": 0.12, "lower-bound": 0.35, "suppressed": 0},
                "ordinal",
            ),
            "strokeDash": {
                **_status_encoding(
                    present,
                    {
                        "exact": [1, 0],
                        "rounded": [1, 0],
                        "noisy": [5, 3],
                        "lower-bound": [2, 2],
                        "suppressed": [1, 0],
                    },
                    "ordinal",
                ),
                "legend": None,
            },
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
        {
            "period": p,
            "nationality": label,
            "count": n,
            "status": combined_status(parts[(p, label)]),
            "unit": "encounters",
        }
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
            "color": {
                "field": "nationality",
                "type": "nominal",
                "title": "Nationality",
                "scale": {
                    "domain": shown,
                    "range": [nationality_colour(i) for i in range(len(shown))],
                },
            },
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
            "color": {
                "field": "series",
                "type": "nominal",
                "title": "Series",
                "scale": {"domain": domain, "range": [REGION_COLOUR, *map(country_colour, names)]},
            },
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
