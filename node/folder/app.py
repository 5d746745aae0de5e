"""The folder as a Starlette application (docs/folder.md).

Who a request is: a signed session cookie (HMAC-SHA256 with the folder's
secret; HttpOnly, SameSite=Strict, Secure under TLS), or on ``/api/`` HTTP
Basic credentials (only over TLS or from loopback), or an anonymous visitor,
who is the ``public`` audience only when the Secretariat enabled it
(``corredor users public --enable``). Every page and API answer is computed
for that audience by ``node.folder.data``, i.e. by the exports' own functions.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from node.folder import pages
from node.folder.api_routes import api_routes
from node.folder.auth import Folder
from node.folder.middleware import Limits
from node.folder.page_routes import page_routes
from node.folder.signin_routes import signin_routes

log = logging.getLogger("corredor.folder")


def build_app(folder: Folder) -> Starlette:
    """The ASGI application over ``folder``."""
    f = folder

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, "not found")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(
            request,
            exc.status_code,
            str(exc.detail),
            basic=exc.status_code == 401 and f.basic_allowed(request),
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("folder error on %s: %s", request.url.path, type(exc).__name__)
        return _error(request, 500, "internal error")

    overview, *rest = page_routes(f)
    routes = [overview, *signin_routes(f), *rest, *api_routes(f)]
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, HTTPException: http_error, Exception: server_error},
    )
    app.add_middleware(Limits, tls=folder.tls)
    return app


def _error(request: Request, status: int, detail: str, basic: bool = False) -> Response:
    headers = {"www-authenticate": 'Basic realm="corredor", charset="UTF-8"'} if basic else None
    if request.url.path.startswith("/api/") or request.url.path.startswith("/download/"):
        return JSONResponse(
            {"error": detail, "status": status}, status_code=status, headers=headers
        )
    return HTMLResponse(
        pages.layout(
            "Error",
            f"<p class='error' id='error'>{pages.e(detail)}</p><p><a href='/'>Back</a></p>",
            user=None,
            audience=None,
            csrf=None,
        ),
        status_code=status,
        headers=headers,
    )
