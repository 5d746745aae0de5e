"""A member node's reference data and its corrections, in the node's SQLite file.

Tables live beside the raw store's (same ``node.db``), in their own DDL, so
the raw store's module stays about raw records:

    reference_item   the current version of every legislation entry, consular
                     mission, health advisory, focal point or intelligence
                     report the node holds; ``withdrawn`` once withdrawn
    subject_hold     subjects an operator withdrew that the node would
                     otherwise compute again (flow-statistic cells)
    correction_note  who-what-why of every withdraw and correct, for history
    staged_revision  the body of every revision staged, for history (the
                     outbox keeps only signed bytes, the ledger only the last)
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from node.model.reference import BY_KIND, ReferenceItem
from node.store.sqlite import connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reference_item (
    subject      TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    content      TEXT NOT NULL,      -- canonical JSON of the validated record
    withdrawn    INTEGER NOT NULL DEFAULT 0,
    source       TEXT NOT NULL,      -- file it came from, or 'correct'
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reference_item_kind ON reference_item(kind);
CREATE TABLE IF NOT EXISTS subject_hold (
    subject      TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    reason       TEXT,
    held_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS correction_note (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    action       TEXT NOT NULL,      -- withdraw | correct
    reason       TEXT,
    changes      TEXT,               -- JSON of the fields a correction set
    at           REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS correction_note_subject ON correction_note(subject);
"""
#: The tables this store keeps in the member's node.db (its migrations list them).
SCHEMA = _SCHEMA


def canonical(record: dict[str, Any]) -> str:
    """Stable JSON of a record: the content the ledger compares."""
    return json.dumps(
        record,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=lambda v: v.isoformat() if isinstance(v, date) else str(v),
    )


@dataclass(frozen=True)
class StoreCounts:
    new: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class StoredItem:
    subject: str
    kind: str
    item: ReferenceItem
    withdrawn: bool


class ReferenceStore:
    """Reference data of one member node."""

    def __init__(self, path: Path, *, conn: sqlite3.Connection | None = None) -> None:
        """Open the store, or with ``conn`` work on a node store's connection so
        that both take part in one transaction (the schema exists by then: homes
        create it at ``init``)."""
        self.path = path
        self._owned = conn is None
        self._conn = connect(path, _SCHEMA) if conn is None else conn

    def close(self) -> None:
        if self._owned:
            self._conn.close()

    def __enter__(self) -> ReferenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store(self, items: Iterable[ReferenceItem], source: str) -> StoreCounts:
        """Upsert items by subject. A changed item is a correction to publish;
        re-ingesting a withdrawn item brings it back."""
        new = updated = unchanged = 0
        now = time.time()
        with transaction(self._conn) as conn:
            for item in items:
                content = canonical(item.model_dump(mode="json"))
                row = conn.execute(
                    "SELECT content, withdrawn FROM reference_item WHERE subject = ?",
                    (item.subject,),
                ).fetchone()
                if row is not None and row[0] == content and not row[1]:
                    unchanged += 1
                    continue
                conn.execute(
                    "INSERT INTO reference_item (subject, kind, content, withdrawn, source, "
                    "updated_at) VALUES (?,?,?,0,?,?) ON CONFLICT(subject) DO UPDATE SET "
                    "content=excluded.content, withdrawn=0, source=excluded.source, "
                    "updated_at=excluded.updated_at",
                    (item.subject, item.KIND, content, source, now),
                )
                if row is None:
                    new += 1
                else:
                    updated += 1
        return StoreCounts(new, updated, unchanged)

    def items(self, kind: str) -> list[StoredItem]:
        model = BY_KIND[kind]
        cur = self._conn.execute(
            "SELECT subject, content, withdrawn FROM reference_item WHERE kind = ? "
            "ORDER BY subject",
            (kind,),
        )
        return [
            StoredItem(subject, kind, model.model_validate_json(content), bool(withdrawn))
            for subject, content, withdrawn in cur
        ]

    def get(self, subject: str) -> StoredItem | None:
        row = self._conn.execute(
            "SELECT kind, content, withdrawn FROM reference_item WHERE subject = ?", (subject,)
        ).fetchone()
        if row is None:
            return None
        kind, content, withdrawn = row
        return StoredItem(
            subject, kind, BY_KIND[kind].model_validate_json(content), bool(withdrawn)
        )

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            q = self._conn.execute("SELECT count(*) FROM reference_item WHERE withdrawn = 0")
        else:
            q = self._conn.execute(
                "SELECT count(*) FROM reference_item WHERE withdrawn = 0 AND kind = ?", (kind,)
            )
        return int(q.fetchone()[0])

    # -- corrections -----------------------------------------------------------

    def withdraw_item(self, subject: str, kind: str, reason: str | None) -> None:
        with transaction(self._conn) as conn:
            conn.execute(
                "UPDATE reference_item SET withdrawn = 1, updated_at = ? WHERE subject = ?",
                (time.time(), subject),
            )
            self._note(conn, subject, kind, "withdraw", reason, None)

    def correct_item(
        self, item: ReferenceItem, reason: str | None, changes: dict[str, str]
    ) -> None:
        with transaction(self._conn) as conn:
            conn.execute(
                "UPDATE reference_item SET content = ?, withdrawn = 0, source = 'correct', "
                "updated_at = ? WHERE subject = ?",
                (canonical(item.model_dump(mode="json")), time.time(), item.subject),
            )
            self._note(conn, item.subject, item.KIND, "correct", reason, changes)

    def hold(self, subject: str, kind: str, reason: str | None) -> None:
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO subject_hold (subject, kind, reason, held_at) VALUES (?,?,?,?) "
                "ON CONFLICT(subject) DO UPDATE SET reason=excluded.reason",
                (subject, kind, reason, time.time()),
            )
            self._note(conn, subject, kind, "withdraw", reason, None)

    def held(self, kind: str) -> set[str]:
        cur = self._conn.execute("SELECT subject FROM subject_hold WHERE kind = ?", (kind,))
        return {row[0] for row in cur}

    def notes(self, subject: str) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            "SELECT action, reason, changes, at FROM correction_note WHERE subject = ? ORDER BY id",
            (subject,),
        )
        return [
            {
                "action": action,
                "reason": reason,
                "changes": json.loads(changes) if changes else None,
                "at": at,
            }
            for action, reason, changes, at in cur
        ]

    @staticmethod
    def _note(
        conn: sqlite3.Connection,
        subject: str,
        kind: str,
        action: str,
        reason: str | None,
        changes: dict[str, str] | None,
    ) -> None:
        conn.execute(
            "INSERT INTO correction_note (subject, kind, action, reason, changes, at) "
            "VALUES (?,?,?,?,?,?)",
            (subject, kind, action, reason, json.dumps(changes) if changes else None, time.time()),
        )

    # -- history -----------------------------------------------------------------

    def sent_revisions(self, subject: str) -> list[dict[str, Any]]:
        """Each revision of a subject in the outbox, with its body and acknowledgement."""
        cur = self._conn.execute(
            "SELECT o.event_id, o.revision, o.policy_version, o.created_at, o.acked_at, o.topic, "
            'o.partition, o."offset", s.content, s.event_id IS NOT NULL FROM outbox o '
            "LEFT JOIN staged_revision s ON s.event_id = o.event_id WHERE o.subject = ? "
            "ORDER BY o.revision",
            (subject,),
        )
        out = []
        for event_id, rev, policy, created, acked, topic, part, off, content, logged in cur:
            action = "unknown" if not logged else "publication" if content else "withdrawal"
            out.append(
                {
                    "event_id": event_id,
                    "revision": rev,
                    "action": action,
                    "policy_version": policy,
                    "created_at": created,
                    "acked_at": acked,
                    "topic": topic,
                    "partition": part,
                    "offset": off,
                    "body": json.loads(content) if content else None,
                }
            )
        return out
