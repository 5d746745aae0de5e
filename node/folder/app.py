"""The folder as a Starlette application (docs/folder.md).

Who a request is: a signed session cookie (HMAC-SHA256 with the folder's
secret; HttpOnly, SameSite=Strict, Secure under TLS), or on ``/api/`` HTTP
Basic credentials (only over TLS or from loopback), or an anonymous visitor,
who is the ``public`` audience only when the Secretariat enabled it
(``corredor users public --enable``). Every page and API answer is computed
for that audience by ``node.folder.data``, i.e. by the exports' own functions.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.errors import ConfigError, CorredorError
from node.folder import data, pages
from node.folder.accounts import FolderDB, User
from node.folder.snapshot import PictureSnapshot
from node.model.codes import corridor_sort_key, is_iso3
from node.report.audience import Scope as ExportScope
from node.report.flows import FlowRow
from node.report.html import line_chart, report_html
from node.report.reference import rows_csv
from node.report.regional import admitted_cells
from node.report.sdmx import (
    NothingReleased,
    admitted_withdrawn,
    dataflow_structure,
    flows_sdmx_csv,
)
from node.report.sdmx_structure import structure_xml

log = logging.getLogger("corredor.folder")

MAX_BODY = 16 * 1024
MAX_QUERY = 2048
MAX_HEADERS = 16 * 1024
SESSION_MAX_AGE_S = 8 * 3600
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


class Throttle:
    """Failed sign-ins per user name and per client address in a sliding
    window; past the limit every attempt is refused (429) until the window
    moves on, whether the password is right or not."""

    def __init__(self, per_user: int = 5, per_client: int = 20, window_s: float = 900.0):
        self.per_user = per_user
        self.per_client = per_client
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _count(self, key: str, now: float) -> int:
        q = self._fails[key]
        while q and q[0] < now - self.window_s:
            q.popleft()
        return len(q)

    def blocked(self, name: str, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return (
                self._count("u:" + name, now) >= self.per_user
                or self._count("c:" + client, now) >= self.per_client
            )

    def failed(self, name: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._fails["u:" + name].append(now)
            self._fails["c:" + client].append(now)
            if len(self._fails) > 100_000:  # bound memory under a spray of names
                for key in [k for k, q in self._fails.items() if not q][:50_000]:
                    del self._fails[key]


# -- sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    user: str | None
    epoch: int
    nonce: str
    issued: float


class Sessions:
    """Signed cookies: base64url(JSON) '.' base64url(HMAC-SHA256)."""

    def __init__(self, secret: bytes, tls: bool) -> None:
        self._key = hashlib.sha256(b"corredor-folder-session|" + secret).digest()
        self._csrf_key = hashlib.sha256(b"corredor-folder-csrf|" + secret).digest()
        self.tls = tls
        self.cookie = "__Host-corredor" if tls else "corredor"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, session: Session) -> str:
        payload = json.dumps(
            {"u": session.user, "e": session.epoch, "n": session.nonce, "t": int(session.issued)},
            separators=(",", ":"),
        ).encode()
        return (
            base64.urlsafe_b64encode(payload).decode().rstrip("=")
            + "."
            + base64.urlsafe_b64encode(self._mac(payload)).decode().rstrip("=")
        )

    def decode(self, value: str | None) -> Session | None:
        if not value or len(value) > 1024 or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        try:
            doc = json.loads(payload)
            session = Session(doc["u"], int(doc["e"]), str(doc["n"]), float(doc["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - session.issued > SESSION_MAX_AGE_S:
            return None
        return session

    def csrf(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session | None, token: str) -> bool:
        return session is not None and hmac.compare_digest(self.csrf(session), token)

    def set(self, response: Response, session: Session) -> None:
        response.set_cookie(
            self.cookie,
            self.encode(session),
            max_age=SESSION_MAX_AGE_S,
            path="/",
            secure=self.tls,
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def fresh(user: User | None = None) -> Session:
        return Session(
            user.name if user else None,
            user.epoch if user else 0,
            secrets.token_urlsafe(18),
            time.time(),
        )


# -- the application ----------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    user: str | None  # None: an anonymous (public) visitor
    audience: str
    session: Session | None


class Folder:
    """The application's state: the picture snapshot, the users store, sessions."""

    def __init__(
        self,
        snapshot: PictureSnapshot,
        db: FolderDB,
        *,
        tls: bool = False,
        throttle: Throttle | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.db = db
        self.tls = tls
        self.sessions = Sessions(db.session_secret(), tls)
        self.throttle = throttle or Throttle()

    # -- who ----------------------------------------------------------------------------

    def client(self, request: Request) -> str:
        return request.client.host if request.client else "?"

    def basic_allowed(self, request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        try:
            return ipaddress.ip_address(self.client(request)).is_loopback
        except ValueError:
            return False

    def who(self, request: Request) -> Who | None:
        session = self.sessions.decode(request.cookies.get(self.sessions.cookie))
        if session is not None and session.user is not None:
            user = self.db.session_user(session.user, session.epoch)
            if user is not None:
                return Who(user.name, user.audience, session)
        if request.url.path.startswith("/api/"):
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("basic "):
                return self._basic(request, auth[6:].strip())
        if self.db.public_enabled:
            return Who(None, "public", session)
        return None

    def _basic(self, request: Request, token: str) -> Who | None:
        if not self.basic_allowed(request):
            raise HTTPException(401, "HTTP Basic is accepted only over TLS or from loopback")
        try:
            name, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise HTTPException(401, "malformed Basic credentials") from exc
        user = self.sign_in(request, name, password)
        return Who(user.name, user.audience, None)

    def sign_in(self, request: Request, name: str, password: str) -> User:
        """The user, or HTTPException 401/429; failures logged without the password."""
        client = self.client(request)
        # A password typed into the name field must not reach the logs: only a
        # name that is an account is written down.
        shown = name[:64] if name.isprintable() and self._is_account(name) else "(unknown user)"
        if self.throttle.blocked(name[:64], client):
            self.db.log_access(shown, None, "signin-throttled", request.url.path, 429, client)
            log.warning("sign-in throttled for user %r from %s", shown, client)
            raise HTTPException(429, "too many failed sign-ins: try again later")
        user = self.db.authenticate(name, password)
        if user is None:
            self.throttle.failed(name[:64], client)
            self.db.log_access(shown, None, "signin-failed", request.url.path, 401, client)
            log.warning("sign-in failed for user %r from %s", shown, client)
            raise HTTPException(401, "wrong user name or password")
        self.db.log_access(user.name, user.audience, "signin", request.url.path, 200, client)
        return user

    def _is_account(self, name: str) -> bool:
        try:
            self.db.user(name)
        except ConfigError:
            return False
        return True

    def require(self, request: Request) -> Who:
        who = self.who(request)
        if who is None:
            raise HTTPException(401, "sign in first")
        return who

    def log(self, request: Request, who: Who, action: str, status: int = 200) -> None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.db.log_access(who.user, who.audience, action, target, status, self.client(request))

    # -- helpers ------------------------------------------------------------------------

    def scope(self, who: Who) -> ExportScope:
        return ExportScope(who.audience)

    def page(
        self, request: Request, who: Who, title: str, body: str, status: int = 200
    ) -> HTMLResponse:
        csrf = self.sessions.csrf(who.session) if who.session and who.user else None
        self.log(request, who, "view", status)
        return HTMLResponse(
            pages.layout(title, body, user=who.user, audience=who.audience, csrf=csrf),
            status_code=status,
        )

    def cached(self, who: Who, key: tuple[Any, ...], compute: Callable[[Any], Any]) -> Any:
        return self.snapshot.cached((who.audience, *key), compute)


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


def _flow_filter(request: Request) -> data.FlowFilter:
    try:
        return data.FlowFilter.parse(_params(request))
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from exc


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if not body:
        return {}
    if (
        request.headers.get("content-type", "").split(";")[0].strip()
        != "application/x-www-form-urlencoded"
    ):
        raise HTTPException(415, "forms are application/x-www-form-urlencoded")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, "malformed form") from exc
    return {k: v[0] for k, v in parsed.items()}


def build_app(folder: Folder) -> Starlette:
    """The ASGI application over ``folder``."""
    f = folder

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

    def signin_form(request: Request) -> Response:
        session = f.sessions.decode(request.cookies.get(f.sessions.cookie)) or f.sessions.fresh()
        body = pages.layout(
            "Sign in",
            pages.signin_page(f.sessions.csrf(session), None, f.db.public_enabled),
            user=None,
            audience=None,
            csrf=None,
        )
        response = HTMLResponse(body)
        f.sessions.set(response, session)
        return response

    async def signin(request: Request) -> Response:
        session = f.sessions.decode(request.cookies.get(f.sessions.cookie))
        form = await _form(request)
        if not f.sessions.csrf_ok(session, form.get("csrf", "")):
            f.db.log_access(None, None, "csrf-refused", "/signin", 403, f.client(request))
            raise HTTPException(403, "the form's CSRF token does not match: reload the page")
        assert session is not None
        try:
            user = await run_in_threadpool(
                f.sign_in, request, form.get("username", ""), form.get("password", "")
            )
        except HTTPException as exc:
            body = pages.layout(
                "Sign in",
                pages.signin_page(f.sessions.csrf(session), str(exc.detail), f.db.public_enabled),
                user=None,
                audience=None,
                csrf=None,
            )
            return HTMLResponse(body, status_code=exc.status_code)
        response = RedirectResponse("/", status_code=303)
        f.sessions.set(response, f.sessions.fresh(user))  # a new nonce: no fixation
        return response

    async def signout(request: Request) -> Response:
        session = f.sessions.decode(request.cookies.get(f.sessions.cookie))
        form = await _form(request)
        if not f.sessions.csrf_ok(session, form.get("csrf", "")):
            f.db.log_access(None, None, "csrf-refused", "/signout", 403, f.client(request))
            raise HTTPException(403, "the form's CSRF token does not match: reload the page")
        assert session is not None
        f.db.log_access(session.user, None, "signout", "/signout", 303, f.client(request))
        response = RedirectResponse("/signin", status_code=303)
        f.sessions.set(response, f.sessions.fresh())
        return response

    def flows(request: Request) -> Response:
        who = page_who(request)
        if who is None:
            return signin_redirect()
        flt = _flow_filter(request)
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
        iso3 = _iso3(request.path_params["country"])
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
        iso3 = _iso3(request.path_params["country"])
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
        flt = _flow_filter(request)
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
            return ("api-flows", _flow_filter(request))
        return None

    def api_flows(request: Request, who: Who) -> Any:
        flt = _flow_filter(request)
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
        iso3 = _iso3(request.path_params["country"])
        scope = f.scope(who)
        return f.cached(
            who,
            ("api-releases", iso3),
            lambda store: _json_bytes(data.releases(store, scope, iso3)),
        )

    def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

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

    routes = [
        Route("/", home),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
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
        Route("/api/openapi.json", openapi),
        Route("/api/flows", api(api_flows)),
        Route("/api/corridors", api(api_view("corridors"))),
        Route("/api/alerts", api(api_view("alerts"))),
        Route("/api/trends", api(api_view("trends"))),
        Route("/api/reference/{kind}", api(api_reference)),
        Route("/api/releases/{country}", api(api_releases)),
    ]
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


@functools.cache
def _static_body(name: str) -> bytes:
    folder = resources.files("node.folder") / "static"
    for part in name.split("/"):
        folder = folder / part
    return folder.read_bytes()


def _iso3(value: str) -> str:
    upper = value.upper()
    if not is_iso3(upper):
        raise HTTPException(404, "not an ISO 3166 alpha-3 country code")
    return upper


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, default=str, separators=(",", ":")).encode("utf-8")


def _flows_csv(store: Any, scope: ExportScope, flt: data.FlowFilter) -> str:
    from dataclasses import fields

    doc = data.flows_json(store, scope, flt)
    rows = [{**r, "unit": doc["unit"]} for r in doc["flows"]]
    return rows_csv(rows, [x.name for x in fields(FlowRow)] + ["unit"])


def _flows_json(store: Any, scope: ExportScope, flt: data.FlowFilter) -> str:
    return json.dumps(data.flows_json(store, scope, flt), indent=2, default=str) + "\n"


def _sdmx(totals: bool) -> Callable[[Any, ExportScope, data.FlowFilter], str]:
    def make(store: Any, scope: ExportScope, flt: data.FlowFilter) -> str:
        view = "regional" if totals else "flows"
        cells = flt.cells(admitted_cells(store, scope, view))
        withdrawn = flt.cells(admitted_withdrawn(store, scope, view))
        if not cells and not withdrawn:
            # A file with a header only would read as a region with no encounters.
            raise NothingReleased(
                f"no flow statistics released to audience {scope.audience!r} match this "
                "selection: no SDMX file made"
            )
        return flows_sdmx_csv(cells, scope.audience, totals=totals, withdrawn=withdrawn)

    return make


DOWNLOADS: dict[str, tuple[str, Callable[[Any, ExportScope, data.FlowFilter], str]]] = {
    "flows.csv": ("text/csv; charset=utf-8", _flows_csv),
    "flows.json": ("application/json", _flows_json),
    "flows.sdmx.csv": ("text/csv; charset=utf-8", _sdmx(False)),
    "regional.sdmx.csv": ("text/csv; charset=utf-8", _sdmx(True)),
    "sdmx-structure.json": (
        "application/json",
        lambda store, scope, flt: json.dumps(dataflow_structure(), indent=2) + "\n",
    ),
    "sdmx-structure.xml": (
        "application/xml; charset=utf-8",
        lambda store, scope, flt: structure_xml(),
    ),
    "report.html": (
        "text/html; charset=utf-8",
        lambda store, scope, flt: report_html(store, scope),
    ),
}
_JS = "text/javascript; charset=utf-8"
STATIC: dict[str, str] = {
    "folder.css": "text/css; charset=utf-8",
    "folder.js": _JS,
    "vendor/vega.min.js": _JS,
    "vendor/vega-lite.min.js": _JS,
    "vendor/vega-embed.min.js": _JS,
    "vendor/vega-interpreter.js": _JS,
}


def _api_path(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "security": [{"session": []}, {"basic": []}],
            "responses": {
                "200": {
                    "description": "filtered for the caller's audience",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": {"description": "not signed in"},
                "403": {"description": "outside the caller's audience"},
            },
        }
    }


def _q(name: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": desc,
        "schema": {"type": "string"},
    }


def _p(name: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": desc,
        "schema": {"type": "string"},
    }


_FLOW_PARAMS = [
    _q("from", "first period, e.g. 2026-W03"),
    _q("to", "last period"),
    _q("country", "reporting country, ISO3"),
    _q("nationality", "ISO3"),
    _q("region", "UN M49 sub-region of the nationality"),
]
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Corredor online folder API",
        "version": "1",
        "description": "Every answer is filtered server-side for the caller's audience "
        "by the exports' admission rule (docs/folder.md).",
    },
    "components": {
        "securitySchemes": {
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": "corredor",
                "description": "set by signing in at /signin; named __Host-corredor under TLS",
            },
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "only over TLS or from loopback",
            },
        }
    },
    "paths": {
        "/api/flows": _api_path("flows: the fields of `report --format json`", _FLOW_PARAMS),
        "/api/corridors": _api_path("corridors: route legs and shared routes"),
        "/api/alerts": _api_path("alerts of the latest week"),
        "/api/trends": _api_path("weekly totals, change, top nationalities, origins"),
        "/api/reference/{kind}": _api_path(
            "a reference view: legislation, consulates, health, focal-points",
            [_p("kind", "legislation | consulates | health | focal-points")],
        ),
        "/api/releases/{country}": _api_path(
            "what a country released: latest revision of each subject", [_p("country", "ISO3")]
        ),
        "/healthz": {
            "get": {
                "summary": "200 once a snapshot of the picture is readable",
                "responses": {"200": {"description": "ok"}, "503": {"description": "no snapshot"}},
            }
        },
    },
}
