"""A member node's local store: raw records (never leave), the publication
ledger (what was sent, at which revision) and the outbox (signed bytes waiting
for the broker's acknowledgement).

The schema and its migrations are in ``node_schema``; the raw-record queries
(``RawRecords``, a part of ``NodeStore``) in ``raw_records``."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from node.store import audit, identity
from node.store.identity import StoreIdentity
from node.store.node_schema import MIGRATIONS
from node.store.raw_records import RawRecords
from node.store.sqlite import connect, transaction


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    key: bytes
    value: bytes
    subject: str
    revision: int
    policy_version: str


@dataclass(frozen=True)
class StagedEvent:
    """An event ready for the outbox, with the ledger entry it advances."""

    event_id: str
    kind: str
    subject: str
    revision: int
    content: str | None
    policy_version: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class PrivacyStaging:
    """What a differentially private release writes with its events: period ->
    new tree state, and (audience, period, measurement, epsilon) spends."""

    exchange: str
    states: Mapping[str, str]
    spends: Sequence[tuple[str, str, str, float]]

    def __bool__(self) -> bool:
        return bool(self.states or self.spends)


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    acked: int
    oldest_pending_at: float | None
    last_acked_at: float | None


class _ReentrantFileLock:
    """An advisory ``flock`` on a file beside the store: exclusive across
    processes, reentrant for the store object that holds it, and released by
    the kernel if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None


class NodeStore(RawRecords):
    """The SQLite store of one member node."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, "", bulk_writes=True)
        try:
            self.schema_version = identity.migrate(self._conn, path, MIGRATIONS)
        except BaseException:
            self._conn.close()
            raise
        self._staging = _ReentrantFileLock(path.with_name(path.name + ".staging.lock"))
        self._drain = _ReentrantFileLock(path.with_name(path.name + ".drain.lock"))

    def close(self) -> None:
        self._conn.close()

    # -- identity --------------------------------------------------------------

    def identity(self) -> StoreIdentity | None:
        return identity.read_identity(self._conn)

    def assign_identity(self, country: str) -> StoreIdentity:
        """Give a new member store its identity (``init``)."""
        return identity.assign(self._conn, self.path, "member", country)

    def has_recovered_revisions(self) -> bool:
        """Whether ``recover-revisions`` has run on this store."""
        found = self.identity()
        return found is not None and found.revisions_recovered_at is not None

    def verify_identity(self, country: str, *, staging: bool = True) -> StoreIdentity:
        """Refuse (``StoreLostHistory``) a store that is not this home's or lost
        its history; with ``staging``, also one waiting for recover-revisions."""
        return identity.verify_identity(self._conn, self.path, "member", country, staging=staging)

    @contextmanager
    def staging_lock(self) -> Iterator[None]:
        """Hold the home's staging lock: one stager at a time plans against the
        ledger and writes what it planned, even when it commits in several
        transactions (a publish that drains while it stages). An advisory
        ``flock`` on a file beside the store, so it holds across processes; it
        is reentrant for this store object and released if the process dies.

        Take it before opening a write transaction that will stage, so that a
        stager waiting on the lock never holds SQLite's write lock."""
        with self._staging.held():
            yield

    @contextmanager
    def drain_lock(self) -> Iterator[None]:
        """Hold the home's drain lock: one drainer at a time reads the outbox
        and sends it. Without it two publishes (or a publish and ``publish
        --follow``) each read the same unacknowledged rows and each sent them,
        so every event reached the topic twice. An advisory ``flock`` on a file
        beside the store, separate from the staging lock so that a drainer
        sends what a stager commits while it stages; reentrant for this store
        object and released if the process dies. A second drainer waits, then
        finds only what is still unacknowledged."""
        with self._drain.held():
            yield

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- suppression and privacy ledgers -------------------------------------

    def suppression_ledger(self, kind: str) -> dict[str, str]:
        """block -> the ledger entry (JSON) of its last staged release."""
        cur = self._conn.execute(
            "SELECT block, entry FROM suppression_ledger WHERE kind = ?", (kind,)
        )
        return {block: entry for block, entry in cur}

    def privacy_states(self, exchange: str) -> dict[str, str]:
        """period -> the stored state (JSON) of its noisy tree."""
        cur = self._conn.execute(
            "SELECT period, state FROM privacy_state WHERE exchange = ?", (exchange,)
        )
        return {period: state for period, state in cur}

    def privacy_charged(self, exchange: str) -> dict[tuple[str, str], dict[str, float]]:
        """(audience, period) -> measurement -> epsilon charged to that audience."""
        out: dict[tuple[str, str], dict[str, float]] = {}
        for audience, period, measurement, epsilon in self._conn.execute(
            "SELECT audience, period, measurement, epsilon FROM privacy_spend WHERE exchange = ?",
            (exchange,),
        ):
            out.setdefault((audience, period), {})[measurement] = float(epsilon)
        return out

    # -- ledger and outbox ---------------------------------------------------

    def ledger(self, kind: str) -> dict[str, tuple[int, str | None]]:
        """subject -> (revision, content) of everything published of a kind."""
        cur = self._conn.execute(
            "SELECT subject, revision, content FROM published_subject WHERE kind = ?", (kind,)
        )
        return {subject: (revision, content) for subject, revision, content in cur}

    def data_version(self) -> int:
        """SQLite's count of changes other connections committed to this file
        (ingest, reference data, holds): unchanged means nothing new to plan."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def live_subjects(self, kind: str) -> dict[str, int]:
        """subject -> last revision of the subjects of a kind not withdrawn."""
        cur = self._conn.execute(
            "SELECT subject, revision FROM published_subject "
            "WHERE kind = ? AND content IS NOT NULL",
            (kind,),
        )
        return dict(cur.fetchall())

    def stage(
        self,
        events: list[StagedEvent],
        suppression: Mapping[tuple[str, str], str] | None = None,
        privacy: PrivacyStaging | None = None,
    ) -> None:
        """Advance the ledger and fill the outbox in one transaction; with
        ``suppression`` ((kind, block) -> entry), record what each block's release
        hid; with ``privacy``, the noisy trees and the budget spent."""
        now = time.time()
        with transaction(self._conn) as conn:
            if privacy is not None:
                conn.executemany(
                    "INSERT INTO privacy_state (exchange, period, state, updated_at) "
                    "VALUES (?,?,?,?) ON CONFLICT(exchange, period) DO UPDATE SET "
                    "state=excluded.state, updated_at=excluded.updated_at",
                    [(privacy.exchange, p, st, now) for p, st in privacy.states.items()],
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO privacy_spend (exchange, audience, period, "
                    "measurement, epsilon, spent_at) VALUES (?,?,?,?,?,?)",
                    [(privacy.exchange, *spend, now) for spend in privacy.spends],
                )
            conn.executemany(
                "INSERT INTO suppression_ledger (kind, block, entry, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(kind, block) DO UPDATE SET entry=excluded.entry, "
                "updated_at=excluded.updated_at",
                [(k, b, entry, now) for (k, b), entry in (suppression or {}).items()],
            )
            conn.executemany(
                "INSERT INTO published_subject (subject, kind, revision, content, event_id, "
                "updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT(subject) DO UPDATE SET "
                "revision=excluded.revision, content=excluded.content, "
                "event_id=excluded.event_id, updated_at=excluded.updated_at",
                [(e.subject, e.kind, e.revision, e.content, e.event_id, now) for e in events],
            )
            conn.executemany(
                "INSERT INTO outbox (event_id, kind, subject, revision, policy_version, msg_key, "
                "msg_value, created_at) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        e.event_id,
                        e.kind,
                        e.subject,
                        e.revision,
                        e.policy_version,
                        e.key,
                        e.value,
                        now,
                    )
                    for e in events
                ],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO staged_revision (event_id, subject, kind, revision, "
                "content) VALUES (?,?,?,?,?)",
                [(e.event_id, e.subject, e.kind, e.revision, e.content) for e in events],
            )

    @property
    def connection(self) -> sqlite3.Connection:
        """For stores of the same file that must share this one's transactions."""
        return self._conn

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Make several operations on this store one unit (they join it)."""
        return transaction(self._conn)

    def pending(self, limit: int = 10_000, after_seq: int = 0) -> list[OutboxRow]:
        cur = self._conn.execute(
            "SELECT seq, event_id, msg_key, msg_value, subject, revision, policy_version "
            "FROM outbox WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [OutboxRow(*row) for row in cur]

    def mark_acked(self, acks: list[tuple[int, str, int, int]], rows: Sequence[OutboxRow]) -> None:
        """Record broker acknowledgements, (seq, topic, partition, offset), of
        the outbox ``rows`` that ``pending`` gave.

        Each newly acknowledged row gets a ``sent`` entry in the audit log, in
        the same transaction (node.store.audit).
        """
        now = time.time()
        with transaction(self._conn) as conn:
            head = audit.record_sent(conn, rows)
            conn.executemany(
                'UPDATE outbox SET acked_at=?, topic=?, partition=?, "offset"=? '
                "WHERE seq=? AND acked_at IS NULL",
                [(now, topic, part, off, seq) for seq, topic, part, off in acks],
            )
        audit.save_head(self.path, head)

    def outbox_status(self) -> OutboxStatus:
        row = self._conn.execute(
            "SELECT sum(acked_at IS NULL), sum(acked_at IS NOT NULL), "
            "min(CASE WHEN acked_at IS NULL THEN created_at END), max(acked_at) FROM outbox"
        ).fetchone()
        return OutboxStatus(int(row[0] or 0), int(row[1] or 0), row[2], row[3])

    def outbox_value(self, event_id: str) -> bytes | None:
        """The signed bytes of an event this node staged."""
        row = self._conn.execute(
            "SELECT msg_value FROM outbox WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def archive_policy(self, sha256: str, policy_id: str, version: str, canonical: str) -> None:
        """Keep the canonical text of a policy version that lets events out."""
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO policy_archive (sha256, policy_id, version, canonical, "
                "first_used) VALUES (?,?,?,?,?)",
                (sha256, policy_id, version, canonical, time.time()),
            )

    def archived_policy(self, sha256: str) -> str | None:
        row = self._conn.execute(
            "SELECT canonical FROM policy_archive WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return None if row is None else str(row[0])

    def event_record(self, event_id: str) -> sqlite3.Row | None:
        self._conn.row_factory = sqlite3.Row
        try:
            row: sqlite3.Row | None = self._conn.execute(
                "SELECT event_id, kind, subject, revision, policy_version, created_at, acked_at, "
                'topic, partition, "offset" FROM outbox WHERE event_id = ?',
                (event_id,),
            ).fetchone()
        finally:
            self._conn.row_factory = None
        return row
