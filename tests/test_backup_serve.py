"""Online backup and restore of a home, and `corredor serve` (the folder) reading
the picture read-only; the folder itself: test_folder.py."""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import Home
from node.errors import ConfigError
from node.home import event_codec, open_home, regional_floor
from node.member.drain import drain_outbox
from node.operator.backup import backup_home, restore_home
from node.operator.serve import make_server
from node.operator.status import home_status
from node.store import audit_check
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data
from tests.patience import PATIENCE_S


def _outbox_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        conn.close()


def test_backup_while_a_writer_commits_is_consistent_and_restores(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 400)
    before = home_status(pan)
    # A writer keeps committing (acknowledgements) while the backup runs.
    topic = MemoryTopic()
    stop = threading.Event()

    def writer() -> None:
        with NodeStore(pan.store_path) as store:
            while not stop.is_set() and store.outbox_status().pending:
                drain_outbox(store, MemorySink(topic), batch_size=5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = backup_home(pan, tmp_path / "backup")
    finally:
        stop.set()
        thread.join(30)
    assert set(result.stores) == {"node.db"}
    assert (tmp_path / "backup" / "keys" / "signing.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "backup").stat().st_mode & 0o077 == 0
    assert _outbox_rows(tmp_path / "backup" / "node.db") == _outbox_rows(pan.store_path)
    # The audit chain of the copy verifies (its head file was copied first).
    assert audit_check.verify(tmp_path / "backup" / "node.db").ok

    restored = restore_home(tmp_path / "backup", tmp_path / "restored")
    status = home_status(restored)
    assert status["records"] == before["records"]
    assert trust_key(restored) == trust_key(pan)

    with pytest.raises(ConfigError, match="already a home"):
        restore_home(tmp_path / "backup", pan.path)
    with pytest.raises(ConfigError, match="not empty"):
        backup_home(pan, tmp_path / "backup")


def trust_key(home: Home) -> bytes:
    return home.public_key_path.read_bytes()


def test_a_corrupt_backup_is_refused(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 50)
    backup_home(pan, tmp_path / "b")
    db = tmp_path / "b" / "node.db"
    data = bytearray(db.read_bytes())
    data[5000:9000] = b"\xff" * 4000
    db.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"node\.db"):
        restore_home(tmp_path / "b", tmp_path / "r")
    assert not (tmp_path / "r" / "corredor.yaml").exists()


def test_backup_and_restore_through_the_cli(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 50)
    runner = CliRunner()
    result = runner.invoke(main, ["--home", str(pan.path), "backup", str(tmp_path / "b")])
    assert result.exit_code == 0 and "integrity ok" in result.output, result.output
    result = runner.invoke(main, ["--home", str(tmp_path / "r"), "restore", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert home_status(open_home(tmp_path / "r"))["records"] == 50


PASSWORD = "a password for the tests"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Home]]:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 300)
    agg = aggregator_for(tmp_path, [pan])
    topic = MemoryTopic()
    with NodeStore(pan.store_path) as store:
        drain_outbox(store, MemorySink(topic))
    from node.aggregator.apply import Aggregator, consume_until_caught_up
    from node.federation import trust
    from node.folder.accounts import FolderDB

    with PictureStore(agg.store_path) as store:
        consume_until_caught_up(
            Aggregator(store, event_codec(), trust.key_directory(agg), floor=regional_floor()),
            MemorySource(topic),
        )
    with FolderDB(agg.path / "folder.db") as db:
        db.add_user("ana", "TS", PASSWORD)
    server = make_server(agg, "127.0.0.1", 0, refresh_s=0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", agg
    finally:
        server.stop()


def _basic(url: str, method: str = "GET", data: bytes | None = None) -> urllib.request.Request:
    import base64

    token = base64.b64encode(f"ana:{PASSWORD}".encode()).decode()
    return urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"Basic {token}"}
    )


def test_serve_answers_the_picture_read_only(served: tuple[str, Home]) -> None:
    base, agg = served
    mtime = agg.store_path.stat().st_mtime_ns
    with urllib.request.urlopen(_basic(base + "/api/flows")) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        picture = json.load(resp)
    with PictureStore(agg.store_path) as store:
        from node.report.audience import Scope
        from node.report.flows import picture_json_for

        want = json.loads(json.dumps(picture_json_for(store, Scope("TS")), default=str))
    assert picture["flows"] == want["flows"] and picture["flows"]
    with pytest.raises(urllib.error.HTTPError) as err:  # Basic is for /api/ only
        urllib.request.urlopen(_basic(base + "/download/flows.csv"))
    assert err.value.code == 401
    err.value.close()
    with urllib.request.urlopen(base + "/healthz") as resp:
        assert resp.read().startswith(b"ok")
    for method in ("POST", "PUT", "DELETE"):
        req = _basic(base + "/api/flows", method, b"x")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 405
        err.value.close()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/../aggregator.db")
    assert err.value.code == 404
    err.value.close()
    assert agg.store_path.stat().st_mtime_ns == mtime  # the live store untouched


def test_serve_refuses_a_member_home(tmp_path: Path) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 10)
    with pytest.raises(ConfigError, match="serve runs at the aggregator"):
        make_server(pan, "127.0.0.1", 0)


def test_serve_command_answers_and_stops_on_sigterm(served: tuple[str, Home]) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from node.config import REPO_ROOT

    _, agg = served
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "--home", str(agg.path), "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as resp:
                    assert resp.read().startswith(b"ok")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, out
    assert b"stopped" in out
