"""Back up and restore a node's home while the node runs.

``backup_home`` writes a copy of a home that is itself a home: the config, the
keys (private keys stay mode 0600; the backup directory is 0700), the verified
manifest, and each SQLite store copied with SQLite's online backup API, which
gives a consistent snapshot while ``publish --follow`` or ``aggregate --follow``
keep writing. Each copied store passes ``PRAGMA integrity_check`` before the
backup is declared done.

The audit chain's head file (``<db>.audit-head``) is copied before its store:
a head ahead of the table would look like entries cut off. A member's store is
snapshot under its drain lock (nothing is acknowledged meanwhile), so its
head and table agree; an aggregator's head may lag its snapshot, and
``audit verify`` on the restored home then needs ``--accept-behind``.

Not copied: ``rejects/`` (rejected input rows, raw data kept only for the
operator to fix the file; re-ingesting the source regenerates them).

The store identity file (``<db>.identity``) is copied with its store, so
the restored store is still this home's (node.store.identity).

``restore_home`` checks every store of a backup, then copies it to a directory
that is not yet a home. A member's restored store may be behind what it
published after the backup, so it is marked to stage nothing until
``recover-revisions`` (node.member.revisions) has raised its revisions above what
the federation has seen.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from node.config import CONFIG_FILE, Home, load_home
from node.errors import ConfigError
from node.files import create_private
from node.store.identity import IDENTITY_SUFFIX

MANIFEST = "backup.json"
_HEAD_SUFFIX = ".audit-head"
_COPIED_DIRS = ("keys", "federation")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    stores: dict[str, int]  # file name -> pages copied
    files: list[str]


def snapshot_store(source: Path, dest: Path) -> int:
    """Copy one SQLite store online into ``dest``; returns its page count."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open {source} to back it up: {exc}") from exc
    try:
        create_private(dest)  # raw data: 0600 whatever the umask
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=1024)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"backing up {source} failed: {exc}") from exc
    finally:
        src.close()
    check_store(dest)
    return pages


def check_store(path: Path) -> None:
    """Raise unless ``path`` is an SQLite database that passes integrity_check."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not a readable SQLite store: {exc}") from exc
    if result != ["ok"]:
        raise ConfigError(f"{path} fails its integrity check: {'; '.join(result[:3])}")


def _stores(home: Path) -> list[Path]:
    return sorted(p for p in home.glob("*.db") if p.is_file())


@contextmanager
def _drain_locked(store: Path) -> Iterator[None]:
    """Hold a member store's drain lock (``NodeStore.drain_lock``) if it has
    one: no acknowledgement, so no audit entry, lands while it is copied."""
    lock = store.with_name(store.name + ".drain.lock")
    if not lock.is_file():
        yield
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def backup_home(home: Home, dest: Path) -> BackupResult:
    """Write a consistent copy of ``home`` to ``dest`` (which must not exist or be empty)."""
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} is not empty; back up into a new directory")
    if dest.resolve() == home.path.resolve():
        raise ConfigError("the backup must go somewhere other than the home itself")
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o700)
    files: list[str] = []
    shutil.copy2(home.config_file, dest / CONFIG_FILE)
    files.append(CONFIG_FILE)
    for name in _COPIED_DIRS:
        if (home.path / name).is_dir():
            shutil.copytree(home.path / name, dest / name)  # copy2 keeps 0600 modes
            files.append(f"{name}/")
    stores: dict[str, int] = {}
    for store in _stores(home.path):
        head = store.with_name(store.name + _HEAD_SUFFIX)
        identity = store.with_name(store.name + IDENTITY_SUFFIX)
        if identity.is_file():
            shutil.copy2(identity, dest / identity.name)
            files.append(identity.name)
        with _drain_locked(store):
            if head.is_file():
                shutil.copy2(head, dest / head.name)  # before the store: never ahead of it
                files.append(head.name)
            stores[store.name] = snapshot_store(store, dest / store.name)
    if not stores:
        raise ConfigError(f"{home.path} holds no store to back up")
    (dest / MANIFEST).write_text(
        json.dumps(
            {
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": str(home.path.resolve()),
                "role": home.config.role,
                "country": home.config.country,
                "stores": stores,
                "files": files,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return BackupResult(dest, stores, files)


def restore_home(backup: Path, dest: Path) -> Home:
    """Check a backup's stores and copy it to ``dest``, which must not be a home.

    A member's restored store may be behind what it published after the
    backup: it is marked to wait for ``recover-revisions``
    (node.member.revisions), and staging or publishing is refused until then."""
    if not (backup / MANIFEST).is_file():
        raise ConfigError(f"{backup} is not a Corredor backup (no {MANIFEST})")
    if (dest / CONFIG_FILE).exists():
        raise ConfigError(
            f"{dest} is already a home; stop its node and move it aside before restoring"
        )
    stores = _stores(backup)
    if not stores:
        raise ConfigError(f"{backup} holds no store")
    for store in stores:
        check_store(store)
    load_home(backup)  # the config still validates with this release
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o700)
    for item in backup.iterdir():
        if item.name == MANIFEST:
            continue
        target = dest / item.name
        if item.is_dir():
            # An empty directory may already be there: the compose stack mounts
            # the Secretariat's keys volume on <home>/keys. Never merge into one
            # that holds something.
            empty = target.is_dir() and not any(target.iterdir())
            if target.exists() and not empty:
                raise ConfigError(f"{target} is already there; restore into an empty home")
            shutil.copytree(item, target, dirs_exist_ok=empty)
        else:
            shutil.copy2(item, target)
    home = load_home(dest)
    if not home.is_aggregator and home.store_path.is_file():
        _mark_restored(home, json.loads((backup / MANIFEST).read_text(encoding="utf-8")))
    return home


def _mark_restored(home: Home, manifest: dict[str, object]) -> None:
    from node.store.identity import set_pending_recovery
    from node.store.node_store import NodeStore

    with NodeStore(home.store_path) as store:
        store.verify_identity(home.country, staging=False)  # a legacy store gets one
        with store.transaction() as conn:
            reason = f"restored from the backup made at {manifest.get('created_at')}"
            set_pending_recovery(conn, reason)
