"""What a member key's revocation does to the aggregator's store: the events
it signed after its compromise leave the picture, the newest good revision
of each subject they touched takes their place (or the subject leaves), and
the revocation is recorded. Every method runs in the caller's transaction,
so a revocation is applied whole or not at all (``node.aggregator.revocation``)."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import Any

from node.store.picture_writes import VIEW_COLUMNS


class PictureRevocations:
    """The revocation writes of ``PictureStore``: each takes the open
    transaction's connection."""

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
