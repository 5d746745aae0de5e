"""Limits and security headers for every request, as plain ASGI middleware
around the folder's application (docs/folder.md)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 16 * 1024
MAX_QUERY = 2048
MAX_HEADERS = 16 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


# -- limits and headers (plain ASGI middleware) -----------------------------------------


class Limits:
    """Refuse oversized requests before any handler reads them: a body over
    ``MAX_BODY`` (by Content-Length, or counted as it streams) gets 413, a
    query string over ``MAX_QUERY`` 414, headers over ``MAX_HEADERS`` 431 (the
    server's own parser limits the request line and headers too). Adds the security headers to every
    response."""

    def __init__(self, app: ASGIApp, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers") or []
        if sum(len(k) + len(v) for k, v in raw_headers) > MAX_HEADERS:
            await self._plain(send, 431, b"request headers too large\n")
            return
        headers = dict(raw_headers)
        length = headers.get(b"content-length")
        too_big = False
        if length is not None:
            try:
                too_big = int(length) > MAX_BODY
            except ValueError:
                too_big = True
        if too_big:
            await self._plain(send, 413, b"request too large\n")
            return
        if len(scope.get("query_string") or b"") > MAX_QUERY:
            await self._plain(send, 414, b"query too long\n")
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    raise HTTPException(413, "request too large")
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                ]
                present = {k.lower() for k, _ in message.get("headers", [])}
                if b"cache-control" not in present:  # static files say their own
                    extra.append((b"cache-control", b"no-store"))
                if self.tls:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, limited_receive, with_headers)

    async def _plain(self, send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# -- sign-in throttling ----------------------------------------------------------------
