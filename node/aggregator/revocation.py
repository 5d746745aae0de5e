"""Carrying out a key's revocation in the picture.

A rotation ends a key's validity and keeps what it signed before. A revocation
says the key may be in other hands: from its compromise time (or, when the
revocation names none, ever) nothing it signed is trusted. The aggregator
rejects such events as they arrive (``verify_message`` judges the key at the
broker's append time); this module takes out the ones it had already applied:

- every accepted event signed by the key that the broker appended at or after
  the compromise time is marked revoked (history keeps it, flagged);
- each subject whose current revision was one of them goes back to its newest
  revision that is neither revoked nor purged, or leaves the picture if it has
  none;
- at the Secretariat the restored revision goes to the members' picture topic
  again (a subject with none left gets a tombstone); members carry out the
  same revocation in their own copy from their own manifest;
- each event taken out gets a ``revoked`` audit entry, and ``status`` lists
  the revocation with its counts.

Carrying it out again changes nothing: events already revoked are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from node.aggregator.views import APPLIERS
from node.federation.manifest import KeyDirectory
from node.model.events import RESTRICTED_KINDS, Envelope, PolicyRef
from node.store import audit
from node.store.audit import AuditRecord
from node.store.picture import PictureStore
from node.store.picture_writes import PictureWrites

#: ``KeyEntry.untrusted_from`` for a revocation that names no compromise time.
SINCE_EVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RevocationChange:
    key_id: str
    producer: str
    compromised_at: datetime | None
    events: int
    restored: int
    removed: int


def _envelope(subject: str, row: dict[str, Any]) -> Envelope:
    """The stored revision as the appliers take it (the fields they read)."""
    return Envelope(
        event_id=row["event_id"],
        producer=row["producer"],
        kind=row["kind"],
        subject=subject,
        revision=int(row["revision"]),
        produced_at=datetime.fromisoformat(row["produced_at"]),
        policy=PolicyRef(row["policy_id"], row["policy_version"], row["policy_sha256"]),
        audiences=tuple(json.loads(row["audiences"] or "[]")),
        purposes=tuple(json.loads(row["purposes"] or "[]")),
        key_id=row["key_id"],
        retain_until=None
        if row["retain_until"] is None
        else date.fromisoformat(row["retain_until"]),
        embargo_until=None
        if row["embargo_until"] is None
        else datetime.fromisoformat(row["embargo_until"]),
    )


def enforce_revocations(
    store: PictureStore, keys: KeyDirectory, *, republish: bool
) -> list[RevocationChange]:
    """Take out of the picture what the directory's revoked keys signed after
    their compromise. ``republish``: the Secretariat's picture (members get the
    restored revisions again); a member's own copy does not publish."""
    revoked = keys.revoked()
    if not revoked:
        return []
    changes: list[RevocationChange] = []
    trail: list[AuditRecord] = []
    with store.transaction() as conn:
        audit.ensure_schema(conn)
        for trusted in revoked:
            entry = trusted.entry
            since = entry.untrusted_from()
            taken = store.events_to_revoke(
                conn, entry.key_id, None if since in (None, SINCE_EVER) else since
            )
            if not taken:
                continue
            store.mark_revoked(conn, [t[0] for t in taken], entry.key_id)
            restored = removed = 0
            for subject in sorted({t[1] for t in taken}):
                current = store.head_event(conn, subject)
                if current is None or not current[1]:
                    continue  # its current revision is another key's, still good
                best = store.best_revision(conn, subject)
                if best is None:
                    store.clear_subject(conn, subject, republish=republish)
                    removed += 1
                    continue
                envelope = _envelope(subject, best)
                body = None if best["body"] is None else json.loads(best["body"])
                if envelope.kind not in RESTRICTED_KINDS and envelope.kind in APPLIERS:
                    writes = PictureWrites()
                    APPLIERS[envelope.kind](writes, envelope, body)
                    writes.flush(conn)
                store.set_head(
                    conn,
                    subject,
                    envelope.kind,
                    envelope.producer,
                    envelope.revision,
                    envelope.event_id,
                    bool(best["withdrawn"]),
                )
                store.restore_head(conn, subject, envelope.event_id, republish=republish)
                restored += 1
            trail.extend(
                AuditRecord(
                    entry="revoked",
                    digest=digest,  # of the signed envelope, as received_event keeps it
                    event_id=event_id,
                    producer=trusted.country,
                    subject=subject,
                    revision=revision,
                    reason=f"signed by revoked key {entry.key_id}",
                )
                for event_id, subject, revision, digest in taken
            )
            store.record_revocation(
                conn,
                entry.key_id,
                trusted.country,
                entry.compromised_at,
                entry.revoked_at,
                len(taken),
                restored,
                removed,
            )
            changes.append(
                RevocationChange(
                    entry.key_id,
                    trusted.country,
                    entry.compromised_at,
                    len(taken),
                    restored,
                    removed,
                )
            )
        head = audit.append(conn, trail) if trail else None
    if head is not None:
        audit.save_head(store.path, head)
    return changes
