"""A private, refreshed copy of the aggregator's picture for the folder to read.

The live store is opened only by ``node.operator.backup.snapshot_store``, on a
``mode=ro`` connection, and copied with SQLite's online backup API into a
temporary file of this process at most every ``refresh_s`` seconds. The folder
reads that copy: it never writes the live store, never holds the aggregator's
writer back, and needs nothing else of the home (no key).

Computed documents (a view for one audience) are cached per copy and audience
until the copy is replaced or until the admission rule could answer otherwise
(``node.report.audience.admission_changes_at``: an embargo ends, a retention
period runs out), so a cached answer is never one the exports would not give.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.operator.backup import check_store, snapshot_store
from node.report.audience import admission_changes_at
from node.store.picture import PictureStore

_CACHE_ENTRIES = 512


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


class PictureSnapshot:
    def __init__(self, store_path: Path, refresh_s: float = 10.0) -> None:
        if not store_path.is_file():
            raise ConfigError(f"no aggregator store at {store_path}")
        self.store_path = store_path
        self.refresh_s = refresh_s
        self._dir = tempfile.TemporaryDirectory(prefix="corredor-folder-")
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._store: PictureStore | None = None
        self._taken_at = 0.0
        self._generation = 0
        self._changes_at: datetime | None = None
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
        self._dir.cleanup()

    @property
    def age_s(self) -> float | None:
        return None if self._store is None else time.monotonic() - self._taken_at

    @property
    def generation(self) -> int:
        return self._generation

    def refresh(self, force: bool = False) -> None:
        """Take a new copy when the current one is older than ``refresh_s``."""
        if (
            not force
            and self._store is not None
            and self.age_s is not None
            and self.age_s < self.refresh_s
        ):
            return
        with self._refresh_lock:
            if (
                not force
                and self._store is not None
                and self.age_s is not None
                and self.age_s < self.refresh_s
            ):
                return
            copy = Path(self._dir.name) / f"picture-{self._generation + 1}.db"
            snapshot_read_only(self.store_path, copy)
            fresh = PictureStore(copy)
            changes_at = admission_changes_at(fresh.uses(), datetime.now(UTC))
            with self._lock:
                old, self._store = self._store, fresh
                self._generation += 1
                self._taken_at = time.monotonic()
                self._changes_at = changes_at
                self._cache.clear()
            if old is not None:
                old.close()
                old.path.unlink(missing_ok=True)

    @contextmanager
    def reading(self) -> Iterator[PictureStore]:
        """The current copy, for one reader at a time (one SQLite connection)."""
        self.refresh()
        with self._lock:
            assert self._store is not None
            yield self._store

    def peek(self, key: tuple[Any, ...]) -> Any | None:
        """The cached value for ``key`` when it is current (the copy need not be
        refreshed and no admission change is due), else None: a cheap check an
        event-loop handler can make before handing the work to a thread."""
        if self._store is None or (self.age_s or 0.0) >= self.refresh_s:
            return None
        # Never wait on the event loop: while another thread computes, say "not cached".
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._changes_at is not None and datetime.now(UTC) >= self._changes_at:
                return None
            hit = self._cache.get(key)
            if hit is None or hit[0] != self._generation:
                return None
            return hit[1]
        finally:
            self._lock.release()

    def cached(self, key: tuple[Any, ...], compute: Callable[[PictureStore], Any]) -> Any:
        """``compute(store)`` for this copy, from the cache while it is valid."""
        self.refresh()
        with self._lock:
            if self._changes_at is not None and datetime.now(UTC) >= self._changes_at:
                self._cache.clear()
                assert self._store is not None
                self._changes_at = admission_changes_at(self._store.uses(), datetime.now(UTC))
            hit = self._cache.get(key)
            if hit is not None and hit[0] == self._generation:
                self._cache.move_to_end(key)
                return hit[1]
            assert self._store is not None
            value = compute(self._store)
            self._cache[key] = (self._generation, value)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
            return value
