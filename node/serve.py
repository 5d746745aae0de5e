"""``corredor serve``: the aggregator's regional picture over HTTP, read-only.

A stdlib ``ThreadingHTTPServer`` answering GET and HEAD only:

    /               a small index of what is served
    /picture.json   the flows picture (``report --format json``)
    /flows.csv      the flows picture as CSV (``report --format csv``)
    /healthz        200 with the snapshot's age once a snapshot exists, else 503

Why not open the live store: a second process opening the aggregator's SQLite
file through ``PictureStore`` would create tables and change journal settings.
Instead the server copies the store with SQLite's online backup API from a
read-only connection (``node.backup.snapshot_store``) into a private temporary
file at most every ``refresh_s`` seconds, and reads that. The live store is
never written by this process, and a slow reader never holds the aggregator's
writer back.

Why not nginx: the picture is in SQLite, not in files; a web server in front
would need a second process to render files anyway. This process is that
renderer and the server in one, in the image the Secretariat already runs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import asdict, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from node.backup import check_store, snapshot_store
from node.config import Home
from node.errors import ConfigError, CorredorError
from node.report.flows import FlowRow, flow_rows, picture_json
from node.store.picture import PictureStore

log = logging.getLogger("corredor.serve")

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>Corredor: regional picture</title></head>
<body><h1>Corredor: regional picture</h1>
<ul><li><a href="picture.json">picture.json</a></li><li><a href="flows.csv">flows.csv</a></li>
<li><a href="healthz">healthz</a></li></ul></body></html>
"""


class PictureSnapshots:
    """Rendered documents from a private copy of the aggregator's store."""

    def __init__(self, store_path: Path, refresh_s: float = 10.0) -> None:
        if not store_path.is_file():
            raise ConfigError(f"no aggregator store at {store_path}")
        self.store_path = store_path
        self.refresh_s = refresh_s
        self._dir = tempfile.TemporaryDirectory(prefix="corredor-serve-")
        self._lock = threading.Lock()
        self._taken_at = 0.0
        self._docs: dict[str, bytes] = {}

    def close(self) -> None:
        self._dir.cleanup()

    def document(self, name: str) -> bytes:
        with self._lock:
            if not self._docs or time.monotonic() - self._taken_at >= self.refresh_s:
                self._docs = self._render()
                self._taken_at = time.monotonic()
            return self._docs[name]

    @property
    def age_s(self) -> float | None:
        return None if not self._docs else time.monotonic() - self._taken_at

    def _render(self) -> dict[str, bytes]:
        copy = Path(self._dir.name) / "picture.db"
        copy.unlink(missing_ok=True)
        snapshot_read_only(self.store_path, copy)
        with PictureStore(copy) as store:
            picture = picture_json(store)
            rows = flow_rows(store)
        out = io.StringIO()
        columns = [f.name for f in fields(FlowRow)]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
        return {
            "picture.json": json.dumps(picture, indent=2, default=str).encode("utf-8"),
            "flows.csv": out.getvalue().encode("utf-8"),
        }


def _identity(path: Path) -> tuple[int, int, int, int]:
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def snapshot_read_only(source: Path, dest: Path) -> None:
    """Copy the aggregator's store into ``dest`` even when it sits on a
    read-only mount (the compose stack's report service).

    Normally through ``snapshot_store``: a read-only connection that reads the
    WAL the running aggregator keeps beside the store. When the aggregator is
    stopped, it has closed the store cleanly and removed the -wal and -shm
    files, and SQLite cannot open a WAL store read-only without them on a
    directory it cannot write. Then no writer has the store open, so the file
    alone is the whole store: copy it as immutable, and keep the copy only if
    no writer appeared meanwhile (no -wal, the file unchanged).
    """
    wal = source.with_name(source.name + "-wal")
    try:
        snapshot_store(source, dest)
        return
    except ConfigError:
        if wal.exists() or os.access(source.parent, os.W_OK):
            raise
    dest.unlink(missing_ok=True)
    before = _identity(source)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro&immutable=1", uri=True)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot copy {source} read-only: {exc}") from exc
    if wal.exists() or _identity(source) != before:
        dest.unlink(missing_ok=True)
        raise ConfigError(f"{source} changed while it was copied; the next request retries")
    check_store(dest)


_ROUTES = {
    "/picture.json": ("picture.json", "application/json"),
    "/flows.csv": ("flows.csv", "text/csv; charset=utf-8"),
}


def make_handler(snapshots: PictureSnapshots) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "corredor"

        def _send(self, status: HTTPStatus, body: bytes, ctype: str, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _get(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, INDEX.encode(), "text/html; charset=utf-8", head)
            elif path == "/healthz":
                try:
                    snapshots.document("picture.json")
                except CorredorError as exc:
                    self._send(
                        HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}\n".encode(), "text/plain", head
                    )
                    return
                age = snapshots.age_s or 0.0
                self._send(
                    HTTPStatus.OK, f"ok snapshot_age_s={age:.1f}\n".encode(), "text/plain", head
                )
            elif path in _ROUTES:
                name, ctype = _ROUTES[path]
                try:
                    body = snapshots.document(name)
                except CorredorError as exc:
                    log.warning("snapshot failed: %s", exc)
                    self._send(
                        HTTPStatus.SERVICE_UNAVAILABLE, b"picture unavailable\n", "text/plain", head
                    )
                    return
                self._send(HTTPStatus.OK, body, ctype, head)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head)

        def do_GET(self) -> None:
            self._get(head=False)

        def do_HEAD(self) -> None:
            self._get(head=True)

        def _refuse(self) -> None:
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


def make_server(
    home: Home, address: str = "127.0.0.1", port: int = 8080, refresh_s: float = 10.0
) -> tuple[ThreadingHTTPServer, PictureSnapshots]:
    """The server, not yet serving (call ``serve_forever``); close both after."""
    if not home.is_aggregator:
        raise ConfigError(f"{home.path} is a member node; serve runs at the aggregator")
    snapshots = PictureSnapshots(home.store_path, refresh_s)
    try:
        server = ThreadingHTTPServer((address, port), make_handler(snapshots))
    except OSError as exc:
        snapshots.close()
        raise ConfigError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from exc
    server.daemon_threads = True
    return server, snapshots
