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
from node.store.picture_revocation import PictureRevocations
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


class PictureStore(PictureReads, PictureRevocations):
    """The SQLite store of the Secretariat's aggregator: its writes here, its
    reads of the picture in ``PictureReads``, what a key's revocation does to
    it in ``PictureRevocations``."""

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
