"""The aggregator's writes to its picture, batched: one ``executemany`` per run
of one statement on one table, instead of one ``execute`` per row.

The rows of each table are kept in message order and its statements sent in
that order (a run of upserts, then a delete, then more upserts each keep their
place). No table depends on another (no triggers, no foreign keys), so what
each table holds afterwards, rowids and AUTOINCREMENT numbers included, is
what one ``execute`` per row in message order gave.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from node.model.events import Envelope

#: Reference view tables and their key columns (besides subject, body, revision, event_id).
VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "legislation_view": ("country", "topic"),
    "consular_view": ("host_country", "sending_country", "mission_type", "city"),
    "health_view": ("issuer", "country_of_origin", "disease", "valid_from", "valid_until"),
    "focal_point_view": ("country", "name"),
    "encounter_view": ("reporting_country", "linkage_token", "encounter_period", "nationality"),
}


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: str
    producer: str
    kind: str
    subject: str
    revision: int
    digest: str
    key_id: str
    policy_id: str
    policy_version: str
    policy_sha256: str
    topic: str | None
    partition: int | None
    offset: int | None


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
    event_id: str | None
    producer: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    raw: bytes | None
    key: bytes | None = None


def _json_value(value: object) -> str:
    """Dates and timestamps in stored bodies, as ISO 8601."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def body_json(body: dict[str, Any] | None) -> str | None:
    """A decoded body as the history and the views store it."""
    return None if body is None else json.dumps(body, sort_keys=True, default=_json_value)


@lru_cache(maxsize=256)
def _json_list(values: tuple[str, ...]) -> str:
    # Few distinct audience and purpose lists: each is encoded once.
    return json.dumps(list(values))


_RECEIVED = (
    "INSERT INTO received_event (event_id, producer, kind, subject, revision, digest, "
    "key_id, policy_id, policy_version, policy_sha256, applied, topic, partition, "
    '"offset", received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)'
)
_EVENT_TIME = "INSERT OR IGNORE INTO event_time (event_id, appended_at) VALUES (?,?)"
_EVENT_USE = (
    "INSERT OR IGNORE INTO event_use (event_id, audiences, purposes, retain_until, "
    "embargo_until) VALUES (?,?,?,?,?)"
)
_REVISION = (
    "INSERT OR IGNORE INTO event_revision (event_id, subject, kind, producer, revision, "
    "withdrawn, body, schema_version, produced_at, applied) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_HEAD = (
    "INSERT INTO subject_head (subject, kind, producer, revision, event_id, withdrawn) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT(subject) DO UPDATE SET revision=excluded.revision, "
    "event_id=excluded.event_id, withdrawn=excluded.withdrawn"
)
_FLOW = (
    "INSERT INTO flow_cell (subject, reporting_country, period, period_type, nationality, "
    "nationality_region, sex, age_band, previous_country, count, obs_status, revision, "
    "event_id, ci95_low, ci95_high) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(subject) DO UPDATE SET "
    "period=excluded.period, period_type=excluded.period_type, "
    "nationality=excluded.nationality, nationality_region=excluded.nationality_region, "
    "sex=excluded.sex, age_band=excluded.age_band, "
    "previous_country=excluded.previous_country, count=excluded.count, "
    "obs_status=excluded.obs_status, revision=excluded.revision, "
    "event_id=excluded.event_id, ci95_low=excluded.ci95_low, "
    "ci95_high=excluded.ci95_high"
)
_RELAY = (
    "INSERT OR IGNORE INTO relay_outbox (event_id, producer, subject, revision, "
    "recipients, msg_key, msg_value, created_at) VALUES (?,?,?,?,?,?,?,?)"
)
_PICTURE = (
    "INSERT OR IGNORE INTO picture_outbox (event_id, subject, msg_value, created_at) "
    "VALUES (?,?,?,?)"
)
_REJECTED = (
    "INSERT INTO rejected_message (reason, detail, event_id, producer, topic, partition, "
    '"offset", raw, msg_key, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)'
)


def _view_upsert(table: str) -> str:
    names = ("subject", *VIEW_COLUMNS[table], "body", "revision", "event_id")
    updates = ", ".join(f"{c}=excluded.{c}" for c in names[1:])
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT(subject) DO UPDATE SET {updates}"
    )


_UPSERT_VIEW: dict[str, str] = {table: _view_upsert(table) for table in VIEW_COLUMNS}
_DELETE_VIEW: dict[str, str] = {
    table: f"DELETE FROM {table} WHERE subject = ?" for table in VIEW_COLUMNS
}

_NO_BODY = object()


class PictureWrites:
    """Rows for the picture, held until ``flush`` sends them in one transaction."""

    def __init__(self) -> None:
        #: table -> runs of (statement, rows), in the order they were added.
        self._runs: dict[str, list[tuple[str, list[tuple[Any, ...]]]]] = {}
        # The history and a view store the same event's body: encoded once.
        self._body: object = _NO_BODY
        self._body_json: str | None = None

    def _add(self, table: str, sql: str, row: tuple[Any, ...]) -> None:
        runs = self._runs.setdefault(table, [])
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(row)
        else:
            runs.append((sql, [row]))

    def _json(self, body: dict[str, Any] | None) -> str | None:
        if body is not self._body:
            self._body, self._body_json = body, body_json(body)
        return self._body_json

    def flush(self, conn: sqlite3.Connection) -> None:
        """Send every row held, then hold none."""
        for runs in self._runs.values():
            for sql, rows in runs:
                conn.executemany(sql, rows)
        self._runs.clear()
        self._body, self._body_json = _NO_BODY, None

    # -- what every accepted event leaves --------------------------------------

    def received(self, event: ReceivedEvent, applied: bool) -> None:
        self._add(
            "received_event",
            _RECEIVED,
            (
                event.event_id,
                event.producer,
                event.kind,
                event.subject,
                event.revision,
                event.digest,
                event.key_id,
                event.policy_id,
                event.policy_version,
                event.policy_sha256,
                int(applied),
                event.topic,
                event.partition,
                event.offset,
                time.time(),
            ),
        )

    def use(self, envelope: Envelope, appended_at: datetime) -> None:
        """An accepted event's usage rules (from its signed envelope) and the
        broker's append time they are judged against."""
        self._add("event_time", _EVENT_TIME, (envelope.event_id, appended_at.timestamp()))
        self._add(
            "event_use",
            _EVENT_USE,
            (
                envelope.event_id,
                _json_list(tuple(envelope.audiences)),
                _json_list(tuple(envelope.purposes)),
                None if envelope.retain_until is None else envelope.retain_until.isoformat(),
                None
                if envelope.embargo_until is None
                else envelope.embargo_until.isoformat(timespec="seconds"),
            ),
        )

    def revision(
        self,
        envelope: Envelope,
        body: dict[str, Any] | None,
        schema_version: int | None,
        applied: bool,
    ) -> None:
        self._add(
            "event_revision",
            _REVISION,
            (
                envelope.event_id,
                envelope.subject,
                envelope.kind,
                envelope.producer,
                envelope.revision,
                int(envelope.is_withdrawal),
                self._json(body),
                schema_version,
                envelope.produced_at.isoformat(timespec="seconds"),
                int(applied),
            ),
        )

    def rejected(self, rejected: Rejected) -> None:
        self._add(
            "rejected_message",
            _REJECTED,
            (
                rejected.reason,
                rejected.detail,
                rejected.event_id,
                rejected.producer,
                rejected.topic,
                rejected.partition,
                rejected.offset,
                rejected.raw,
                rejected.key,
                time.time(),
            ),
        )

    # -- the current picture ---------------------------------------------------

    def head(
        self,
        subject: str,
        kind: str,
        producer: str,
        revision: int,
        event_id: str,
        withdrawn: bool,
    ) -> None:
        self._add(
            "subject_head", _HEAD, (subject, kind, producer, revision, event_id, int(withdrawn))
        )

    def flow(
        self,
        subject: str,
        revision: int,
        event_id: str,
        producer: str,
        body: dict[str, Any] | None,
    ) -> None:
        """Set a subject's cell to this revision; a None body marks it withdrawn."""
        b = body or {}
        self._add(
            "flow_cell",
            _FLOW,
            (
                subject,
                producer,
                b.get("period", ""),
                b.get("period_type", ""),
                b.get("nationality"),
                b.get("nationality_region"),
                b.get("sex"),
                b.get("age_band"),
                b.get("previous_country"),
                b.get("count"),
                b.get("obs_status"),
                revision,
                event_id,
                b.get("ci95_low"),
                b.get("ci95_high"),
            ),
        )

    def upsert_view(
        self, table: str, envelope: Envelope, keys: dict[str, Any], body: dict[str, Any]
    ) -> None:
        self._add(
            table,
            _UPSERT_VIEW[table],
            (
                envelope.subject,
                *(keys.get(c) for c in VIEW_COLUMNS[table]),
                self._json(body),
                envelope.revision,
                envelope.event_id,
            ),
        )

    def delete_view(self, table: str, subject: str) -> None:
        if table not in VIEW_COLUMNS:
            raise KeyError(table)
        self._add(table, _DELETE_VIEW[table], (subject,))

    # -- outboxes: what goes on to the members ------------------------------------

    def relay(
        self,
        event_id: str,
        producer: str,
        subject: str,
        revision: int,
        recipients: list[str],
        key: bytes | None,
        value: bytes,
    ) -> None:
        """A restricted event's original bytes, for relay to the members."""
        self._add(
            "relay_outbox",
            _RELAY,
            (event_id, producer, subject, revision, ",".join(recipients), key, value, time.time()),
        )

    def picture(self, event_id: str, subject: str, value: bytes) -> None:
        """An applied event's signed bytes, for the members' picture topic."""
        self._add("picture_outbox", _PICTURE, (event_id, subject, value, time.time()))
