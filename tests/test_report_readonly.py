"""The compose stack's report service gets the Secretariat's home read-only and
without its keys (docker-compose.yml). These tests check that this is enough:
``serve`` renders the picture from a store on a real read-only mount (a bind
mount in a private mount namespace, made with util-linux ``unshare``), both
while the aggregator holds the store open and after it stopped; and that the
home keeps every private key under ``keys/``, the directory the stack puts on a
volume of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.aggregator.apply import Aggregator, consume_until_caught_up
from node.config import Home
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.drain import drain_outbox
from node.report.flows import picture_json
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data

#: Runs inside the namespace: read the picture the way the folder does
#: (node.folder.snapshot), from the store under the read-only mount, and prove
#: the mount refuses writes.
READER = """
import json, sys
from pathlib import Path
from node.folder.snapshot import PictureSnapshot
from node.report.flows import picture_json
mount = Path(sys.argv[1])
try:
    (mount / "probe").write_text("x")
    writable = True
except OSError:
    writable = False
snap = PictureSnapshot(mount / "aggregator.db", refresh_s=0)
try:
    with snap.reading() as store:
        picture = picture_json(store)
finally:
    snap.close()
print(json.dumps({"writable": writable, "picture": picture}, default=str))
"""


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def _render_through_read_only_mount(home: Path, mountpoint: Path) -> dict[str, object]:
    mountpoint.mkdir(exist_ok=True)
    script = 'mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && exec "$3" -c "$4" "$2"'
    done = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
            str(home),
            str(mountpoint),
            sys.executable,
            READER,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _aggregator_with_picture(tmp_path: Path) -> Home:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 300)
    agg = aggregator_for(tmp_path, [pan])
    topic = MemoryTopic()
    with NodeStore(pan.store_path) as store:
        drain_outbox(store, MemorySink(topic))
    with PictureStore(agg.store_path) as store:
        consume_until_caught_up(
            Aggregator(store, event_codec(), trust.key_directory(agg), floor=regional_floor()),
            MemorySource(topic),
        )
    return agg


def _expected(agg: Home) -> dict[str, object]:
    with PictureStore(agg.store_path) as store:
        picture: dict[str, object] = json.loads(json.dumps(picture_json(store), default=str))
    return _content(picture)


def _content(picture: object) -> dict[str, object]:
    """The picture without the time it was rendered at."""
    assert isinstance(picture, dict)
    return {k: v for k, v in picture.items() if k != "generated_at"}


@pytest.mark.skipif(not _read_only_mount_works(), reason="no unprivileged mount namespace here")
def test_serve_renders_the_picture_from_a_read_only_mount(tmp_path: Path) -> None:
    agg = _aggregator_with_picture(tmp_path)
    expected = _expected(agg)
    assert '"PAN"' in json.dumps(expected)  # a picture with something in it
    wal = agg.store_path.with_name(agg.store_path.name + "-wal")

    # 1. The aggregator running: it holds the store open, its WAL beside it.
    running = PictureStore(agg.store_path)
    try:
        assert wal.exists()
        seen = _render_through_read_only_mount(agg.path, tmp_path / "ro")
    finally:
        running.close()
    assert seen["writable"] is False  # the mount really is read-only
    assert _content(seen["picture"]) == expected

    # 2. The aggregator stopped: the store closed cleanly, no -wal or -shm left.
    assert not wal.exists()
    seen = _render_through_read_only_mount(agg.path, tmp_path / "ro")
    assert seen["writable"] is False
    assert _content(seen["picture"]) == expected
    assert not wal.exists()  # and the reader created nothing beside the store


def test_every_private_key_of_the_secretariat_home_is_under_keys(tmp_path: Path) -> None:
    """The stack hands the report the home minus keys/; that hides all key
    material only if nothing private lives elsewhere in the home."""
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 10)
    agg = aggregator_for(tmp_path, [pan])
    private = []
    for path in agg.path.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"PRIVATE KEY" in data or path.suffix == ".key":
            private.append(path.relative_to(agg.path))
    assert private, "the control: the home does hold private keys"
    outside = [p for p in private if p.parts[0] != "keys"]
    assert outside == []


def test_restore_into_a_home_whose_keys_directory_is_an_empty_mount(tmp_path: Path) -> None:
    """In the stack the TS's <home>/keys is a volume: an empty directory that
    exists before restore runs, and cannot be removed."""
    from node.operator.backup import backup_home, restore_home

    agg = _aggregator_with_picture(tmp_path)
    backup_home(agg, tmp_path / "backup")
    dest = tmp_path / "restored"
    (dest / "keys").mkdir(parents=True)
    restored = restore_home(tmp_path / "backup", dest)
    assert (restored.keys_dir / "secretariat.key").read_bytes() == (
        agg.keys_dir / "secretariat.key"
    ).read_bytes()
    # A keys directory that already holds something is never merged into.
    other = tmp_path / "other"
    (other / "keys").mkdir(parents=True)
    (other / "keys" / "stray.key").write_text("x")
    from node.errors import ConfigError

    with pytest.raises(ConfigError, match="already there"):
        restore_home(tmp_path / "backup", other)
