"""Raise a member store's revisions above what the federation has seen.

A store that lost history (emptied, replaced, or restored from an older
backup) no longer knows the last revision it published of each subject. Left
alone, its next publish starts again at revision 1, or re-uses revisions the
aggregator already applied: the aggregator marks them stale and the regional
picture silently shrinks. ``recover_revisions`` is the explicit way back
(``corredor recover-revisions``, or ``corredor restore --recover-revisions``):

1. It learns the last revision of each of this country's subjects from
   - the picture topic (the Secretariat publishes there, unchanged, the events
     it applied: their envelopes name producer, subject and revision), and
   - audit logs: the store's own, and any ``audit export`` JSON-lines file
     given (an auditor's copy, an older backup's), whose ``sent`` entries name
     subject and revision.
2. For each subject the store knows a lower revision of (or none), it sets the
   ledger to that revision with a placeholder body that no real body equals,
   so that the next publish sends the subject's current state at the next
   revision, or withdraws it if nothing produces it any more. Unacknowledged
   outbox rows at or below the recovered revision would be stale: dropped.
3. A store that lost its identity gets a new one that names the old
   (``recovered_from``); an audit head file naming entries the log no longer
   has is kept aside as ``<db>.audit-head.lost-<time>`` for the auditors.

Revisions are read from envelopes without verifying signatures: a forged,
higher number only makes this node skip revision numbers, which the aggregator
accepts; it can never make a revision go backwards.

Limits: an event the aggregator holds under embargo, or has not consumed yet,
is not on the picture topic yet; pass the audit export that has it, or let the
aggregator catch up first.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node.config import Home
from node.crypto.signing import key_id_for, load_public_pem
from node.errors import CodecError, CorredorError, InputError, StoreError
from node.federation import trust
from node.home import event_codec, picture_topic, require_member
from node.store import audit, audit_check
from node.store import identity as ident
from node.store.node_store import NodeStore
from node.transport.kafka_consumer import read_all

#: The ledger body of a recovered subject: canonical JSON no real body equals.
RECOVERED_CONTENT = '{"corredor.recovered":true}'


@dataclass
class RecoveryResult:
    subjects: int = 0  # this country's subjects found in the sources
    raised: int = 0  # ledger entries set to a higher revision
    highest_revision: int = 0
    superseded_outbox: int = 0  # unacknowledged rows dropped as stale
    sources: dict[str, int] = field(default_factory=dict)  # source -> subjects seen
    store_id: str = ""
    recovered_from: str | None = None
    head_kept_as: str | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def _kind_of(subject: str) -> str:
    return subject.split("|", 1)[0]


def own_key_ids(home: Home) -> set[str]:
    """The ids of every signing key this country has signed with: the current
    one, the retired ones kept in ``keys/retired/``, and this country's keys in
    the home's manifest."""
    ids: set[str] = set()
    publics = [home.public_key_path, *sorted(home.retired_keys_dir.glob("*.pub"))]
    for path in publics:
        try:
            ids.add(key_id_for(home.country, load_public_pem(path.read_bytes())))
        except (OSError, CorredorError, ValueError):
            continue
    if home.manifest_path.exists():
        try:
            member = trust.current_manifest(home).member(home.country)
        except CorredorError:
            member = None
        if member is not None:
            ids.update(k.key_id for k in member.signing_keys)
    return ids


def from_picture_topic(home: Home, bootstrap: str | None = None) -> dict[str, int]:
    """subject -> highest revision of this country's events on the picture
    topic: produced by this country and signed by one of its keys
    (``own_key_ids``), so another federation's events on a shared broker, or
    another home of the same country, do not count."""
    codec = event_codec()
    keys = own_key_ids(home)
    floors: dict[str, int] = {}
    topic = picture_topic(home)
    for msg in read_all(bootstrap or home.bootstrap, topic, security=home.kafka_security()):
        if msg.value is None:
            continue
        try:
            envelope = codec.decode_envelope(codec.split_signed(msg.value)[0])
        except CodecError:
            continue
        if envelope.producer == home.country and envelope.key_id in keys:
            floors[envelope.subject] = max(floors.get(envelope.subject, 0), envelope.revision)
    return floors


def _from_audit_entries(entries: Iterable[dict[str, object]], country: str) -> dict[str, int]:
    floors: dict[str, int] = {}
    for entry in entries:
        subject, revision = entry.get("subject"), entry.get("revision")
        if entry.get("entry") != "sent" or entry.get("producer") != country:
            continue
        if isinstance(subject, str) and isinstance(revision, int):
            floors[subject] = max(floors.get(subject, 0), revision)
    return floors


def from_audit_export(path: Path, country: str) -> dict[str, int]:
    """subject -> highest revision ``sent`` in an ``audit export`` JSON-lines file."""
    entries: list[dict[str, object]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the audit export {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}, line {number}: not a JSON audit entry ({exc})") from exc
        if not isinstance(entry, dict):
            raise InputError(f"{path}, line {number}: not a JSON audit entry")
        entries.append(entry)
    return _from_audit_entries(entries, country)


def _merge(into: dict[str, int], found: dict[str, int]) -> None:
    for subject, revision in found.items():
        into[subject] = max(into.get(subject, 0), revision)


def recover_revisions(
    home: Home,
    *,
    bootstrap: str | None = None,
    audit_exports: Sequence[Path] = (),
    picture_topic: bool = True,
) -> RecoveryResult:
    """Raise the store's ledger above every revision the sources know, and
    accept the store as this home's (see the module docstring)."""
    require_member(home)
    result = RecoveryResult()
    floors: dict[str, int] = {}
    if picture_topic:
        found = from_picture_topic(home, bootstrap)
        result.sources["picture_topic"] = len(found)
        _merge(floors, found)
    for path in audit_exports:
        found = from_audit_export(path, home.country)
        result.sources[str(path)] = len(found)
        _merge(floors, found)
    db = home.store_path
    lost_head: Path | None = None
    with (
        NodeStore(db) as store,
        # The drain lock first: an overlapped publish's drainer holds it while
        # its parent waits for the staging lock, never the other way round.
        store.drain_lock(),  # no drainer sends the rows dropped here
        store.staging_lock(),
        store.transaction() as conn,
    ):
        problems, identity = ident.problems(conn, db, "member", home.country)
        if identity is not None and identity.country not in (None, home.country):
            raise StoreError(
                f"{db} is {identity.country}'s store, not {home.country}'s: not recovering it"
            )
        found = _from_audit_entries((vars(e) for e in _store_entries(conn)), home.country)
        result.sources["store_audit_log"] = len(found)
        _merge(floors, found)
        result.subjects = len(floors)
        result.highest_revision = max(floors.values(), default=0)
        # subject -> (revision, whether the broker acknowledged that event).
        ledger = {
            s: (int(r), acked is not None)
            for s, r, acked in conn.execute(
                "SELECT p.subject, p.revision, o.acked_at FROM published_subject p "
                "LEFT JOIN outbox o ON o.event_id = p.event_id"
            )
        }
        now = time.time()
        # Raised: a subject the store knows a lower revision of, or none, or the
        # same revision only as an event it never sent (another event than the
        # federation's, which would be stale).
        raise_rows = [
            (subject, _kind_of(subject), revision, RECOVERED_CONTENT, "recovered", now)
            for subject, revision in sorted(floors.items())
            if revision > ledger.get(subject, (0, False))[0]
            or (revision == ledger[subject][0] and not ledger[subject][1])
        ]
        conn.executemany(
            "INSERT INTO published_subject (subject, kind, revision, content, event_id, "
            "updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT(subject) DO UPDATE SET "
            "revision=excluded.revision, content=excluded.content, "
            "event_id=excluded.event_id, updated_at=excluded.updated_at",
            raise_rows,
        )
        result.raised = len(raise_rows)
        for subject, revision in floors.items():
            cur = conn.execute(
                "DELETE FROM outbox WHERE acked_at IS NULL AND subject = ? AND revision <= ?",
                (subject, revision),
            )
            result.superseded_outbox += cur.rowcount
        head = audit_check.read_head(db)
        last = conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0] or 0
        if head is not None and head[0] > last:
            lost_head = db.with_name(
                f"{db.name}{audit.HEAD_SUFFIX}.lost-{time.strftime('%Y%m%dT%H%M%S')}"
            )
            result.head_kept_as = lost_head.name
        if problems or identity is None:
            recorded = ident.read_identity_file(db)
            old = recorded["store_id"] if recorded is not None else None
            identity = ident.assign(conn, db, "member", home.country, recovered_from=old)
            result.recovered_from = old
        ident.mark_recovered(conn)
        result.store_id = identity.store_id
    if lost_head is not None:  # once the recovery committed
        os.replace(audit.head_path(db), lost_head)
    return result


def _store_entries(conn: sqlite3.Connection) -> list[audit.AuditEntry]:
    cur = conn.execute(f"SELECT {','.join(audit.FIELDS)} FROM audit_log ORDER BY seq")
    return [audit.AuditEntry(*row) for row in cur]
