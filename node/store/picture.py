"""The aggregator's store: member keys, every accepted event, the current
picture (latest revision of each subject) and everything set aside."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from node.store import audit
from node.store.picture_reads import PictureReads
from node.store.picture_schema import open_picture

# The apply's rows and the view tables are defined with its writes; callers
# keep importing them from the store.
from node.store.picture_writes import VIEW_COLUMNS as VIEW_COLUMNS
from node.store.picture_writes import PictureWrites
from node.store.picture_writes import ReceivedEvent as ReceivedEvent
from node.store.picture_writes import Rejected as Rejected
from node.store.sqlite import transaction

#: Keys per ``IN (...)`` list: far below SQLite's limit on a statement's
#: parameters (32,766 since 3.32, 999 before).
_IN_LIMIT = 500


class PictureStore(PictureReads):
    """The SQLite store of the Secretariat's aggregator: its writes here, its
    reads of the picture in ``PictureReads``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = open_picture(path)

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
            'SELECT id, reason, detail, event_id, producer, topic, partition, "offset", raw, '
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

    # -- usage rules: audiences, purposes, retention, embargo ------------------

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


#: Names the 95% interval of a noisy count may have in a FlowStatistic body.
