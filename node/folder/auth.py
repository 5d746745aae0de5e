"""Who a request is, and the folder's state (docs/folder.md).

A signed session cookie, or on ``/api/`` HTTP Basic credentials (only over TLS
or from loopback), or an anonymous visitor, who is the ``public`` audience
only when the Secretariat enabled it (``corredor users public --enable``)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from node.errors import ConfigError
from node.folder import pages
from node.folder.accounts import FolderDB, User
from node.folder.session import Session, Sessions, Throttle
from node.folder.snapshot import PictureSnapshot
from node.report.audience import Scope as ExportScope

log = logging.getLogger("corredor.folder")


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
