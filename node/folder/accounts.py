"""The folder's own SQLite file: users, home settings, the access log and the
session secret.

It is ``<home>/folder.db`` unless ``--folder-db`` (or ``CORREDOR_FOLDER_DB``)
names another file: a separate file from the picture so that the folder can
record sign-ins and accesses while the picture stays read-only to it (compose
mounts the Secretariat's home read-only and this file's directory writable).

Passwords are Argon2id hashes (``argon2-cffi``, its default cost: 64 MiB, three
passes). A password never reaches a log or an error; a user's ``epoch`` goes
up on ``disable`` and ``reset`` so that every session signed for the old epoch
stops working at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from node.errors import ConfigError, StoreError
from node.report.audience import audience_name

log = logging.getLogger("corredor.folder")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS folder_user (
    name        TEXT PRIMARY KEY,
    audience    TEXT NOT NULL,
    hash        TEXT NOT NULL,       -- Argon2id, PHC string
    epoch       INTEGER NOT NULL,    -- sessions of an older epoch are void
    disabled_at REAL,
    created_at  REAL NOT NULL,
    changed_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS folder_setting (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Who viewed or downloaded what, when; sign-ins and refusals too. Never a
-- password, never a number of the picture.
CREATE TABLE IF NOT EXISTS access_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       REAL NOT NULL,
    user     TEXT,                   -- NULL: an anonymous (public) visitor
    audience TEXT,
    action   TEXT NOT NULL,          -- view, download, api, signin, signin-failed, ...
    target   TEXT NOT NULL,
    status   INTEGER NOT NULL,
    client   TEXT
);
CREATE INDEX IF NOT EXISTS access_log_at ON access_log(at);
"""

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
PUBLIC_SETTING = "public_enabled"
_SECRET_SETTING = "session_secret"
_HASHER = PasswordHasher()
# Verifying a hash takes 64 MiB for a moment: at most this many at once, so a
# flood of sign-ins cannot take the host's memory.
_VERIFY_SLOTS = threading.BoundedSemaphore(4)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for an unknown name (made once, on first use)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    name: str
    audience: str
    epoch: int
    disabled: bool
    created_at: float
    changed_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "audience": self.audience,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "changed_at": self.changed_at,
        }


def user_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ConfigError(
            f"bad user name {value[:70]!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


def default_path(home_path: Path) -> Path:
    return home_path / "folder.db"


class FolderDB:
    """Users, settings and the access log in one SQLite file (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the folder's users store: {exc}") from exc
        self._lock = threading.Lock()
        self._log_queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=100_000)
        self._writer: threading.Thread | None = None

    def close(self) -> None:
        if self._writer is not None:
            self._log_queue.put(None)
            self._writer.join(timeout=10)
            self._writer = None
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FolderDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    # -- users ------------------------------------------------------------------------

    def add_user(self, name: str, audience: str, password: str) -> User:
        name, audience = user_name(name), audience_name(audience)
        digest = _HASHER.hash(check_password(password))
        now = time.time()
        try:
            self._exec(
                "INSERT INTO folder_user (name, audience, hash, epoch, created_at, changed_at) "
                "VALUES (?,?,?,?,?,?)",
                (name, audience, digest, 1, now, now),
            )
        except StoreError as exc:
            if "UNIQUE" in str(exc):
                raise ConfigError(
                    f"user {name} already exists (users reset changes the password)"
                ) from exc
            raise
        return self.user(name)

    def user(self, name: str) -> User:
        rows = self._exec(
            "SELECT name, audience, epoch, disabled_at, created_at, changed_at FROM folder_user "
            "WHERE name = ?",
            (name,),
        )
        if not rows:
            raise ConfigError(f"no user {name[:70]!r}")
        n, aud, epoch, disabled, created, changed = rows[0]
        return User(n, aud, int(epoch), disabled is not None, created, changed)

    def users(self) -> list[User]:
        return [
            User(n, aud, int(epoch), disabled is not None, created, changed)
            for n, aud, epoch, disabled, created, changed in self._exec(
                "SELECT name, audience, epoch, disabled_at, created_at, changed_at "
                "FROM folder_user ORDER BY name"
            )
        ]

    def disable(self, name: str) -> User:
        self.user(name)
        self._exec(
            "UPDATE folder_user SET disabled_at = ?, epoch = epoch + 1, changed_at = ? "
            "WHERE name = ?",
            (time.time(), time.time(), name),
        )
        return self.user(name)

    def enable(self, name: str) -> User:
        self.user(name)
        self._exec(
            "UPDATE folder_user SET disabled_at = NULL, changed_at = ? WHERE name = ?",
            (time.time(), name),
        )
        return self.user(name)

    def reset(self, name: str, password: str) -> User:
        """A new password; every session of the user ends."""
        self.user(name)
        digest = _HASHER.hash(check_password(password))
        self._exec(
            "UPDATE folder_user SET hash = ?, epoch = epoch + 1, changed_at = ? WHERE name = ?",
            (digest, time.time(), name),
        )
        return self.user(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the name and password match and the user is enabled.
        An unknown name costs one hash as well, so timing tells nothing."""
        if len(password) > MAX_PASSWORD or not NAME_RE.fullmatch(name):
            return None
        rows = self._exec("SELECT hash FROM folder_user WHERE name = ?", (name,))
        digest = rows[0][0] if rows else _dummy_hash()
        with _VERIFY_SLOTS:
            try:
                ok: bool = _HASHER.verify(digest, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
        if not ok or not rows:
            return None
        user = self.user(name)
        if user.disabled:
            return None
        if _HASHER.check_needs_rehash(digest):
            self._exec(
                "UPDATE folder_user SET hash = ? WHERE name = ?", (_HASHER.hash(password), name)
            )
        return user

    def session_user(self, name: str, epoch: int) -> User | None:
        """The user a session names, while it is enabled and the epoch current."""
        try:
            user = self.user(name)
        except ConfigError:
            return None
        if user.disabled or user.epoch != epoch:
            return None
        return user

    # -- settings ---------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        rows = self._exec("SELECT value FROM folder_setting WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO folder_setting (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def public_enabled(self) -> bool:
        return self.setting(PUBLIC_SETTING) == "1"

    def session_secret(self) -> bytes:
        """The HMAC key of session cookies, made on first use (32 random bytes)."""
        value = self.setting(_SECRET_SETTING)
        if value is None:
            self._exec(
                "INSERT OR IGNORE INTO folder_setting (key, value) VALUES (?, ?)",
                (_SECRET_SETTING, secrets.token_hex(32)),
            )
            value = self.setting(_SECRET_SETTING)
        assert value is not None
        return bytes.fromhex(value)

    # -- access log -------------------------------------------------------------------

    def log_access(
        self,
        user: str | None,
        audience: str | None,
        action: str,
        target: str,
        status: int,
        client: str | None,
    ) -> None:
        """Queue one access-log row; a writer thread commits them in batches."""
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_log, name="folder-access-log", daemon=True
                    )
                    self._writer.start()
        row = (time.time(), user, audience, action[:40], target[:300], status, (client or "")[:80])
        # A stalled disk must not stall the answers: past 100,000 queued rows, drop.
        with contextlib.suppress(queue.Full):
            self._log_queue.put_nowait(row)

    def _write_log(self) -> None:
        while True:
            item = self._log_queue.get()
            batch = [] if item is None else [item]
            stop = item is None
            while not stop:
                try:
                    more = self._log_queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                with self._lock:
                    try:
                        self._conn.executemany(
                            "INSERT INTO access_log (at, user, audience, action, target, "
                            "status, client) VALUES (?,?,?,?,?,?,?)",
                            batch,
                        )
                    except sqlite3.Error as exc:
                        log.error("access log not written (%d rows): %s", len(batch), exc)
            if stop:
                return

    def flush_log(self, timeout_s: float = 5.0) -> None:
        """Wait until queued rows are written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while not self._log_queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            pass

    def access_log(
        self, limit: int = 500, user: str | None = None, action: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = [], []
        if user:
            where.append("user = ?")
            args.append(user)
        if action:
            where.append("action = ?")
            args.append(action)
        sql = "SELECT at, user, audience, action, target, status, client FROM access_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self._exec(sql, (*args, limit))
        keys = ("at", "user", "audience", "action", "target", "status", "client")
        return [dict(zip(keys, r, strict=True)) for r in rows]
