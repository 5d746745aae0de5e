"""The aggregator's store: member keys, every accepted event, the current
picture (latest revision of each subject) and everything set aside."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from node.store import audit

# The apply's rows and the view tables are defined with its writes; callers
# keep importing them from the store.
from node.store.picture_writes import VIEW_COLUMNS as VIEW_COLUMNS
from node.store.picture_writes import PictureWrites
from node.store.picture_writes import ReceivedEvent as ReceivedEvent
from node.store.picture_writes import Rejected as Rejected
from node.store.sqlite import connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS received_event (
    event_id    TEXT PRIMARY KEY,
    producer    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    digest      TEXT NOT NULL,       -- SHA-256 of the signed envelope bytes
    key_id      TEXT NOT NULL,       -- the key whose signature verified
    policy_id   TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    policy_sha256  TEXT NOT NULL,
    applied     INTEGER NOT NULL,    -- 0 when a newer revision was already in place
    topic       TEXT, partition INTEGER, "offset" INTEGER,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS received_subject ON received_event(subject, revision);
CREATE INDEX IF NOT EXISTS received_key ON received_event(key_id);
CREATE TABLE IF NOT EXISTS relay_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,  -- restricted events, relayed sealed to members
    producer    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    recipients  TEXT NOT NULL,         -- key ids the sealed box names (metadata only)
    msg_key     BLOB,
    msg_value   BLOB NOT NULL,
    created_at  REAL NOT NULL,
    relayed_at  REAL
);
CREATE TABLE IF NOT EXISTS subject_head (
    subject     TEXT PRIMARY KEY,    -- newest applied revision of every subject, any kind
    kind        TEXT NOT NULL,
    producer    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    withdrawn   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS flow_cell (
    subject            TEXT PRIMARY KEY,
    reporting_country  TEXT NOT NULL,
    period             TEXT NOT NULL,
    period_type        TEXT NOT NULL,
    nationality        TEXT,
    nationality_region TEXT,
    sex                TEXT,
    age_band           TEXT,
    previous_country   TEXT,
    count              INTEGER,      -- NULL once withdrawn
    obs_status         TEXT,
    revision           INTEGER NOT NULL,
    event_id           TEXT NOT NULL,
    ci95_low           INTEGER,      -- noisy counts (obs_status N): the 95% interval
    ci95_high          INTEGER
);
CREATE TABLE IF NOT EXISTS rejected_message (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    event_id    TEXT,
    producer    TEXT,
    topic       TEXT, partition INTEGER, "offset" INTEGER,
    raw         BLOB,
    msg_key     BLOB,
    received_at REAL NOT NULL,
    dead_lettered_at REAL      -- undecodable messages also go to the dead-letter topic
);
-- Every accepted revision of every subject with its decoded body, applied or
-- superseded: the history an auditor (or `corredor history`) reads.
CREATE TABLE IF NOT EXISTS event_revision (
    event_id       TEXT PRIMARY KEY,
    subject        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    producer       TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    withdrawn      INTEGER NOT NULL,
    body           TEXT,             -- JSON of the decoded body; NULL for a withdrawal
                                     -- and for sealed (restricted) bodies
    schema_version INTEGER,          -- the writer's schema version
    produced_at    TEXT NOT NULL,
    applied        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS event_revision_subject ON event_revision(subject, revision);
-- Reference views: the current revision of each subject; withdrawn rows deleted.
CREATE TABLE IF NOT EXISTS legislation_view (
    subject TEXT PRIMARY KEY, country TEXT NOT NULL, topic TEXT NOT NULL,
    body TEXT NOT NULL, revision INTEGER NOT NULL, event_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consular_view (
    subject TEXT PRIMARY KEY, host_country TEXT NOT NULL, sending_country TEXT NOT NULL,
    mission_type TEXT NOT NULL, city TEXT NOT NULL,
    body TEXT NOT NULL, revision INTEGER NOT NULL, event_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS health_view (
    subject TEXT PRIMARY KEY, issuer TEXT NOT NULL, country_of_origin TEXT NOT NULL,
    disease TEXT NOT NULL, valid_from TEXT NOT NULL, valid_until TEXT,
    body TEXT NOT NULL, revision INTEGER NOT NULL, event_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS focal_point_view (
    subject TEXT PRIMARY KEY, country TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, revision INTEGER NOT NULL, event_id TEXT NOT NULL
);
-- Pseudonymised encounter records (where a member's law allows them, TS only).
CREATE TABLE IF NOT EXISTS encounter_view (
    subject TEXT PRIMARY KEY, reporting_country TEXT NOT NULL, linkage_token TEXT,
    encounter_period TEXT, nationality TEXT,
    body TEXT NOT NULL, revision INTEGER NOT NULL, event_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS encounter_view_link ON encounter_view(linkage_token);
-- Each accepted event's usage rules from its envelope: who may see it, for
-- what, until when, and not before when. Exports read it; `purge` marks the
-- events past retain_until (their metadata stays, so a replay is not re-applied).
CREATE TABLE IF NOT EXISTS event_use (
    event_id      TEXT PRIMARY KEY,
    audiences     TEXT NOT NULL,      -- JSON list
    purposes      TEXT NOT NULL,      -- JSON list
    retain_until  TEXT,               -- ISO date; NULL: no limit stated
    embargo_until TEXT,               -- ISO timestamp; NULL: no embargo
    purged_at     REAL
);
-- Dead letters too large to copy: set aside on the dead-letter topic by
-- reference (origin, size, digest) instead of their bytes, which stay here.
CREATE TABLE IF NOT EXISTS dead_letter_reference (
    rejected_id INTEGER PRIMARY KEY,   -- rejected_message.id
    size        INTEGER NOT NULL,      -- bytes of the original value
    sha256      TEXT NOT NULL,         -- of the original value
    created_at  REAL NOT NULL
);
-- The broker's append time of each accepted event on the shared topic: the
-- time every judgement of time uses (never the signer's produced_at).
CREATE TABLE IF NOT EXISTS event_time (
    event_id      TEXT PRIMARY KEY,
    appended_at   REAL NOT NULL        -- epoch seconds, the broker's clock
);
-- Events a revocation took out of the picture: signed by a key the manifest
-- revoked, appended at or after its compromise time (or ever, with none).
CREATE TABLE IF NOT EXISTS revoked_event (
    event_id      TEXT PRIMARY KEY,
    key_id        TEXT NOT NULL,
    revoked_at    REAL NOT NULL        -- when this store took it out
);
-- Each revocation as the aggregator carried it out, for `status`.
CREATE TABLE IF NOT EXISTS key_revocation (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id         TEXT NOT NULL,
    producer       TEXT NOT NULL,
    compromised_at TEXT,               -- ISO; NULL: nothing the key signed is trusted
    revoked_at     TEXT,               -- ISO, from the manifest
    events         INTEGER NOT NULL,   -- events taken out
    restored       INTEGER NOT NULL,   -- subjects back at an earlier good revision
    removed        INTEGER NOT NULL,   -- subjects with no good revision left
    applied_at     REAL NOT NULL
);
-- The picture published back: original signed events every member may see
-- (audiences name members or the public), sent to the picture topic once any
-- embargo has passed, so each member's node verifies and applies them itself.
CREATE TABLE IF NOT EXISTS picture_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    subject      TEXT NOT NULL,
    msg_value    BLOB NOT NULL,
    created_at   REAL NOT NULL,
    published_at REAL
);
-- Subjects whose newest published picture event was purged: a tombstone (the
-- key with no value) makes Kafka's compaction drop them from the picture topic.
CREATE TABLE IF NOT EXISTS picture_tombstone (
    subject      TEXT PRIMARY KEY,
    created_at   REAL NOT NULL,
    published_at REAL
);
"""

#: Keys per ``IN (...)`` list: far below SQLite's limit on a statement's
#: parameters (32,766 since 3.32, 999 before).
_IN_LIMIT = 500


def _add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Columns a picture made before they existed lacks (FlowStatistic v2's
    interval): added, empty, so the store opens as it is."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


class PictureStore:
    """The SQLite store of the Secretariat's aggregator."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, _SCHEMA)
        _add_columns(self._conn, "flow_cell", {"ci95_low": "INTEGER", "ci95_high": "INTEGER"})

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PictureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    # -- events --------------------------------------------------------------

    def digests(self, conn: sqlite3.Connection, event_ids: Sequence[str]) -> dict[str, str]:
        """The envelope digest of each of ``event_ids`` received before; an
        event never received is not in it. One query per 500 ids."""
        out: dict[str, str] = {}
        for start in range(0, len(event_ids), _IN_LIMIT):
            chunk = event_ids[start : start + _IN_LIMIT]
            cur = conn.execute(
                "SELECT event_id, digest FROM received_event "
                f"WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            out.update((str(event_id), str(digest)) for event_id, digest in cur)
        return out

    def head_revisions(self, conn: sqlite3.Connection, subjects: Sequence[str]) -> dict[str, int]:
        """The newest applied revision of each of ``subjects``; a subject never
        applied is not in it. One query per 500 subjects."""
        out: dict[str, int] = {}
        for start in range(0, len(subjects), _IN_LIMIT):
            chunk = subjects[start : start + _IN_LIMIT]
            cur = conn.execute(
                "SELECT subject, revision FROM subject_head "
                f"WHERE subject IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            out.update((str(subject), int(revision)) for subject, revision in cur)
        return out

    def set_head(
        self,
        conn: sqlite3.Connection,
        subject: str,
        kind: str,
        producer: str,
        revision: int,
        event_id: str,
        withdrawn: bool,
    ) -> None:
        writes = PictureWrites()
        writes.head(subject, kind, producer, revision, event_id, withdrawn)
        writes.flush(conn)

    def upsert_flow(
        self,
        conn: sqlite3.Connection,
        subject: str,
        revision: int,
        event_id: str,
        producer: str,
        body: dict[str, Any] | None,
    ) -> None:
        """Set a subject's cell to this revision; a None body marks it withdrawn."""
        writes = PictureWrites()
        writes.flow(subject, revision, event_id, producer, body)
        writes.flush(conn)

    def pending_dead_letters(
        self, reasons: frozenset[str], limit: int = 1000
    ) -> list[tuple[int, Rejected]]:
        """Set-aside messages of ``reasons`` not yet copied to the dead-letter topic."""
        marks = ",".join("?" * len(reasons))
        cur = self._conn.execute(
            "SELECT id, reason, detail, event_id, producer, topic, partition, \"offset\", raw, "
            f"msg_key FROM rejected_message WHERE dead_lettered_at IS NULL AND reason IN ({marks}) "
            "ORDER BY id LIMIT ?",
            (*sorted(reasons), limit),
        )
        return [(int(row[0]), Rejected(*row[1:])) for row in cur]

    def mark_dead_lettered(self, ids: list[int]) -> None:
        now = time.time()
        with transaction(self._conn) as conn:
            conn.executemany(
                "UPDATE rejected_message SET dead_lettered_at = ? WHERE id = ?",
                [(now, i) for i in ids],
            )

    def mark_dead_lettered_by_reference(self, refs: list[tuple[int, int, str]]) -> None:
        """(rejected id, size, SHA-256) of dead letters sent as references."""
        now = time.time()
        with transaction(self._conn) as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO dead_letter_reference (rejected_id, size, sha256, "
                "created_at) VALUES (?,?,?,?)",
                [(i, size, digest, now) for i, size, digest in refs],
            )
            conn.executemany(
                "UPDATE rejected_message SET dead_lettered_at = ? WHERE id = ?",
                [(now, i) for i, _, _ in refs],
            )

    def dead_letter_reference_count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM dead_letter_reference").fetchone()
        return int(row[0])

    def dead_letter_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM rejected_message WHERE dead_lettered_at IS NOT NULL"
        ).fetchone()
        return int(row[0])

    # -- usage rules: audiences, purposes, retention, embargo ------------------

    def uses(self) -> dict[str, dict[str, Any]]:
        """event_id -> {audiences, purposes, retain_until, embargo_until, purged}."""
        cur = self._conn.execute(
            "SELECT event_id, audiences, purposes, retain_until, embargo_until, purged_at "
            "FROM event_use"
        )
        return {
            event_id: {
                "audiences": tuple(json.loads(aud)),
                "purposes": tuple(json.loads(pur)),
                "retain_until": None if retain is None else date.fromisoformat(retain),
                "embargo_until": None if embargo is None else datetime.fromisoformat(embargo),
                "purged": purged is not None,
            }
            for event_id, aud, pur, retain, embargo, purged in cur
        }

    def purge_expired(self, today: date) -> dict[str, int]:
        """Remove from the picture and the history every event whose
        ``retain_until`` is before ``today``: flow cells, reference view rows and
        stored bodies. The event's metadata stays (its digest keeps a replay
        from being applied again). Returns what was removed, by kind."""
        removed: dict[str, int] = {}
        with transaction(self._conn) as conn:
            expired = conn.execute(
                "SELECT u.event_id, r.kind FROM event_use u JOIN received_event r "
                "ON r.event_id = u.event_id WHERE u.purged_at IS NULL "
                "AND u.retain_until IS NOT NULL AND u.retain_until < ?",
                (today.isoformat(),),
            ).fetchall()
            ids = [(event_id,) for event_id, _ in expired]
            # Tombstone a subject on the picture topic when the event purged is
            # the newest of it published there (a tombstone removes the key).
            now = time.time()
            for (event_id,) in ids:
                conn.execute(
                    "INSERT OR REPLACE INTO picture_tombstone (subject, created_at) "
                    "SELECT p.subject, ? FROM picture_outbox p WHERE p.event_id = ? "
                    "AND p.published_at IS NOT NULL AND p.seq = (SELECT max(q.seq) FROM "
                    "picture_outbox q WHERE q.subject = p.subject AND q.published_at IS NOT "
                    "NULL)",
                    (now, event_id),
                )
            conn.executemany("DELETE FROM flow_cell WHERE event_id = ?", ids)
            for table in VIEW_COLUMNS:
                conn.executemany(f"DELETE FROM {table} WHERE event_id = ?", ids)
            conn.executemany("UPDATE event_revision SET body = NULL WHERE event_id = ?", ids)
            conn.executemany("DELETE FROM picture_outbox WHERE event_id = ?", ids)
            conn.executemany(
                "UPDATE event_use SET purged_at = ? WHERE event_id = ?",
                [(now, event_id) for event_id, _ in expired],
            )
            for _, kind in expired:
                removed[kind] = removed.get(kind, 0) + 1
        return removed

    # -- the picture published back to the members ------------------------------

    def pending_picture(
        self, now: datetime, limit: int = 5000
    ) -> list[tuple[int, str, bytes, int | None]]:
        """(seq, subject, signed bytes, broker append time in ms) not yet
        published whose embargo has passed (by the aggregator's clock, which
        the signer does not control) and which are not purged."""
        cur = self._conn.execute(
            "SELECT p.seq, p.subject, p.msg_value, t.appended_at FROM picture_outbox p "
            "JOIN event_use u ON u.event_id = p.event_id "
            "LEFT JOIN event_time t ON t.event_id = p.event_id WHERE p.published_at IS NULL "
            "AND u.purged_at IS NULL AND (u.embargo_until IS NULL OR u.embargo_until <= ?) "
            "ORDER BY p.seq LIMIT ?",
            (now.isoformat(timespec="seconds"), limit),
        )
        return [
            (int(seq), str(subject), bytes(value), None if at is None else round(at * 1000))
            for seq, subject, value, at in cur
        ]

    def pending_tombstones(self) -> list[str]:
        """Subjects to tombstone on the picture topic (see ``purge_expired``)."""
        cur = self._conn.execute(
            "SELECT subject FROM picture_tombstone WHERE published_at IS NULL ORDER BY subject"
        )
        return [str(subject) for (subject,) in cur]

    def mark_tombstoned(self, subjects: list[str]) -> None:
        now = time.time()
        with transaction(self._conn) as conn:
            conn.executemany(
                "UPDATE picture_tombstone SET published_at = ? WHERE subject = ?",
                [(now, s) for s in subjects],
            )

    def mark_picture_published(self, seqs: list[int]) -> None:
        """Record the broker's acknowledgement of picture rows, each with a
        ``published`` audit entry in the same transaction (node.store.audit)."""
        now = time.time()
        records: list[audit.AuditRecord] = []
        with transaction(self._conn) as conn:
            audit.ensure_schema(conn)
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                cur = conn.execute(
                    "SELECT p.event_id, r.producer, p.subject, r.revision, r.policy_version, "
                    "p.msg_value FROM picture_outbox p JOIN received_event r "
                    "ON r.event_id = p.event_id WHERE p.published_at IS NULL "
                    f"AND p.seq IN ({','.join('?' * len(chunk))}) ORDER BY p.seq",
                    chunk,
                )
                for event_id, producer, subject, revision, policy_version, value in cur:
                    records.append(
                        audit.AuditRecord(
                            entry="published",
                            digest=audit.message_digest(value),
                            event_id=event_id,
                            producer=producer,
                            subject=subject,
                            revision=revision,
                            policy_version=policy_version,
                        )
                    )
            head = audit.append(conn, records) if records else None
            conn.executemany(
                "UPDATE picture_outbox SET published_at = ? WHERE seq = ?",
                [(now, s) for s in seqs],
            )
        audit.save_head(self.path, head)

    # -- revocation: a compromised key's events leave the picture ---------------

    def events_to_revoke(
        self, conn: sqlite3.Connection, key_id: str, since: datetime | None
    ) -> list[tuple[str, str, int, str]]:
        """(event id, subject, revision, envelope digest) of the accepted events
        signed by ``key_id`` that
        the broker appended at or after ``since`` (None: all of them), not yet
        revoked. An event with no recorded append time counts as after."""
        cur = conn.execute(
            "SELECT r.event_id, r.subject, r.revision, r.digest FROM received_event r "
            "LEFT JOIN event_time t ON t.event_id = r.event_id "
            "WHERE r.key_id = ? AND r.event_id NOT IN (SELECT event_id FROM revoked_event) "
            "AND (? IS NULL OR t.appended_at IS NULL OR t.appended_at >= ?) ORDER BY r.rowid",
            (key_id, *(2 * [None if since is None else since.timestamp()])),
        )
        return [(str(e), str(s), int(r), str(d)) for e, s, r, d in cur]

    def mark_revoked(self, conn: sqlite3.Connection, event_ids: list[str], key_id: str) -> None:
        """Take events out: never applied again, never sent on to members."""
        now = time.time()
        rows = [(e,) for e in event_ids]
        conn.executemany(
            "INSERT OR IGNORE INTO revoked_event (event_id, key_id, revoked_at) VALUES (?,?,?)",
            [(e, key_id, now) for e in event_ids],
        )
        conn.executemany("UPDATE received_event SET applied = 0 WHERE event_id = ?", rows)
        conn.executemany("UPDATE event_revision SET applied = 0 WHERE event_id = ?", rows)
        conn.executemany(
            "DELETE FROM picture_outbox WHERE event_id = ? AND published_at IS NULL", rows
        )
        conn.executemany("DELETE FROM relay_outbox WHERE event_id = ? AND relayed_at IS NULL", rows)

    def head_event(self, conn: sqlite3.Connection, subject: str) -> tuple[str, bool] | None:
        """(event id, revoked) of a subject's current head, or None."""
        row = conn.execute(
            "SELECT h.event_id, v.event_id FROM subject_head h LEFT JOIN revoked_event v "
            "ON v.event_id = h.event_id WHERE h.subject = ?",
            (subject,),
        ).fetchone()
        return None if row is None else (str(row[0]), row[1] is not None)

    def best_revision(self, conn: sqlite3.Connection, subject: str) -> dict[str, Any] | None:
        """The newest revision of a subject that is neither revoked nor purged,
        with what it takes to apply it again, or None."""
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute(
                "SELECT e.event_id, e.kind, e.producer, e.revision, e.withdrawn, e.body, "
                "e.produced_at, r.key_id, r.policy_id, r.policy_version, r.policy_sha256, "
                "u.audiences, u.purposes, u.retain_until, u.embargo_until "
                "FROM event_revision e JOIN received_event r ON r.event_id = e.event_id "
                "LEFT JOIN event_use u ON u.event_id = e.event_id WHERE e.subject = ? "
                "AND e.event_id NOT IN (SELECT event_id FROM revoked_event) "
                "AND u.purged_at IS NULL ORDER BY e.revision DESC LIMIT 1",
                (subject,),
            ).fetchone()
        finally:
            conn.row_factory = None
        return None if row is None else dict(row)

    def restore_head(
        self, conn: sqlite3.Connection, subject: str, event_id: str, *, republish: bool
    ) -> None:
        """Mark an earlier revision applied again; with ``republish``, send it
        to the members' picture topic again (the newest of its key there)."""
        conn.execute("UPDATE received_event SET applied = 1 WHERE event_id = ?", (event_id,))
        conn.execute("UPDATE event_revision SET applied = 1 WHERE event_id = ?", (event_id,))
        if republish:
            conn.execute(
                "UPDATE picture_outbox SET published_at = NULL WHERE event_id = ?", (event_id,)
            )

    def clear_subject(self, conn: sqlite3.Connection, subject: str, *, republish: bool) -> None:
        """A subject with no good revision left leaves the picture (and, with
        ``republish``, the members' picture topic: a tombstone)."""
        conn.execute("DELETE FROM flow_cell WHERE subject = ?", (subject,))
        for table in VIEW_COLUMNS:
            conn.execute(f"DELETE FROM {table} WHERE subject = ?", (subject,))
        conn.execute("DELETE FROM subject_head WHERE subject = ?", (subject,))
        if republish:
            conn.execute(
                "INSERT OR REPLACE INTO picture_tombstone (subject, created_at) "
                "SELECT subject, ? FROM picture_outbox WHERE subject = ? "
                "AND published_at IS NOT NULL LIMIT 1",
                (time.time(), subject),
            )

    def record_revocation(
        self,
        conn: sqlite3.Connection,
        key_id: str,
        producer: str,
        compromised_at: datetime | None,
        revoked_at: datetime | None,
        events: int,
        restored: int,
        removed: int,
    ) -> None:
        conn.execute(
            "INSERT INTO key_revocation (key_id, producer, compromised_at, revoked_at, events, "
            "restored, removed, applied_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                key_id,
                producer,
                None if compromised_at is None else compromised_at.isoformat(),
                None if revoked_at is None else revoked_at.isoformat(),
                events,
                restored,
                removed,
                time.time(),
            ),
        )

    def revocations(self) -> list[dict[str, Any]]:
        """Every revocation carried out, oldest first, for ``status``."""
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                "SELECT key_id, producer, compromised_at, revoked_at, events, restored, removed, "
                "applied_at FROM key_revocation ORDER BY id"
            ).fetchall()
        finally:
            self._conn.row_factory = None
        out = []
        for r in rows:
            item = dict(r)
            item["applied_at"] = datetime.fromtimestamp(item["applied_at"], UTC).isoformat(
                timespec="seconds"
            )
            out.append(item)
        return out

    def revoked_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM revoked_event").fetchone()[0])

    # -- reading the picture -------------------------------------------------

    def flow_cells(self) -> list[dict[str, Any]]:
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                "SELECT * FROM flow_cell WHERE count IS NOT NULL ORDER BY subject"
            ).fetchall()
        finally:
            self._conn.row_factory = None
        return [dict(r) for r in rows]

    def withdrawn_flow_cells(self) -> list[dict[str, Any]]:
        """The cells whose country withdrew them: each subject withdrawn now,
        with the body and event id of its last publication (what its readers
        saw), so an export can name the key it deletes."""
        cur = self._conn.execute(
            "SELECT e.subject, e.event_id, e.body FROM subject_head h "
            "JOIN event_revision e ON e.subject = h.subject "
            "WHERE h.withdrawn = 1 AND h.kind = 'FlowStatistic' AND e.withdrawn = 0 "
            "AND e.body IS NOT NULL AND e.revision = (SELECT max(revision) FROM event_revision "
            "WHERE subject = h.subject AND withdrawn = 0 AND body IS NOT NULL) "
            "ORDER BY e.subject"
        )
        return [{**json.loads(body), "subject": subject, "event_id": event_id}
                for subject, event_id, body in cur]

    def rejected(self, limit: int = 1000) -> list[dict[str, Any]]:
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                'SELECT id, reason, detail, event_id, producer, topic, partition, "offset", '
                "received_at FROM rejected_message ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        finally:
            self._conn.row_factory = None
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        q = self._conn.execute
        return {
            "events_received": int(q("SELECT count(*) FROM received_event").fetchone()[0]),
            "events_applied": int(
                q("SELECT count(*) FROM received_event WHERE applied = 1").fetchone()[0]
            ),
            "cells": int(q("SELECT count(*) FROM flow_cell WHERE count IS NOT NULL").fetchone()[0]),
            "rejected": int(q("SELECT count(*) FROM rejected_message").fetchone()[0]),
            "producers": int(
                q("SELECT count(DISTINCT producer) FROM received_event").fetchone()[0]
            ),
        }

    def rejected_by_reason(self) -> dict[str, int]:
        cur = self._conn.execute(
            "SELECT reason, count(*) FROM rejected_message GROUP BY reason ORDER BY reason"
        )
        return {reason: int(n) for reason, n in cur}

    # -- history and reference views ---------------------------------------------

    def history(self, subject_or_event: str) -> list[dict[str, Any]]:
        """Every received revision of a subject (or of the subject of an event id)."""
        row = self._conn.execute(
            "SELECT subject FROM event_revision WHERE event_id = ?", (subject_or_event,)
        ).fetchone()
        subject = row[0] if row is not None else subject_or_event
        head = self._conn.execute(
            "SELECT revision FROM subject_head WHERE subject = ?", (subject,)
        ).fetchone()
        cur = self._conn.execute(
            "SELECT e.event_id, e.subject, e.kind, e.producer, e.revision, e.withdrawn, e.body, "
            "e.schema_version, e.produced_at, e.applied, t.appended_at, v.event_id "
            "FROM event_revision e LEFT JOIN event_time t ON t.event_id = e.event_id "
            "LEFT JOIN revoked_event v ON v.event_id = e.event_id "
            "WHERE e.subject = ? ORDER BY e.revision, e.produced_at",
            (subject,),
        )
        out = []
        for (
            event_id, subj, kind, producer, revision, withdrawn, body, version, at, applied,
            appended, revoked,
        ) in cur:
            out.append(
                {
                    "event_id": event_id,
                    "subject": subj,
                    "kind": kind,
                    "producer": producer,
                    "revision": revision,
                    "action": "withdrawal" if withdrawn else "publication",
                    "produced_at": at,
                    "appended_at": None
                    if appended is None
                    else datetime.fromtimestamp(appended, UTC).isoformat(timespec="seconds"),
                    "schema_version": version,
                    "applied": bool(applied),
                    # Signed by a revoked key after its compromise: out of the picture.
                    "revoked": revoked is not None,
                    "current": head is not None and head[0] == revision,
                    "body": None if body is None else json.loads(body),
                }
            )
        return out

    def view_counts(self) -> dict[str, int]:
        """Current rows of each reference view (withdrawn subjects excluded)."""
        return {
            table.removesuffix("_view"): int(
                self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            )
            for table in VIEW_COLUMNS
        }

    def view(self, table: str) -> list[dict[str, Any]]:
        """Current rows of a reference view: the body plus producer-side metadata."""
        if table not in VIEW_COLUMNS:
            raise KeyError(table)
        cur = self._conn.execute(
            f"SELECT subject, body, revision, event_id FROM {table} ORDER BY subject"
        )
        return [
            {**json.loads(body), "_subject": subject, "_revision": revision, "_event_id": event_id}
            for subject, body, revision, event_id in cur
        ]

    # -- restricted events: relayed, never read ---------------------------------------

    def queue_relay(
        self,
        conn: sqlite3.Connection,
        event_id: str,
        producer: str,
        subject: str,
        revision: int,
        recipients: list[str],
        key: bytes | None,
        value: bytes,
    ) -> None:
        """Keep a restricted event's original bytes for relay to the members, in
        the apply transaction, so a crash between apply and relay loses nothing."""
        writes = PictureWrites()
        writes.relay(event_id, producer, subject, revision, recipients, key, value)
        writes.flush(conn)

    def pending_relay(self, limit: int = 5000) -> list[tuple[int, bytes | None, bytes]]:
        cur = self._conn.execute(
            "SELECT seq, msg_key, msg_value FROM relay_outbox WHERE relayed_at IS NULL "
            "ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [(int(seq), k, v) for seq, k, v in cur]

    def mark_relayed(self, seqs: list[int]) -> None:
        """Record the broker's acknowledgement of relayed rows, each with a
        ``relayed`` audit entry in the same transaction (node.store.audit)."""
        now = time.time()
        with transaction(self._conn) as conn:
            audit.ensure_schema(conn)
            head = audit.record_relayed(conn, seqs)
            conn.executemany(
                "UPDATE relay_outbox SET relayed_at = ? WHERE seq = ?", [(now, s) for s in seqs]
            )
        audit.save_head(self.path, head)

    def restricted_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM relay_outbox").fetchone()[0])

    def restricted_events(self) -> list[dict[str, Any]]:
        """What the Secretariat can know of restricted events: who, what subject,
        to whom; never the content."""
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                "SELECT event_id, producer, subject, revision, recipients, created_at, "
                "relayed_at FROM relay_outbox ORDER BY seq"
            ).fetchall()
        finally:
            self._conn.row_factory = None
        return [dict(r) for r in rows]

    # -- what the folder lists per producer ---------------------------------------------

    def revisions_by(self, producer: str, limit: int = 5000) -> list[dict[str, Any]]:
        """A producer's accepted revisions (metadata only, newest first)."""
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                "SELECT r.event_id, r.subject, r.kind, r.revision, r.withdrawn, r.produced_at, "
                "r.applied, (h.revision = r.revision) AS current FROM event_revision r "
                "LEFT JOIN subject_head h ON h.subject = r.subject WHERE r.producer = ? "
                "ORDER BY r.produced_at DESC, r.subject, r.revision DESC LIMIT ?",
                (producer, limit),
            ).fetchall()
        finally:
            self._conn.row_factory = None
        return [dict(r) for r in rows]

    def received_by(self, producer: str, limit: int = 5000) -> list[dict[str, Any]]:
        """What the aggregator received from a producer (metadata, newest first)."""
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                "SELECT event_id, kind, subject, revision, key_id, policy_id, policy_version, "
                "applied, received_at FROM received_event WHERE producer = ? "
                "ORDER BY received_at DESC LIMIT ?",
                (producer, limit),
            ).fetchall()
        finally:
            self._conn.row_factory = None
        return [dict(r) for r in rows]

    def rejected_from(self, producer: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Messages set aside that name this producer, with the reason."""
        self._conn.row_factory = sqlite3.Row
        try:
            rows = self._conn.execute(
                "SELECT id, reason, detail, event_id, received_at FROM rejected_message "
                "WHERE producer = ? ORDER BY id DESC LIMIT ?",
                (producer, limit),
            ).fetchall()
        finally:
            self._conn.row_factory = None
        return [dict(r) for r in rows]

    def producers(self) -> list[str]:
        """Every producer the aggregator accepted an event from."""
        return [p for (p,) in self._conn.execute(
            "SELECT DISTINCT producer FROM received_event ORDER BY producer")]


#: Names the 95% interval of a noisy count may have in a FlowStatistic body.
