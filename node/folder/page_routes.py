"""The folder's pages, one handler each: signed in (or public) visitors see
what their audience admits, computed by ``node.folder.data`` over the cached
picture snapshot and drawn by ``node.folder.pages``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from node.errors import CorredorError
from node.folder import data, pages
from node.folder.auth import Folder, Who
from node.folder.downloads import DOWNLOADS
from node.folder.inputs import flow_filter, iso3_param
from node.model.codes import corridor_sort_key
from node.report.regional import admitted_cells
from node.report.sdmx import NothingReleased
from node.report.svg import line_chart


@functools.cache
def _static_body(name: str) -> bytes:
    folder = resources.files("node.folder") / "static"
    for part in name.split("/"):
        folder = folder / part
    return folder.read_bytes()


_JS = "text/javascript; charset=utf-8"
STATIC: dict[str, str] = {
    "folder.css": "text/css; charset=utf-8",
    "folder.js": _JS,
    "vendor/vega.min.js": _JS,
    "vendor/vega-lite.min.js": _JS,
    "vendor/vega-embed.min.js": _JS,
    "vendor/vega-interpreter.js": _JS,
}


def page_routes(f: Folder) -> list[Route]:
    """The folder's pages over ``f``, and its static files and health check."""

    def signin_redirect() -> Response:
        return RedirectResponse("/signin", status_code=303)

    def page_who(request: Request) -> Who | None:
        return f.who(request)

    # -- pages ------------------------------------------------------------------------

    def home(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        scope = f.scope(who)

        def compute(store: Any) -> tuple[dict[str, int], int]:
            return store.counts(), len(admitted_cells(store, scope, "flows"))

        counts, cells = f.cached(who, ("overview",), compute)
        return f.page(request, who, "Overview", pages.overview(who.audience, counts, cells))

    def flows(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        flt = flow_filter(request)
        scope = f.scope(who)

        def compute(store: Any) -> tuple[data.FlowPage, list[str], list[str]]:
            every = data.flow_page(store, scope, data.FlowFilter())
            page = every if flt == data.FlowFilter() else data.flow_page(store, scope, flt)
            return page, every.periods, sorted(every.countries, key=corridor_sort_key)

        page, periods, countries = f.cached(who, ("flows", flt), compute)
        return f.page(request, who, "Flows", pages.flows_page(page, flt, periods, countries))

    def stat(view: str, title: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            who = page_who(request)
            if who is None:
                return signin_redirect()
            scope = f.scope(who)
            doc = f.cached(who, ("view", view), lambda store: data.stat_view(store, scope, view))
            if view == "trends":
                chart = f.cached(
                    who,
                    ("trends-chart",),
                    lambda store: line_chart(admitted_cells(store, scope, "trends")),
                )
                body = pages.trends_page(doc, chart)
            elif view == "corridors":
                body = pages.corridors_page(doc)
            else:
                body = pages.alerts_page(doc)
            return f.page(request, who, title, body)

        return handler

    def reference(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        kind = request.path_params["kind"]
        if kind not in data.REFERENCE_KINDS:
            raise HTTPException(404, "no such view")
        scope = f.scope(who)
        doc = f.cached(who, ("ref", kind), lambda store: data.reference_json(store, scope, kind))
        titles = {
            "legislation": "Legislation matrix",
            "consulates": "Consular directory",
            "health": "Health advisories (current)",
            "focal-points": "Focal points",
        }
        return f.page(request, who, titles[kind], pages.reference_page(kind, doc["rows"]))

    def countries(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        found = f.cached(
            who,
            ("producers",),
            lambda store: sorted(
                {r["producer"] for r in store.restricted_events()}
                | {c["reporting_country"] for c in store.flow_cells()}
                | set(store.producers()),
                key=corridor_sort_key,
            ),
        )
        return f.page(request, who, "Countries", pages.countries_page(found))

    def country(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        iso3 = iso3_param(request.path_params["country"])
        scope = f.scope(who)
        doc = f.cached(who, ("releases", iso3), lambda store: data.releases(store, scope, iso3))
        return f.page(
            request, who, f"Folder of {iso3}", pages.country_page(doc, who.audience == iso3)
        )

    def history(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        subject = request.query_params.get("subject", "")
        if not subject or len(subject) > 300:
            raise HTTPException(400, "subject: give a subject")
        scope = f.scope(who)
        revs = f.cached(
            who, ("history", subject), lambda store: data.history(store, scope, subject)
        )
        return f.page(request, who, f"History of {subject}", pages.history_page(subject, revs))

    def received(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        iso3 = iso3_param(request.path_params["country"])
        if who.audience not in ("TS", iso3):
            f.log(request, who, "view", 403)
            raise HTTPException(403, "only the Secretariat and the member itself see this")
        doc = f.cached(who, ("received", iso3), lambda store: data.received(store, iso3))
        return f.page(request, who, f"Received from {iso3}", pages.received_page(doc))

    def intelligence(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        rows = f.cached(who, ("intel",), lambda store: data.intelligence(store, who.audience))
        return f.page(request, who, "Intelligence reports", pages.intelligence_page(rows))

    def downloads(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        return f.page(request, who, "Downloads", pages.downloads_page(who.audience))

    def download(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            raise HTTPException(401, "sign in first")
        name = request.path_params["name"]
        if name not in DOWNLOADS:
            raise HTTPException(404, "no such download")
        flt = flow_filter(request)
        scope = f.scope(who)
        ctype, make = DOWNLOADS[name]
        try:
            text = f.cached(who, ("download", name, flt), lambda store: make(store, scope, flt))
        except NothingReleased as exc:
            # 422: understood, but there is nothing to make a file of (a 404's
            # page would hide the reason).
            f.log(request, who, "download", 422)
            raise HTTPException(422, str(exc)) from exc
        f.log(request, who, "download")
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        return Response(
            text.encode("utf-8"),
            media_type=ctype,
            headers={
                "content-disposition": f'attachment; filename="corredor-{who.audience}-{stamp}-'
                f'{name}"'
            },
        )

    def access_log(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        if who.audience != "TS":
            f.log(request, who, "view", 403)
            raise HTTPException(403, "the access log is the Secretariat's")
        user = request.query_params.get("user") or None
        return f.page(
            request,
            who,
            "Access log",
            pages.access_log_page(f.db.access_log(limit=1000, user=user)),
        )

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise HTTPException(404, "not found")
        body = _static_body(name)  # only the names in STATIC: no path from the request
        return Response(
            body, media_type=STATIC[name], headers={"cache-control": "public, max-age=3600"}
        )

    def healthz(request: Request) -> Response:
        try:
            f.snapshot.refresh()
        except CorredorError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=503)
        return PlainTextResponse(f"ok snapshot_age_s={f.snapshot.age_s or 0.0:.1f}\n")

    # -- API --------------------------------------------------------------------------

    return [
        Route("/", home),
        Route("/flows", flows),
        Route("/trends", stat("trends", "Trends")),
        Route("/corridors", stat("corridors", "Corridors")),
        Route("/alerts", stat("alerts", "Alerts")),
        Route("/reference/{kind}", reference),
        Route("/countries", countries),
        Route("/countries/{country}", country),
        Route("/history", history),
        Route("/received/{country}", received),
        Route("/intelligence", intelligence),
        Route("/downloads", downloads),
        Route("/download/{name}", download),
        Route("/access-log", access_log),
        Route("/static/{name:path}", static),
        Route("/healthz", healthz),
    ]
