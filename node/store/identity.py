"""A store's identity and schema version, and the check that it kept its history.

Every member store carries, in the table ``store_identity``:

    store_id          a random id given when the home was created
    role, country     whose store it is
    created_at        when
    recovered_from    the id of the store this one replaced after a loss
    pending_recovery  why publishing waits for ``corredor recover-revisions``
                      (set by ``corredor restore``), else NULL
    revisions_recovered_at  when ``recover-revisions`` last raised its ledger

and the same identity in a file beside it, ``<db>.identity`` (mode 0600). The
schema is versioned: ``schema_migration`` lists the migrations applied, each
applied once, in order, in one transaction with its record.

``verify_identity`` refuses a store that lost its history while something
beside it knows more: a store emptied or replaced (no identity, or another
one, while the identity file names this home's), a store of another country,
an audit log shorter than the audit head file says it was, a schema newer than
this release. Carrying on there would start revisions again at 1, below what
the aggregator has seen: it would mark them stale and the regional picture
would silently shrink. ``corredor recover-revisions`` (node.member.revisions) is the
explicit way back.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from node.errors import StoreError, StoreLostHistory
from node.files import write_private_text
from node.store import audit_check

IDENTITY_SUFFIX = ".identity"

_MIGRATION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);
"""

IDENTITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_identity (
    one              INTEGER PRIMARY KEY CHECK (one = 1),
    store_id         TEXT NOT NULL,
    role             TEXT NOT NULL,
    country          TEXT,
    created_at       TEXT NOT NULL,
    recovered_from   TEXT,
    pending_recovery TEXT,
    revisions_recovered_at TEXT
);
"""


@dataclass(frozen=True)
class Migration:
    """One schema step: a script of idempotent DDL (``IF NOT EXISTS``), or
    statements that are safe because it runs once, with its record, in one
    transaction."""

    version: int
    name: str
    script: str


@dataclass(frozen=True)
class StoreIdentity:
    store_id: str
    role: str
    country: str | None
    created_at: str
    recovered_from: str | None = None
    pending_recovery: str | None = None
    revisions_recovered_at: str | None = None

    def as_file(self) -> dict[str, str | None]:
        return {
            "store_id": self.store_id,
            "role": self.role,
            "country": self.country,
            "created_at": self.created_at,
        }


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute(_MIGRATION_TABLE)
    row = conn.execute("SELECT max(version) FROM schema_migration").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, path: Path, migrations: tuple[Migration, ...]) -> int:
    """Apply the migrations this store has not had; returns its version.

    A store whose version is above the newest migration here was written by a
    newer release: refused, never downgraded."""
    latest = migrations[-1].version
    current = schema_version(conn)
    if current > latest:
        raise StoreError(
            f"{path}: schema version {current} is newer than this release supports "
            f"({latest}); run the Corredor release that wrote it"
        )
    for step in migrations:
        if step.version <= current:
            continue
        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;\n"
                f"{step.script}\n;"
                "INSERT OR IGNORE INTO schema_migration (version, name, applied_at) "
                f"VALUES ({int(step.version)}, '{step.name}', '{now}');\n"
                "COMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"{path}: migration {step.version} ({step.name}) failed: {exc}"
            ) from exc
    return latest


def identity_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + IDENTITY_SUFFIX)


def read_identity(conn: sqlite3.Connection) -> StoreIdentity | None:
    row = conn.execute(
        "SELECT store_id, role, country, created_at, recovered_from, pending_recovery, "
        "revisions_recovered_at FROM store_identity WHERE one = 1"
    ).fetchone()
    return None if row is None else StoreIdentity(*row)


def read_identity_file(db_path: Path) -> dict[str, str | None] | None:
    path = identity_path(db_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(f"the store identity file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("store_id"), str):
        raise StoreError(f"the store identity file {path} names no store_id")
    return data


def write_identity_file(db_path: Path, identity: StoreIdentity) -> None:
    write_private_text(
        identity_path(db_path), json.dumps(identity.as_file(), indent=2) + "\n", encoding="utf-8"
    )


def assign(
    conn: sqlite3.Connection,
    db_path: Path,
    role: str,
    country: str | None,
    *,
    recovered_from: str | None = None,
) -> StoreIdentity:
    """Give the store a new identity, in the table and in the file beside it."""
    identity = StoreIdentity(
        store_id=uuid.uuid4().hex,
        role=role,
        country=country,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        recovered_from=recovered_from,
    )
    conn.execute(
        "INSERT INTO store_identity (one, store_id, role, country, created_at, recovered_from) "
        "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT(one) DO UPDATE SET store_id=excluded.store_id, "
        "role=excluded.role, country=excluded.country, created_at=excluded.created_at, "
        "recovered_from=excluded.recovered_from, pending_recovery=NULL",
        (
            identity.store_id,
            identity.role,
            identity.country,
            identity.created_at,
            identity.recovered_from,
        ),
    )
    write_identity_file(db_path, identity)
    return identity


def set_pending_recovery(conn: sqlite3.Connection, reason: str | None) -> None:
    conn.execute("UPDATE store_identity SET pending_recovery = ? WHERE one = 1", (reason,))


def mark_recovered(conn: sqlite3.Connection) -> None:
    """Record that recover-revisions raised the ledger; clears a pending restore."""
    conn.execute(
        "UPDATE store_identity SET pending_recovery = NULL, revisions_recovered_at = ? "
        "WHERE one = 1",
        (datetime.now(UTC).isoformat(timespec="seconds"),),
    )


def _audit_extent(conn: sqlite3.Connection) -> int:
    """The last seq of the audit log (0 if empty): O(1) on its primary key."""
    row = conn.execute("SELECT max(seq) FROM audit_log").fetchone()
    return int(row[0] or 0)


RECOVER_HINT = (
    "restore it from a backup (`corredor restore BACKUP DIR --recover-revisions`), or, "
    "to carry on with this store, raise its revisions above what the federation has "
    "seen: `corredor --home HOME recover-revisions`"
)


def problems(
    conn: sqlite3.Connection, db_path: Path, role: str, country: str | None
) -> tuple[list[str], StoreIdentity | None]:
    """What is wrong with this store's identity and history (empty: nothing),
    and its identity. Reads only; a legacy store without identity is no problem
    here (``verify_identity`` adopts it)."""
    found: list[str] = []
    identity = read_identity(conn)
    recorded = read_identity_file(db_path)
    name = db_path.name
    if identity is None and recorded is not None:
        found.append(
            f"{name} has lost its identity: {identity_path(db_path).name} names store "
            f"{recorded['store_id']} (created {recorded.get('created_at')}), but {name} is "
            "empty or another file: it was emptied or replaced and its history is gone"
        )
    elif (
        identity is not None and recorded is not None and recorded["store_id"] != identity.store_id
    ):
        found.append(
            f"{name} is store {identity.store_id}, but this home's store is "
            f"{recorded['store_id']}: the file was replaced"
        )
    if identity is not None and identity.role != role:
        found.append(f"{name} is a {identity.role}'s store, and this home is a {role}'s")
    if identity is not None and country is not None and identity.country not in (None, country):
        found.append(f"{name} is {identity.country}'s store, and this home is {country}'s")
    head = audit_check.read_head(db_path)
    if head is not None:
        entries = _audit_extent(conn)
        if head[0] > entries:
            found.append(
                f"{name} lost its history: the audit head file names entry {head[0]}, the "
                f"store's audit log ends at {entries}"
            )
    return found, identity


def verify_identity(
    conn: sqlite3.Connection,
    db_path: Path,
    role: str,
    country: str | None,
    *,
    staging: bool = True,
) -> StoreIdentity:
    """Raise ``StoreLostHistory`` naming the problem unless the store is this
    home's, with its history; with ``staging``, also while a restore waits for
    ``recover-revisions``. A store from before identities (none in the table,
    no file, nothing lost) is given one."""
    found, identity = problems(conn, db_path, role, country)
    if found:
        raise StoreLostHistory(f"{db_path}: {'; '.join(found)}. Refusing to run: {RECOVER_HINT}")
    if identity is None:
        identity = assign(conn, db_path, role, country)
    elif read_identity_file(db_path) is None:
        write_identity_file(db_path, identity)
    if staging and identity.pending_recovery:
        raise StoreLostHistory(
            f"{db_path}: {identity.pending_recovery}; its revisions may be below what the "
            "federation has seen. Run `corredor --home HOME recover-revisions` before "
            "staging or publishing"
        )
    return identity
