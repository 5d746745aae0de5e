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

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from node.aggregator.parallel import MIN_PARALLEL, CheckPool, KeySnapshot, Rejection
from node.aggregator.revocation import RevocationChange, enforce_revocations
from node.aggregator.views import APPLIERS, body_problem, subject_problem
from node.codec.events import EventCodec
from node.crypto.batch_seal import SealVerifier
from node.crypto.sealing import SealedBox
from node.crypto.signing import verify
from node.errors import CodecError, CryptoError, SignatureInvalid, TransportError
from node.federation import KeyDirectory
from node.model.events import RESTRICTED_KINDS, Envelope, Event
from node.policy.floor import RegionalFloor
from node.store import audit
from node.store.audit import AuditRecord, message_digest
from node.store.picture import PictureStore, ReceivedEvent, Rejected
from node.transport.base import EventSource, Message


@dataclass
class ApplyStats:
    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add(self, other: ApplyStats) -> None:
        self.messages += other.messages
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.stale += other.stale
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
        }


log = logging.getLogger("corredor.aggregator")

#: Reasons a message goes to the dead-letter topic too: it could not be read at
#: all. Messages that decode but fail trust checks stay in quarantine only.
DEAD_LETTER_REASONS: frozenset[str] = frozenset({"undecodable", "undecodable-body"})

#: Envelope audiences that let every member see an event: those events go back
#: to the members on the picture topic.
MEMBER_AUDIENCES: frozenset[str] = frozenset({"members", "public"})


class MessageRejected(Exception):
    """A message set aside, with a machine-readable reason and a detail."""

    def __init__(self, reason: str, detail: str, envelope: Envelope | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.envelope = envelope


#: The header the Secretariat puts on picture-topic records: the shared
#: topic's append time of the event, in milliseconds since the epoch (ASCII).
APPENDED_AT_HEADER = "corredor.appended-at"


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def append_time(msg: Message) -> datetime:
    """The broker's append time of a shared-topic record; a record without one
    carries only its producer's clock and is not judged at all."""
    if not msg.log_append_time:
        raise MessageRejected(
            "untrusted-time",
            f"{msg.topic} stamps records with the producer's time; the shared topic "
            "needs message.timestamp.type=LogAppendTime",
        )
    return _from_ms(msg.timestamp_ms)


def relayed_time(msg: Message) -> datetime:
    """The shared topic's append time of a picture-topic record, from the
    Secretariat's header, never later than the record's own timestamp there
    (the Secretariat's clock either way); without the header, that timestamp."""
    own = msg.timestamp_ms
    for name, value in msg.headers:
        if name == APPENDED_AT_HEADER:
            try:
                return _from_ms(min(own, int(value.decode("ascii"))))
            except (UnicodeDecodeError, ValueError):
                break
    return _from_ms(own)


def verify_message(
    codec: EventCodec,
    keys: KeyDirectory,
    value: bytes | None,
    seals: SealVerifier | None = None,
    *,
    at: datetime | Callable[[], datetime] | None = None,
) -> tuple[Envelope, bytes]:
    """Decode a signed event and check its signature against the manifest's keys.

    ``at`` is the time the key must have been valid at: the broker's append
    time of the record (default: now, the reader's clock), or a callable giving
    it, asked only once the event has decoded. Never the event's own
    ``produced_at``, which its signer chose.

    A batch-sealed event is checked through ``seals`` (a fresh verifier if
    none is given), which verifies each distinct seal once; pass the same one
    for a stream of messages so a batch's events share that work. The trust
    checks on the key run for every message either way.

    Raises ``MessageRejected`` for anything not to be trusted;
    returns the envelope and the exact envelope bytes its signature covers
    (directly, or through the seal's root)."""
    if value is None:
        raise MessageRejected("undecodable", "empty message value")
    try:
        env_bytes, signature, seal = codec.split_sealed(value)
        envelope = codec.decode_envelope(env_bytes)
    except CodecError as exc:
        raise MessageRejected("undecodable", str(exc)) from exc
    if signature is None:
        raise MessageRejected("unsigned", "message carries no signature", envelope)
    known = keys.get(envelope.key_id)
    if known is None:
        raise MessageRejected("unknown-key", f"no member key {envelope.key_id}", envelope)
    if known.country != envelope.producer:
        raise MessageRejected(
            "producer-mismatch",
            f"key {envelope.key_id} belongs to {known.country}, event claims {envelope.producer}",
            envelope,
        )
    if callable(at):
        try:
            when = at()
        except MessageRejected as rej:  # no trusted time: name the event it was for
            raise MessageRejected(rej.reason, rej.detail, envelope) from None
    else:
        when = at if at is not None else datetime.now(UTC)
    state = known.entry.state_at(when)
    stamp = when.isoformat(timespec="seconds")
    if state == "revoked":
        raise MessageRejected(
            "revoked-key", f"key {envelope.key_id} was revoked at broker time {stamp}", envelope
        )
    if state != "valid":
        raise MessageRejected(
            "expired-key", f"key {envelope.key_id} is {state} at broker time {stamp}", envelope
        )
    try:
        if seal is None:
            verify(known.public, signature, env_bytes)
        else:
            verifier = seals if seals is not None else SealVerifier()
            verifier.verify(known.public, envelope.key_id, env_bytes, signature, seal)
    except SignatureInvalid as exc:
        detail = f"signature by {envelope.key_id} does not verify"
        if seal is not None:
            detail = f"batch seal by {envelope.key_id} does not verify ({exc})"
        raise MessageRejected("bad-signature", detail, envelope) from exc
    return envelope, env_bytes


@dataclass(frozen=True)
class Checked:
    """A message that passed every check that needs no picture: its envelope,
    decoded event, the digest of its signed bytes and the broker's time."""

    envelope: Envelope
    event: Event
    digest: str
    appended_at: datetime
    restricted: bool
    recipients: tuple[str, ...] = ()


def check_message(
    codec: EventCodec,
    keys: KeyDirectory,
    floor: RegionalFloor,
    time_of: Callable[[Message], datetime],
    msg: Message,
    seals: SealVerifier,
) -> Checked:
    """Every check of one message that does not read the picture, in the
    order of the module's docstring up to the regional floor: decode, key,
    time, signature or seal, kind, body, subject, floor. Raises
    ``MessageRejected``. Pure: worker processes run it too
    (``node.aggregator.parallel``)."""
    times: list[datetime] = []

    def appended() -> datetime:
        times.append(time_of(msg))
        return times[0]

    envelope, env_bytes = verify_message(codec, keys, msg.value, seals, at=appended)
    appended_at = times[0]
    skew = floor.time_problem(envelope.produced_at, appended_at)
    if skew is not None:
        raise MessageRejected("clock-skew", skew, envelope)
    restricted = envelope.kind in RESTRICTED_KINDS
    if not restricted and envelope.kind not in APPLIERS:
        raise MessageRejected(
            "unknown-kind", f"no view applies events of kind {envelope.kind!r}", envelope
        )
    recipients: list[str] = []
    if restricted:
        # Sealed to named members: the Secretariat relays it, cannot read it.
        event = Event(envelope, None)
        if envelope.body is not None:
            try:
                recipients = SealedBox.from_bytes(envelope.body).recipients
            except CryptoError as exc:
                raise MessageRejected("undecodable-body", str(exc), envelope) from exc
    else:
        try:
            event = codec.decode_event(envelope)
        except CodecError as exc:
            raise MessageRejected("undecodable-body", str(exc), envelope) from exc
    problem = subject_problem(envelope, event.body)
    if problem is not None:
        raise MessageRejected("subject-mismatch", problem, envelope)
    invalid = body_problem(envelope, event.body)
    if invalid is not None:
        raise MessageRejected("invalid-body", invalid, envelope)
    # Counted from the broker's append date: a produced_at set years ahead
    # cannot shorten it.
    retention = (
        (envelope.retain_until - appended_at.date()).days
        if envelope.retain_until is not None
        else None
    )
    problem = floor.event_problem(
        envelope.kind, envelope.audiences, envelope.purposes, retention, event.body
    )
    if problem is not None:
        raise MessageRejected("below-regional-floor", problem, envelope)
    digest = hashlib.sha256(env_bytes).hexdigest()
    return Checked(envelope, event, digest, appended_at, restricted, tuple(recipients))


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
            self.pool = CheckPool(
                workers, codec, floor, time_of, check_here=self._check_result
            )
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
                c.key_id, c.producer, c.events, c.restored, c.removed,
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
        self, conn: sqlite3.Connection, msg: Message, checked: Checked, stats: ApplyStats
    ) -> Envelope:
        """Apply one checked message: the part that needs the picture (replays,
        revision order) and writes it. Only ever one writer, in message order."""
        envelope, event, digest = checked.envelope, checked.event, checked.digest
        appended_at, restricted, recipients = (
            checked.appended_at, checked.restricted, list(checked.recipients)
        )
        seen = self.store.digest_of(envelope.event_id)
        if seen is not None:
            if seen == digest:
                stats.duplicates += 1
                return envelope
            raise MessageRejected(
                "replay-conflict",
                f"event {envelope.event_id} was applied before with different content",
                envelope,
            )
        current = self.store.head_revision(conn, envelope.subject)
        newer = current is None or envelope.revision > current
        self.store.record_received(
            conn,
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
        self.store.record_use(conn, envelope, appended_at)
        self.store.record_revision(conn, envelope, event.body, event.body_schema_version, newer)
        if not newer:
            stats.stale += 1
            return envelope
        self.store.set_head(
            conn,
            envelope.subject,
            envelope.kind,
            envelope.producer,
            envelope.revision,
            envelope.event_id,
            envelope.is_withdrawal,
        )
        if restricted:
            self.store.queue_relay(
                conn,
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
            APPLIERS[envelope.kind](self.store, conn, envelope, event.body)
            if self.publish_back and MEMBER_AUDIENCES & set(envelope.audiences):
                self.store.queue_picture(conn, envelope.event_id, envelope.subject,
                                         msg.value or b"")
        stats.applied += 1
        return envelope

    def apply_batch(self, messages: Iterable[Message]) -> ApplyStats:
        """Apply a batch in one SQLite transaction."""
        stats = ApplyStats()
        trail: list[AuditRecord] = []
        batch = list(messages)
        checks = self._checks(batch)
        with self.store.transaction() as conn:
            audit.ensure_schema(conn)
            for msg, result in zip(batch, checks, strict=True):
                stats.messages += 1
                before = (stats.applied, stats.stale)
                try:
                    if isinstance(result, Rejection):
                        raise MessageRejected(result.reason, result.detail, result.envelope)
                    assert isinstance(result, Checked)
                    envelope = self._write_one(conn, msg, result, stats)
                except MessageRejected as rej:
                    trail.append(self._audit_record(msg, "quarantined", rej.envelope, rej.reason))
                    env = rej.envelope
                    self.store.record_rejected(
                        conn,
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
                    outcome = (
                        "applied"
                        if stats.applied > before[0]
                        else "stale"
                        if stats.stale > before[1]
                        else "duplicate"
                    )
                    trail.append(self._audit_record(msg, outcome, envelope))
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
