"""Verify, decode and apply events from the shared topic into the picture.

Order of checks for each message, each failure setting the message aside with
a reason (never applied, never silently dropped):

    undecodable         not a SignedEvent / Envelope in any known schema
    unsigned            no signature
    unknown-key         signed with a key the manifest does not list
    producer-mismatch   the key belongs to another country than the producer
    untrusted-time      the record carries no broker append time (the topic is
                        not ``message.timestamp.type=LogAppendTime``), so the
                        only time it has is one its producer chose
    revoked-key         the key was revoked before the broker appended the event
                        (for a compromise: at or after the compromise time)
    expired-key         the key's validity had ended when the broker appended it
    bad-signature       the signature does not verify (forged or altered); for
                        a batch-sealed event, also a malformed inclusion proof
                        or one that does not lead to the signed root
    unknown-kind        no view applies events of this kind
    undecodable-body    the body does not decode as its kind
    subject-mismatch    the subject (or a reference body) names another producer
    invalid-body        a reference body breaks the code lists or rules its
                        producer's node validates (e.g. not an ISO 3166 code)
    clock-skew          ``produced_at`` is further from the broker's append time
                        than the regional floor allows (``RegionalFloor.time_problem``)
    below-regional-floor  the event breaks the regional floor: an audience or
                        purpose it does not allow for the kind, a longer retention
                        (counted from the broker's append date),
                        a FlowStatistic count below the floor's minimum cell size
                        (a noisy one, obs_status N: a measurement beyond the
                        floor's differential privacy, or no 95% interval),
                        an EncounterRecord field the floor says never leaves
                        (``node.policy.floor``)
    replay-conflict     an event id applied before, now with different content

A message that passes is recorded with the key that verified it, the policy
version it names and the broker's append time, then applied if its revision is
newer than the subject's. Applying the same event again changes nothing.

Time: every judgement of time (key validity, revocation, retention, the skew
of ``produced_at``) uses the broker's append time of the record on the shared
topic, never the signer's clock. A member's copy of the picture reads the
picture topic, where the Secretariat republishes each event with its original
append time in the ``corredor.appended-at`` header (``relayed_time``); the
Secretariat runs the broker, so that is the same clock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice

from node.aggregator.checks import (
    Checked,
    MessageRejected,
    append_time,
    check_message,
)
from node.aggregator.parallel import CHUNK, MIN_PARALLEL, CheckPool, KeySnapshot, Rejection
from node.aggregator.revocation import RevocationChange, enforce_revocations
from node.aggregator.stats import ApplyStats
from node.aggregator.views import APPLIERS
from node.codec.events import EventCodec
from node.crypto.batch_seal import SealVerifier
from node.errors import TransportError
from node.federation.manifest import KeyDirectory
from node.model.events import Envelope
from node.policy.floor import RegionalFloor
from node.store import audit
from node.store.audit import AuditRecord, message_digest
from node.store.picture import PictureStore
from node.store.picture_writes import PictureWrites, ReceivedEvent, Rejected
from node.transport.base import EventSource, Message

log = logging.getLogger("corredor.aggregator")

#: Reasons a message goes to the dead-letter topic too: it could not be read at
#: all. Messages that decode but fail trust checks stay in quarantine only.
DEAD_LETTER_REASONS: frozenset[str] = frozenset({"undecodable", "undecodable-body"})

#: Envelope audiences that let every member see an event: those events go back
#: to the members on the picture topic.
MEMBER_AUDIENCES: frozenset[str] = frozenset({"members", "public"})


#: Messages of a batch whose picture state is read in one query per table: a
#: check worker's chunk, so that the writer applies each chunk as the workers
#: return it while they check the next ones.
SLICE = CHUNK


class _BatchState:
    """What a batch's decisions need from the picture, for the events of the
    batch: the digest each was received with before (None: never), and the
    newest applied revision of each subject (None: none). Read a slice at a
    time, one query per table, then kept up to date by the writer as it
    applies each message, so that a message sees every one before it in the
    batch exactly as if each had been written and read back."""

    def __init__(self) -> None:
        self.digests: dict[str, str | None] = {}
        self.heads: dict[str, int | None] = {}

    def read(self, store: PictureStore, conn: sqlite3.Connection, checked: list[Checked]) -> None:
        """Add what the picture holds for the events and subjects of ``checked``
        that the batch has not met yet: nothing before them in the batch wrote
        those, so the picture's rows are still the batch's starting point."""
        ids = [
            i for i in dict.fromkeys(c.envelope.event_id for c in checked) if i not in self.digests
        ]
        subjects = [
            s for s in dict.fromkeys(c.envelope.subject for c in checked) if s not in self.heads
        ]
        digests = store.digests(conn, ids) if ids else {}
        heads = store.head_revisions(conn, subjects) if subjects else {}
        self.digests.update((i, digests.get(i)) for i in ids)
        self.heads.update((s, heads.get(s)) for s in subjects)


class Aggregator:
    """Applies messages to a PictureStore. One instance per consuming process.

    The regional floor is required: no run mode applies events without it.
    Build one with ``node.aggregator.run.build_aggregator``."""

    def __init__(
        self,
        store: PictureStore,
        codec: EventCodec,
        keys: KeyDirectory,
        *,
        floor: RegionalFloor,
        publish_back: bool = True,
        time_of: Callable[[Message], datetime] = append_time,
        workers: int = 0,
    ) -> None:
        """``workers``: processes checking (decoding, verifying) the messages
        of a batch while this one writes them (``node.aggregator.parallel``);
        0 checks them here."""
        self.store = store
        self.codec = codec
        self.keys = keys
        self.floor = floor
        #: The trusted time of a message (``append_time``; a member's picture
        #: copy: ``relayed_time``).
        self.time_of = time_of
        #: One for the aggregator's lifetime: a batch's events usually arrive in
        #: one poll, but may straddle two, and the seal is checked once for all.
        self.seals = SealVerifier()
        #: Queue events every member may see for the picture topic (the
        #: Secretariat); a member applying the picture it reads does not.
        self.publish_back = publish_back
        self.pool: CheckPool | None = None
        if workers > 0:
            self.pool = CheckPool(workers, codec, floor, time_of, check_here=self._check_result)
        self._generation = 0
        self._snapshot: KeySnapshot | None = None

    def close(self) -> None:
        """Stop the check workers, if any."""
        if self.pool is not None:
            self.pool.close()

    def use_keys(self, keys: KeyDirectory) -> list[RevocationChange]:
        """Trust a newer manifest's keys from the next message on, and take out
        of the picture what its revoked keys signed after their compromise."""
        self.keys = keys
        self._generation += 1
        self._snapshot = None
        return self.enforce_revocations()

    def enforce_revocations(self) -> list[RevocationChange]:
        changes = enforce_revocations(self.store, self.keys, republish=self.publish_back)
        for c in changes:
            log.warning(
                "revoked key %s of %s: %d events out of the picture, %d subjects restored to "
                "an earlier revision, %d removed",
                c.key_id,
                c.producer,
                c.events,
                c.restored,
                c.removed,
            )
        return changes

    def _check_result(self, msg: Message) -> object:
        """``check_message`` here, a rejection as data (as workers return it)."""
        try:
            return check_message(self.codec, self.keys, self.floor, self.time_of, msg, self.seals)
        except MessageRejected as rej:
            return Rejection(rej.reason, rej.detail, rej.envelope)

    def _checks(self, batch: list[Message]) -> Iterator[object]:
        """One ``Checked`` or ``Rejection`` per message of ``batch``, in order."""
        if self.pool is None or len(batch) < MIN_PARALLEL:
            return (self._check_result(m) for m in batch)
        if self._snapshot is None:
            self._snapshot = KeySnapshot.of(self.keys, self._generation)
        return self.pool.check(batch, self._snapshot)

    def _write_one(
        self,
        msg: Message,
        checked: Checked,
        state: _BatchState,
        writes: PictureWrites,
        stats: ApplyStats,
    ) -> str:
        """Apply one checked message: the part that needs the picture (replays,
        revision order) and its rows in ``writes``; its outcome for the audit
        log. Only ever one writer, in message order: ``state`` holds what the
        batch read of the picture and what the messages before this one changed."""
        envelope, event, digest = checked.envelope, checked.event, checked.digest
        appended_at, restricted, recipients = (
            checked.appended_at,
            checked.restricted,
            list(checked.recipients),
        )
        seen = state.digests[envelope.event_id]
        if seen is not None:
            if seen == digest:
                stats.duplicates += 1
                return "duplicate"
            raise MessageRejected(
                "replay-conflict",
                f"event {envelope.event_id} was applied before with different content",
                envelope,
            )
        state.digests[envelope.event_id] = digest
        current = state.heads[envelope.subject]
        newer = current is None or envelope.revision > current
        writes.received(
            ReceivedEvent(
                envelope.event_id,
                envelope.producer,
                envelope.kind,
                envelope.subject,
                envelope.revision,
                digest,
                envelope.key_id,
                envelope.policy.id,
                envelope.policy.version,
                envelope.policy.sha256,
                msg.topic,
                msg.partition,
                msg.offset,
            ),
            applied=newer,
        )
        writes.use(envelope, appended_at)
        writes.revision(envelope, event.body, event.body_schema_version, newer)
        if not newer:
            stats.stale += 1
            return "stale"
        state.heads[envelope.subject] = envelope.revision
        writes.head(
            envelope.subject,
            envelope.kind,
            envelope.producer,
            envelope.revision,
            envelope.event_id,
            envelope.is_withdrawal,
        )
        if restricted:
            writes.relay(
                envelope.event_id,
                envelope.producer,
                envelope.subject,
                envelope.revision,
                recipients,
                # Keyed by subject: the picture topic may be compacted, and
                # only a subject's newest revision may replace its older one.
                envelope.subject.encode("utf-8"),
                msg.value or b"",
            )
        else:
            APPLIERS[envelope.kind](writes, envelope, event.body)
            if self.publish_back and MEMBER_AUDIENCES & set(envelope.audiences):
                writes.picture(envelope.event_id, envelope.subject, msg.value or b"")
        stats.applied += 1
        return "applied"

    def apply_batch(self, messages: Iterable[Message]) -> ApplyStats:
        """Apply a batch in one SQLite transaction, slice by slice (``SLICE``):
        one query per table reads what a slice needs, one ``executemany`` per
        table writes it."""
        stats = ApplyStats()
        trail: list[AuditRecord] = []
        batch = list(messages)
        results = zip(batch, self._checks(batch), strict=True)
        state = _BatchState()
        with self.store.transaction() as conn:
            audit.ensure_schema(conn)
            while part := list(islice(results, SLICE)):
                state.read(self.store, conn, [r for _, r in part if isinstance(r, Checked)])
                writes = PictureWrites()
                for msg, result in part:
                    stats.messages += 1
                    try:
                        if isinstance(result, Rejection):
                            raise MessageRejected(result.reason, result.detail, result.envelope)
                        assert isinstance(result, Checked)
                        outcome = self._write_one(msg, result, state, writes, stats)
                    except MessageRejected as rej:
                        trail.append(
                            self._audit_record(msg, "quarantined", rej.envelope, rej.reason)
                        )
                        env = rej.envelope
                        writes.rejected(
                            Rejected(
                                rej.reason,
                                rej.detail,
                                env.event_id if env else None,
                                env.producer if env else None,
                                msg.topic,
                                msg.partition,
                                msg.offset,
                                msg.value,
                                msg.key,
                            ),
                        )
                        stats.rejected[rej.reason] = stats.rejected.get(rej.reason, 0) + 1
                    else:
                        trail.append(self._audit_record(msg, outcome, result.envelope))
                writes.flush(conn)
            # In the apply's own transaction: the log and the picture never disagree.
            head = audit.append(conn, trail)
        audit.save_head(self.store.path, head)
        return stats

    def _audit_record(
        self,
        msg: Message,
        outcome: str,
        envelope: Envelope | None = None,
        reason: str | None = None,
    ) -> AuditRecord:
        """The audit entry of one message (no envelope: it did not decode)."""
        return AuditRecord(
            entry=outcome,
            digest=message_digest(msg.value),
            event_id=envelope.event_id if envelope else None,
            producer=envelope.producer if envelope else None,
            subject=envelope.subject if envelope else None,
            revision=envelope.revision if envelope else None,
            policy_version=envelope.policy.version if envelope else None,
            reason=reason,
        )


def consume_until_caught_up(
    aggregator: Aggregator,
    source: EventSource,
    *,
    max_records: int = 2_000,
    poll_timeout_ms: int = 500,
    stall_s: float = 600.0,
    progress: Callable[[int], None] | None = None,
) -> ApplyStats:
    """Apply everything on the topic when reading started; commit offsets only
    after each batch's SQLite transaction has committed.

    It returns when caught up, never before: a source that yields nothing for
    ``stall_s`` while still behind raises TransportError rather than passing a
    partial read off as the whole topic."""
    total = ApplyStats()
    last_progress = time.monotonic()
    while True:
        batch = source.poll_batch(poll_timeout_ms, max_records)
        if batch:
            last_progress = time.monotonic()
            total.add(aggregator.apply_batch(batch))
            source.commit()
            if progress is not None:
                progress(len(batch))
        elif source.caught_up():
            break
        elif time.monotonic() - last_progress > stall_s:
            raise TransportError(
                f"no message for {stall_s:.0f} s while still behind the topic's end "
                f"({total.messages} read so far)"
            )
    return total
