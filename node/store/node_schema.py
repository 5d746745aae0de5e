"""The schema of a member node's store (``node.store.node_store``), one versioned
step at a time: raw records, the publication ledger, the outbox, the audit log
and the reference records (version 1), the store's identity (2), the privacy
ledger (3)."""

from __future__ import annotations

from node.store import audit, identity, reference
from node.store.identity import Migration

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_encounter (
    record_id        TEXT PRIMARY KEY,
    document_number  TEXT NOT NULL,
    family_name      TEXT NOT NULL,
    given_names      TEXT NOT NULL,
    date_of_birth    TEXT NOT NULL,
    sex              TEXT NOT NULL,
    nationality      TEXT NOT NULL,
    encounter_date   TEXT NOT NULL,
    encounter_place  TEXT NOT NULL,
    previous_country TEXT,
    health_notes     TEXT,
    source_file      TEXT NOT NULL,
    ingested_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS published_subject (
    subject     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    content     TEXT,           -- canonical JSON of the last body; NULL once withdrawn
    event_id    TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    policy_version TEXT NOT NULL,
    msg_key     BLOB NOT NULL,
    msg_value   BLOB NOT NULL,
    created_at  REAL NOT NULL,
    acked_at    REAL,
    topic       TEXT,
    partition   INTEGER,
    "offset"    INTEGER
);
-- The body of every revision staged, for history (`corredor history`), written
-- with the outbox row.
CREATE TABLE IF NOT EXISTS staged_revision (
    event_id     TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    content      TEXT               -- canonical JSON of the body; NULL for a withdrawal
);
CREATE INDEX IF NOT EXISTS staged_revision_subject ON staged_revision(subject, revision);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(seq) WHERE acked_at IS NULL;
-- Every policy version that let something out, by the hash events carry.
CREATE TABLE IF NOT EXISTS policy_archive (
    sha256      TEXT PRIMARY KEY,
    policy_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    canonical   TEXT NOT NULL,
    first_used  REAL NOT NULL
);
-- What the last release of each block published and hid (counts derived from
-- raw data: never leaves). The next release of the block is protected against it.
CREATE TABLE IF NOT EXISTS suppression_ledger (
    kind        TEXT NOT NULL,
    block       TEXT NOT NULL,
    entry       TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (kind, block)
);
"""

#: The differential-privacy ledger (node.policy.privacy): each period's noisy
#: tree (derived from raw data: never leaves) and every measurement charged to
#: an audience, which the budget of the policy and the regional floor bound.
_PRIVACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS privacy_state (
    exchange    TEXT NOT NULL,
    period      TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (exchange, period)
);
CREATE TABLE IF NOT EXISTS privacy_spend (
    exchange    TEXT NOT NULL,
    audience    TEXT NOT NULL,
    period      TEXT NOT NULL,
    measurement TEXT NOT NULL,
    epsilon     REAL NOT NULL,
    spent_at    REAL NOT NULL,
    PRIMARY KEY (exchange, audience, period, measurement)
);
"""

#: The store's schema, one versioned step at a time (node.store.identity.migrate).
#: Version 1 is the schema every store had before versions were recorded (all
#: ``IF NOT EXISTS``, so a store from then is taken as version 1 as it is).
MIGRATIONS = (
    Migration(1, "baseline", _SCHEMA + audit.SCHEMA + reference.SCHEMA),
    Migration(2, "store identity", identity.IDENTITY_SCHEMA),
    Migration(3, "privacy ledger", _PRIVACY_SCHEMA),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
