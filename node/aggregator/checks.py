"""The checks of one message from the shared topic that need no picture: its
decoding, the key and the broker's append time, the seal or signature, the
body and the regional floor (the order and the reasons are in
``node.aggregator.apply``). They run in the aggregator's own process or in its
check workers (``node.aggregator.parallel``); the single writer then applies
what passed (``node.aggregator.apply.Aggregator``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from node.aggregator.views import APPLIERS, body_problem, subject_problem
from node.codec.events import EventCodec
from node.crypto.batch_seal import SealVerifier
from node.crypto.sealing import SealedBox
from node.crypto.signing import verify
from node.errors import CodecError, CryptoError, SignatureInvalid
from node.federation.manifest import KeyDirectory
from node.model.events import RESTRICTED_KINDS, Envelope, Event
from node.policy.floor import RegionalFloor
from node.transport.base import Message


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
