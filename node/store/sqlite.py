"""Shared SQLite set-up: one connection per store, WAL, foreign keys, errors wrapped."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node.errors import StoreError
from node.files import create_private, private_umask


def connect(path: Path, schema: str, *, bulk_writes: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) a store and apply its idempotent DDL.

    ``bulk_writes`` is for a member node's store, which a publish fills with a
    few MB per chunk: SQLite's default checkpoint every 1,000 pages (4 MB)
    copied the WAL back and fsynced after nearly every chunk; every 16,384
    pages (64 MB, the WAL then truncated back to that size) and a 64 MB page
    cache cut staging by about 10 us an event (bench/RESULTS.md). Not for the
    aggregator: there the larger, rarer checkpoint lands on one poll's commit
    and tripled the p99 latency (14 -> 40-50 ms). Durability is the same
    either way: WAL with synchronous=NORMAL.

    A store created here is mode 0600 whatever the umask (node.files): SQLite
    gives its ``-wal`` and ``-shm`` files the database's mode."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)
        with private_umask():
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        if bulk_writes:
            conn.execute("PRAGMA wal_autocheckpoint=16384")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA cache_size=-65536")
        conn.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open store: {exc}") from exc
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One explicit transaction: all of the block's writes land, or none do.

    Inside an open transaction it joins it, so that callers can make several
    store operations one unit (ingest, the events it produces and their outbox
    rows, for instance): the outermost block commits or rolls back."""
    if conn.in_transaction:
        yield conn
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot begin transaction: {exc}") from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot commit: {exc}") from exc
