"""Append-only, hash-chained audit log of what a node sent or the aggregator received.

Each entry holds what an auditor needs to match one Kafka message at both
ends, and nothing identifying about a person:

    seq             1, 2, 3 ... with no gaps
    at              UTC time of the entry (ISO 8601)
    entry           sent | applied | stale | duplicate | quarantined | relayed | published
    event_id, producer, subject, revision, policy_version   from the envelope
                    (NULL when a quarantined message could not be decoded)
    digest          SHA-256 of the exact Kafka message value bytes
    reason          why a message was quarantined (else NULL)
    prev_hash       entry_hash of entry seq-1 (64 zeros for entry 1)
    entry_hash      SHA-256(prev_hash || canonical JSON of the fields above)

A node appends ``sent`` entries in the same SQLite transaction that records the
broker's acknowledgement; the aggregator appends one entry per message in the
transaction that applies or quarantines it. So the log and the data never
disagree, whichever way a crash falls.

After each committed append the chain's head (seq, entry_hash) is also written
to a small file next to the database (``<db>.audit-head``). ``verify`` finds:

- an edited entry (its hash no longer matches its content);
- a deleted, inserted or reordered entry (a seq gap, or a prev_hash that is not
  the previous entry's hash);
- entries cut off the end (the head file names a seq the table no longer has).

- entries appended after the head (the head file names an earlier entry than
  the table's last): a failure, since anyone able to write the database alone
  can append forged entries that chain correctly. A crash between a commit and
  the head-file write leaves the same picture; an operator who knows that
  happened accepts it explicitly (``verify(accept_behind=True)``, ``audit
  verify --accept-behind``), and the next append brings the head up to date.

Limits: the chain has no secret in it. Someone able to rewrite both the table
and the head file can recompute every hash after the point they changed; only
a head recorded elsewhere (an auditor's note of ``seq:hash``, checked with
``verify(anchors=...)``) exposes that.

This module writes the log; reading it back, ``verify`` and ``export`` are in
``node.store.audit_check``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from node.errors import StoreError
from node.files import write_private_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq            INTEGER PRIMARY KEY,
    at             TEXT NOT NULL,
    entry          TEXT NOT NULL,
    event_id       TEXT,
    producer       TEXT,
    subject        TEXT,
    revision       INTEGER,
    policy_version TEXT,
    digest         TEXT NOT NULL,
    reason         TEXT,
    prev_hash      TEXT NOT NULL,
    entry_hash     TEXT NOT NULL
);
"""

GENESIS = "0" * 64
#: "published" is for the aggregator's picture sent back to members: append it
#: with ``append(conn, [AuditRecord("published", ...)])`` where the picture
#: outbox records the broker's acknowledgement.
#: "revoked" is an applied event a key revocation took out of the picture
#: (node.aggregator.revocation); its digest is of the signed envelope.
ENTRY_KINDS = (
    "sent",
    "applied",
    "stale",
    "duplicate",
    "quarantined",
    "relayed",
    "published",
    "revoked",
)
HEAD_SUFFIX = ".audit-head"

#: Columns in chain order; ``export`` writes them in this order too.
FIELDS = (
    "seq",
    "at",
    "entry",
    "event_id",
    "producer",
    "subject",
    "revision",
    "policy_version",
    "digest",
    "reason",
    "prev_hash",
    "entry_hash",
)


@dataclass(frozen=True)
class AuditRecord:
    """What to append: one message sent, received or set aside."""

    entry: str
    digest: str
    event_id: str | None = None
    producer: str | None = None
    subject: str | None = None
    revision: int | None = None
    policy_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    entry: str
    event_id: str | None
    producer: str | None
    subject: str | None
    revision: int | None
    policy_version: str | None
    digest: str
    reason: str | None
    prev_hash: str
    entry_hash: str


def message_digest(value: bytes | None) -> str:
    """SHA-256 of a Kafka message value as sent (empty for a missing value)."""
    return hashlib.sha256(value or b"").hexdigest()


def _json_value(value: object) -> str:
    """``json.dumps(value, ensure_ascii=True)`` for the flat values an entry holds."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _ascii_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    return json.dumps(value, ensure_ascii=True)


_ascii_string = json.encoder.encode_basestring_ascii
#: The entry's keys as json.dumps(sort_keys=True) orders them.
_CANONICAL_KEYS = tuple(sorted(("seq", "at", *(f.name for f in fields(AuditRecord)))))
_CANONICAL_TEMPLATE = "{" + ",".join(f'"{key}":%s' for key in _CANONICAL_KEYS) + "}"


def canonical(seq: int, at: str, record: AuditRecord) -> bytes:
    """The bytes an entry's hash covers, besides the previous hash: the entry
    as ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
    writes it, filled into a template made once (this runs once per event
    sent; tests hold it byte-equal to json.dumps)."""
    values = {"seq": seq, "at": at, **vars(record)}
    return (_CANONICAL_TEMPLATE % tuple(_json_value(values[k]) for k in _CANONICAL_KEYS)).encode(
        "ascii"
    )


def entry_hash(prev_hash: str, seq: int, at: str, record: AuditRecord) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(seq, at, record)).hexdigest()


def head_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + HEAD_SUFFIX)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the table if missing; safe inside an open transaction."""
    conn.execute(SCHEMA)


def _tail(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def append(conn: sqlite3.Connection, records: Iterable[AuditRecord]) -> tuple[int, str]:
    """Append ``records`` inside the caller's open transaction; returns the new
    head (seq, entry_hash) for :func:`save_head` once the transaction commits.

    The tail is read from the table each time (never cached), so a rolled-back
    transaction leaves nothing behind to chain onto.
    """
    seq, prev = _tail(conn)
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = []
    for record in records:
        if record.entry not in ENTRY_KINDS:
            raise StoreError(f"unknown audit entry kind {record.entry!r}")
        seq += 1
        digest = entry_hash(prev, seq, at, record)
        rows.append(
            (
                seq,
                at,
                record.entry,
                record.event_id,
                record.producer,
                record.subject,
                record.revision,
                record.policy_version,
                record.digest,
                record.reason,
                prev,
                digest,
            )
        )
        prev = digest
    conn.executemany(
        f"INSERT INTO audit_log ({','.join(FIELDS)}) VALUES ({','.join('?' * len(FIELDS))})",
        rows,
    )
    return seq, prev


class SentRow(Protocol):
    """An outbox row as ``NodeStore.pending`` returns it."""

    @property
    def seq(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def subject(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def policy_version(self) -> str: ...


def record_sent(conn: sqlite3.Connection, rows: Sequence[SentRow]) -> tuple[int, str] | None:
    """Append a ``sent`` entry for each outbox row about to be marked acknowledged.

    Call inside the acknowledging transaction, before the UPDATE. The rows are
    the caller's (``NodeStore.pending``); only their sequence numbers are read
    back, so that a row already acknowledged is not logged twice."""
    unacked: set[int] = set()
    for start in range(0, len(rows), 500):
        chunk = [r.seq for r in rows[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        unacked.update(
            seq
            for (seq,) in conn.execute(
                f"SELECT seq FROM outbox WHERE acked_at IS NULL AND seq IN ({marks})", chunk
            )
        )
    records = [
        AuditRecord(
            entry="sent",
            digest=message_digest(r.value),
            event_id=r.event_id,
            producer=bytes(r.key).decode("ascii", "replace"),
            subject=r.subject,
            revision=r.revision,
            policy_version=r.policy_version,
        )
        for r in rows
        if r.seq in unacked
    ]
    return append(conn, records) if records else None


def record_relayed(conn: sqlite3.Connection, relay_seqs: Sequence[int]) -> tuple[int, str] | None:
    """Append a ``relayed`` entry for each sealed event the aggregator passed on
    to the picture topic, inside the transaction that marks it relayed."""
    records: list[AuditRecord] = []
    for start in range(0, len(relay_seqs), 500):
        chunk = list(relay_seqs[start : start + 500])
        marks = ",".join("?" * len(chunk))
        cur = conn.execute(
            "SELECT event_id, producer, subject, revision, msg_value FROM relay_outbox "
            f"WHERE relayed_at IS NULL AND seq IN ({marks}) ORDER BY seq",
            chunk,
        )
        for event_id, producer, subject, revision, value in cur:
            records.append(
                AuditRecord(
                    entry="relayed",
                    digest=message_digest(value),
                    event_id=event_id,
                    producer=producer,
                    subject=subject,
                    revision=revision,
                )
            )
    return append(conn, records) if records else None


def save_head(db_path: Path, head: tuple[int, str] | None) -> None:
    """Record the committed head outside the table (call after COMMIT)."""
    if head is None:
        return
    seq, digest = head
    path = head_path(db_path)
    try:
        write_private_text(
            path, json.dumps({"seq": seq, "entry_hash": digest}) + "\n", encoding="ascii"
        )
    except OSError as exc:
        raise StoreError(f"cannot write the audit head {path}: {exc}") from exc
