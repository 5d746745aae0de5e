"""``corredor serve``: the online folder (``node.folder``) on uvicorn.

The process reads a private snapshot of the aggregator's picture
(``node.folder.snapshot``: the live store is only ever opened ``mode=ro`` to
copy it), keeps users, settings and the access log in the folder's own file
(``node.folder.accounts``, ``<home>/folder.db`` or ``--folder-db``) and opens
no key: a compose service can mount the Secretariat's store read-only and
nothing else of the home (docker-compose.yml).

Why uvicorn, not the stdlib server it replaces: sessions, TLS, request limits,
keep-alive and concurrency from a maintained server rather than our own loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from node.config import ENV_FOLDER_DB, Home
from node.errors import ConfigError
from node.folder.accounts import FolderDB, default_path
from node.folder.app import build_app
from node.folder.auth import Folder
from node.folder.session import Throttle
from node.folder.snapshot import PictureSnapshot

log = logging.getLogger("corredor.serve")


def folder_db_path(home_path: Path, given: Path | None = None) -> Path:
    """``given``, else ``$CORREDOR_FOLDER_DB``, else ``<home>/folder.db``."""
    if given is not None:
        return given
    env = os.environ.get(ENV_FOLDER_DB)
    return Path(env) if env else default_path(home_path)


@dataclass
class FolderServer:
    """A configured uvicorn server over the folder; ``run`` blocks, ``start``
    runs it in a thread (tests), ``stop`` ends either."""

    server: uvicorn.Server
    folder: Folder
    thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        for s in self.server.servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    def run(self) -> None:
        self.server.run()

    def start(self, timeout_s: float = 30.0) -> None:
        self.thread = threading.Thread(target=self.server.run, name="folder", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise ConfigError("the folder did not start (see the log)")

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.close()

    def close(self) -> None:
        self.folder.db.close()
        self.folder.snapshot.close()


def make_server(
    home: Home,
    address: str = "127.0.0.1",
    port: int = 8080,
    refresh_s: float = 10.0,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    folder_db: Path | None = None,
    throttle: Throttle | None = None,
) -> FolderServer:
    """The folder's server, not yet serving."""
    if not home.is_aggregator:
        raise ConfigError(f"{home.path} is a member node; serve runs at the aggregator")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    for f in (tls_cert, tls_key):
        if f is not None and not f.is_file():
            raise ConfigError(f"no such file: {f}")
    snapshot = PictureSnapshot(home.store_path, refresh_s)
    try:
        db = FolderDB(folder_db_path(home.path, folder_db))
    except Exception:
        snapshot.close()
        raise
    folder = Folder(snapshot, db, tls=tls_cert is not None, throttle=throttle)
    config = uvicorn.Config(
        build_app(folder),
        host=address,
        port=port,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        log_config=None,
        access_log=False,  # the folder keeps its own access log (who, not just where)
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,  # request line and headers
        limit_concurrency=500,
    )
    return FolderServer(uvicorn.Server(config), folder)
