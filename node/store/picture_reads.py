"""The aggregator's picture store read: the picture, its history, what was set
aside, revoked or relayed, and what the folder lists per producer.

``PictureReads`` is the reading half of ``node.store.picture.PictureStore``,
which opens the connection; nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from typing import Any

from node.store.picture_writes import VIEW_COLUMNS


class PictureReads:
    """The queries of the picture store that only read."""

    _conn: sqlite3.Connection

    # -- dead letters ------------------------------------------------------------------

    def dead_letter_reference_count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM dead_letter_reference").fetchone()
        return int(row[0])

    def dead_letter_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM rejected_message WHERE dead_lettered_at IS NOT NULL"
        ).fetchone()
        return int(row[0])

    # -- usage rules: audiences, purposes, retention, embargo --------------------------

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

    # -- revocations carried out -------------------------------------------------------

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

    # -- reading the picture -----------------------------------------------------------

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
        return [
            {**json.loads(body), "subject": subject, "event_id": event_id}
            for subject, event_id, body in cur
        ]

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

    # -- history and reference views ---------------------------------------------------

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
            event_id,
            subj,
            kind,
            producer,
            revision,
            withdrawn,
            body,
            version,
            at,
            applied,
            appended,
            revoked,
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

    # -- restricted events: who, to whom, never what -----------------------------------

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

    # -- what the folder lists per producer --------------------------------------------

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
        return [
            p
            for (p,) in self._conn.execute(
                "SELECT DISTINCT producer FROM received_event ORDER BY producer"
            )
        ]
