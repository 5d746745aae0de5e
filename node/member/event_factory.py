"""Signed events of one node under one policy version, ready for the outbox.

``EventFactory`` encodes a body (Avro, single-object), seals it to named
recipients when the kind is restricted, signs the envelope (one Ed25519
signature per event, or one per batch with a Merkle proof each) and wraps it
as the outbox row a publish stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.codec.events import EventCodec
from node.crypto.batch_seal import seal_batch
from node.crypto.sealing import seal
from node.crypto.signing import SigningKey
from node.model.codes import is_iso3
from node.model.events import RESTRICTED_KINDS, Envelope, PolicyRef
from node.model.ids import new_event_id
from node.policy.model import Policy
from node.store.node_store import StagedEvent

#: The kinds made from the raw encounter records (reference items' kinds are in
#: node.model.reference).
FLOW_KIND = "FlowStatistic"
ENCOUNTER_KIND = "EncounterRecord"

#: (subject, revision, body, content) of one event to build; body and content
#: are None for a withdrawal.
EventSpec = tuple[str, int, dict[str, Any] | None, str | None]


def restricted_aad(event_id: str, producer: str, kind: str, subject: str, revision: int) -> bytes:
    """What a sealed body is bound to: it cannot be replayed into another event."""
    return "|".join((event_id, producer, kind, subject, str(revision))).encode("utf-8")


class EventFactory:
    """Builds signed events for one node under one policy version."""

    def __init__(
        self,
        country: str,
        policy: Policy,
        key: SigningKey,
        codec: EventCodec,
        *,
        seal_batch: int = 0,
    ) -> None:
        """``seal_batch`` > 0: ``build_many`` signs one batch seal per that many
        events (when the codec can write SignedEvent v2), not each event."""
        self.country = country
        self.seal_batch = seal_batch if codec.can_seal else 0
        self.policy = policy
        self.key = key
        self.codec = codec
        self.policy_ref = PolicyRef(policy.policy_id, policy.version, policy.sha256)
        self._key_bytes = country.encode("ascii")

    def build(
        self,
        kind: str,
        subject: str,
        revision: int,
        body: dict[str, Any] | None,
        content: str | None,
        now: datetime,
        seal_to: Mapping[str, X25519PublicKey] | None = None,
    ) -> StagedEvent:
        """Encode, (seal,) sign and wrap one event for the outbox.

        With ``seal_to`` (recipient key id -> X25519 key) the body is sealed so
        that only those recipients can read it; the sealed box is bound to the
        event's identity (see ``restricted_aad``) and the signature covers it.
        """
        event_id, envelope = self._envelope(kind, subject, revision, body, now, seal_to)
        env_bytes = self.codec.encode_envelope(envelope)
        value = self.codec.encode_signed(env_bytes, self.key.sign(env_bytes))
        return self._staged(event_id, kind, subject, revision, content, value)

    def build_many(self, kind: str, specs: Sequence[EventSpec], now: datetime) -> list[StagedEvent]:
        """Encode and sign a run of unsealed events of one kind: under batch
        seals, one Ed25519 signature per ``seal_batch`` events, each event
        carrying its Merkle inclusion proof (node.crypto.batch_seal)."""
        if self.seal_batch <= 0:
            return [self.build(kind, *spec, now) for spec in specs]
        out: list[StagedEvent] = []
        # Every event of the run shares its envelope but for id, subject,
        # revision and body: encode the rest once (node.codec.templates).
        template = self.codec.envelope_template(self._envelope(kind, "", 0, None, now, None)[1])
        encode_body = self.codec.encode_body
        for start in range(0, len(specs), self.seal_batch):
            batch = specs[start : start + self.seal_batch]
            ids = [new_event_id() for _ in batch]
            env_bytes = [
                template(
                    event_id,
                    subject,
                    revision,
                    None if body is None else encode_body(kind, body),
                )
                for event_id, (subject, revision, body, _) in zip(ids, batch, strict=True)
            ]
            signature, proofs = seal_batch(self.key, env_bytes)
            for event_id, spec, data, proof in zip(ids, batch, env_bytes, proofs, strict=True):
                subject, revision, _, content = spec
                value = self.codec.encode_signed(data, signature, proof)
                out.append(self._staged(event_id, kind, subject, revision, content, value))
        return out

    def _envelope(
        self,
        kind: str,
        subject: str,
        revision: int,
        body: dict[str, Any] | None,
        now: datetime,
        seal_to: Mapping[str, X25519PublicKey] | None,
    ) -> tuple[str, Envelope]:
        rules = self.policy.exchange(kind)
        event_id = new_event_id()
        body_bytes = self.codec.encode_body(kind, body) if body is not None else None
        audiences = tuple(rules.audiences)
        if seal_to is not None or kind in RESTRICTED_KINDS:
            # Who a sealed report is for stays inside the box: named countries
            # travel as "members" (the floor's group for them), not by code.
            audiences = tuple(sorted({"members" if is_iso3(a) else a for a in audiences}))
        if body_bytes is not None and seal_to is not None:
            aad = restricted_aad(event_id, self.country, kind, subject, revision)
            body_bytes = seal(body_bytes, dict(seal_to), aad).to_bytes()
        envelope = Envelope(
            event_id=event_id,
            producer=self.country,
            kind=kind,
            subject=subject,
            revision=revision,
            produced_at=now,
            policy=self.policy_ref,
            audiences=audiences,
            purposes=tuple(rules.purposes),
            key_id=self.key.key_id,
            retain_until=rules.retain_until(now.date()),
            embargo_until=now + timedelta(days=rules.embargo_days) if rules.embargo_days else None,
            body=body_bytes,
        )
        return event_id, envelope

    def _staged(
        self,
        event_id: str,
        kind: str,
        subject: str,
        revision: int,
        content: str | None,
        value: bytes,
    ) -> StagedEvent:
        return StagedEvent(
            event_id=event_id,
            kind=kind,
            subject=subject,
            revision=revision,
            content=content,
            policy_version=self.policy.version,
            key=self._key_bytes,
            value=value,
        )
