"""The folder's JSON API (``/api/``), described by ``node.folder.openapi``:
signed in by session cookie or HTTP Basic, answers cached per snapshot and
audience."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.folder import data
from node.folder.auth import Folder, Who
from node.folder.inputs import flow_filter, iso3_param
from node.folder.openapi import OPENAPI


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, default=str, separators=(",", ":")).encode("utf-8")


def api_routes(f: Folder) -> list[Route]:
    """The JSON API over ``f``: every answer filtered for the caller's audience."""

    def api(compute: Callable[[Request, Who], Any]) -> Callable[[Request], Awaitable[Response]]:
        """An API route: JSON bytes cached per snapshot and audience. A signed-in
        request whose answer is cached is served on the event loop; the rest
        (Basic credentials: an Argon2 hash; a computation) on a worker thread."""

        def answer(request: Request, who: Who | None) -> Response:
            who = who or f.require(request)
            body = compute(request, who)
            f.log(request, who, "api")
            return Response(body, media_type="application/json")

        async def handler(request: Request) -> Response:
            if "authorization" not in request.headers:
                who = f.require(request)
                key = api_key(request)
                body = f.snapshot.peek((who.audience, *key)) if key is not None else None
                if body is not None:
                    f.log(request, who, "api")
                    return Response(body, media_type="application/json")
                return await run_in_threadpool(answer, request, who)
            return await run_in_threadpool(answer, request, None)

        return handler

    def api_key(request: Request) -> tuple[Any, ...] | None:
        """The cache key of an API request, when it is a cheap one to work out."""
        if request.url.path == "/api/flows":
            return ("api-flows", flow_filter(request))
        return None

    def api_flows(request: Request, who: Who) -> Any:
        flt = flow_filter(request)
        scope = f.scope(who)
        return f.cached(
            who, ("api-flows", flt), lambda store: _json_bytes(data.flows_json(store, scope, flt))
        )

    def api_view(view: str) -> Callable[[Request, Who], Any]:
        def compute(request: Request, who: Who) -> Any:
            scope = f.scope(who)
            return f.cached(
                who,
                ("api-view", view),
                lambda store: _json_bytes(data.stat_view(store, scope, view)),
            )

        return compute

    def api_reference(request: Request, who: Who) -> Any:
        kind = request.path_params["kind"]
        if kind not in data.REFERENCE_KINDS:
            raise HTTPException(
                404, f"no reference view {kind[:40]!r}: one of {', '.join(data.REFERENCE_KINDS)}"
            )
        scope = f.scope(who)
        return f.cached(
            who,
            ("api-ref", kind),
            lambda store: _json_bytes(data.reference_json(store, scope, kind)),
        )

    def api_releases(request: Request, who: Who) -> Any:
        iso3 = iso3_param(request.path_params["country"])
        scope = f.scope(who)
        return f.cached(
            who,
            ("api-releases", iso3),
            lambda store: _json_bytes(data.releases(store, scope, iso3)),
        )

    def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    return [
        Route("/api/openapi.json", openapi),
        Route("/api/flows", api(api_flows)),
        Route("/api/corridors", api(api_view("corridors"))),
        Route("/api/alerts", api(api_view("alerts"))),
        Route("/api/trends", api(api_view("trends"))),
        Route("/api/reference/{kind}", api(api_reference)),
        Route("/api/releases/{country}", api(api_releases)),
    ]
