"""A member's inbox: restricted events the Secretariat relayed, opened with the
member's own X25519 key after the sender's signature verifies against the
manifest. Nobody else can open them: not the Secretariat that relays them,
not other members, not the Kafka operator."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.aggregator.checks import MessageRejected, relayed_time, verify_message
from node.codec.events import EventCodec
from node.codec.single_object import decode
from node.config import Home
from node.crypto.batch_seal import SealVerifier
from node.crypto.keys import EncryptionKey
from node.crypto.sealing import NotAddressed, SealedBox, open_sealed
from node.errors import CodecError, CryptoError
from node.federation import trust
from node.federation.manifest import KeyDirectory
from node.home import event_codec, picture_topic, read_home_topic, require_member
from node.member.event_factory import restricted_aad
from node.model.events import RESTRICTED_KINDS
from node.transport.base import Message


@dataclass(frozen=True)
class InboxItem:
    event_id: str
    kind: str
    producer: str
    subject: str
    revision: int
    produced_at: datetime
    signed_by: str
    body: dict[str, Any] | None  # None: the sender withdrew it


@dataclass
class InboxResult:
    items: list[InboxItem]
    not_addressed: int = 0
    rejected: int = 0


def open_inbox(
    messages: Iterable[Message], codec: EventCodec, keys: KeyDirectory, mine: EncryptionKey
) -> InboxResult:
    """The newest revision of each restricted subject addressed to ``mine``."""
    latest: dict[str, InboxItem] = {}
    addressed: set[str] = set()
    result = InboxResult([])
    seals = SealVerifier()  # per read: a batch's seal is verified once
    for msg in messages:
        try:
            # Keys judged at the shared topic's append time, as the Secretariat relays it.
            envelope, _ = verify_message(codec, keys, msg.value, seals, at=relayed_time(msg))
        except MessageRejected:
            result.rejected += 1
            continue
        if envelope.kind not in RESTRICTED_KINDS:
            continue
        body: dict[str, Any] | None = None
        if envelope.body is not None:
            try:
                box = SealedBox.from_bytes(envelope.body)
            except CryptoError:
                result.rejected += 1
                continue
            aad = restricted_aad(
                envelope.event_id,
                envelope.producer,
                envelope.kind,
                envelope.subject,
                envelope.revision,
            )
            try:
                plain = open_sealed(box, mine.key_id, mine.private, aad)
            except NotAddressed:
                # The box names nobody: only trying our key tells.
                result.not_addressed += 1
                continue
            except CryptoError:
                result.rejected += 1
                continue
            addressed.add(envelope.subject)
            try:
                _, body = decode(plain, codec.registry, codec.registry.latest(envelope.kind))
            except CodecError:
                result.rejected += 1
                continue
        item = InboxItem(
            envelope.event_id,
            envelope.kind,
            envelope.producer,
            envelope.subject,
            envelope.revision,
            envelope.produced_at,
            envelope.key_id,
            body,
        )
        current = latest.get(envelope.subject)
        if current is None or item.revision > current.revision:
            latest[envelope.subject] = item
    # A withdrawal carries no box; show it only for reports we could read.
    result.items = sorted(
        (i for i in latest.values() if i.body is not None or i.subject in addressed),
        key=lambda i: i.produced_at,
    )
    return result


def read_inbox(home: Home, *, bootstrap: str | None = None) -> InboxResult:
    """Restricted events addressed to this member, verified and decrypted."""
    require_member(home)
    messages = read_home_topic(home, picture_topic(home), bootstrap)
    return open_inbox(
        messages, event_codec(), trust.key_directory(home), trust.load_encryption_key(home)
    )
