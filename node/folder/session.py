"""Signed session cookies and sign-in throttling (docs/folder.md).

A session is base64url(JSON) '.' base64url(HMAC-SHA256 with the folder's
secret); the cookie is HttpOnly, SameSite=Strict, and Secure under TLS. The
CSRF token of a form is an HMAC of the session's nonce."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from starlette.responses import Response

from node.folder.accounts import User

SESSION_MAX_AGE_S = 8 * 3600


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
