"""The frame every folder page shares, and its small parts: escaping, the
navigation, the chart scripts, tables and notes. Every value is escaped; no
page carries a script or an inline style (the CSP forbids both)."""

from __future__ import annotations

import html
import json
from typing import Any


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


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
