"""The schema of the aggregator's picture store (``node.store.picture``), and
the columns a picture made before they existed is given when it opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.store.sqlite import connect

SCHEMA = """
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


def add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Columns a picture made before they existed lacks (FlowStatistic v2's
    interval): added, empty, so the store opens as it is."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def open_picture(path: Path) -> sqlite3.Connection:
    """The picture store at ``path``, its schema created or brought up to date."""
    conn = connect(path, SCHEMA)
    add_columns(conn, "flow_cell", {"ci95_low": "INTEGER", "ci95_high": "INTEGER"})
    return conn
