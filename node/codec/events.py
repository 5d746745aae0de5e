"""Envelopes and signed events to and from bytes.

Layout on the wire (all Avro single-object encoding):

    SignedEvent { envelope: bytes, signature: bytes|null, seal: BatchSeal|null }
    envelope bytes = Envelope { ..., key_id, body: bytes|null }
    body bytes     = <Kind> record

Signatures are made over the envelope bytes exactly as sent (or, for a batch
seal, over a statement of the Merkle root those bytes and the seal's proof
lead to), so verification never depends on re-encoding. This module does not
sign: it hands out the bytes to sign and parses what it receives.

An unsealed event is written with SignedEvent v1, byte for byte as before
seals existed, so every release reads it; only a sealed event needs v2 (which
added ``seal``), and a reader without v2 sets it aside rather than misreading
it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from node.codec.registry import SchemaRegistry, SchemaVersion
from node.codec.single_object import MAGIC, decode, encode
from node.codec.templates import EnvelopeTemplate, sealed_wrapper
from node.crypto.batch_seal import SealProof
from node.errors import CodecError
from node.model.events import Envelope, Event, PolicyRef


class EventCodec:
    """Encode and decode Corredor events against one schema registry."""

    def __init__(self, registry: SchemaRegistry, pins: Mapping[str, int] | None = None) -> None:
        """``pins`` (schema name -> version) make this codec speak an older
        version of a schema, as a node not yet upgraded does: it writes with that
        version and resolves what it reads to it. Others use the newest."""
        self.registry = registry
        self._pins = dict(pins or {})
        for name, version in self._pins.items():
            self.schema(name)  # an unknown pin is an error now, not at first use
            if version < 1:
                raise CodecError(f"{name}: schema versions start at 1")
        self._signed = self.schema("SignedEvent")
        # Unsealed events keep the first version's bytes (see the module doc);
        # seals need a version with the field, which a v1-pinned codec lacks.
        self._signed_unsealed = self.registry.history("SignedEvent")[0]
        self._can_seal = any(f["name"] == "seal" for f in self._signed.raw["fields"])
        self._envelope = self.schema("Envelope")
        self._fast_seal = self._can_seal and self._check_sealed_wrapper()

    def _check_sealed_wrapper(self) -> bool:
        """Whether ``templates.sealed_wrapper`` writes exactly what fastavro
        writes for this codec's SignedEvent (true of v2; a later version with
        other fields falls back to fastavro)."""
        probe = SealProof(3, 2, (b"\x01" * 32, b"\x02" * 32))
        return self._encode_sealed_avro(b"env", b"sig", probe) == sealed_wrapper(
            MAGIC + self._signed.fingerprint, b"env", b"sig", 3, 2, probe.path
        )

    @property
    def can_seal(self) -> bool:
        """Whether this codec writes a SignedEvent version that carries a batch seal."""
        return self._can_seal

    def schema(self, name: str) -> SchemaVersion:
        """The version of ``name`` this codec writes with and reads as."""
        pinned = self._pins.get(name)
        if pinned is None:
            return self.registry.latest(name)
        for version in self.registry.history(name):
            if version.version == pinned:
                return version
        raise CodecError(f"no version {pinned} of schema {name}")

    # -- encode --------------------------------------------------------------

    def encode_body(self, kind: str, record: dict[str, Any]) -> bytes:
        return encode(record, self.schema(kind))

    def encode_envelope(self, env: Envelope) -> bytes:
        return encode(
            {
                "event_id": env.event_id,
                "producer": env.producer,
                "kind": env.kind,
                "subject": env.subject,
                "revision": env.revision,
                "produced_at": env.produced_at,
                "policy": {
                    "id": env.policy.id,
                    "version": env.policy.version,
                    "sha256": env.policy.sha256,
                },
                "audiences": list(env.audiences),
                "purposes": list(env.purposes),
                "retain_until": env.retain_until,
                "embargo_until": env.embargo_until,
                "key_id": env.key_id,
                "body": env.body,
            },
            self._envelope,
        )

    def encode_signed(
        self, envelope_bytes: bytes, signature: bytes | None, seal: SealProof | None = None
    ) -> bytes:
        """A SignedEvent message. With ``seal``, ``signature`` is the batch seal's
        signature and the proof travels with it; this needs SignedEvent v2, and a
        codec pinned to an older version refuses rather than drop the proof
        (which would leave a signature nobody can verify)."""
        if seal is None:
            return encode(
                {"envelope": envelope_bytes, "signature": signature}, self._signed_unsealed
            )
        if not self._can_seal:
            raise CodecError(
                f"SignedEvent v{self._signed.version} cannot carry a batch seal (needs v2)"
            )
        if self._fast_seal and signature is not None:
            return sealed_wrapper(
                MAGIC + self._signed.fingerprint,
                envelope_bytes,
                signature,
                seal.tree_size,
                seal.leaf_index,
                seal.path,
            )
        return self._encode_sealed_avro(envelope_bytes, signature, seal)

    def _encode_sealed_avro(
        self, envelope_bytes: bytes, signature: bytes | None, seal: SealProof
    ) -> bytes:
        return encode(
            {
                "envelope": envelope_bytes,
                "signature": signature,
                # The union branch named, not inferred: fastavro would otherwise
                # validate the record against each branch.
                "seal": (
                    "org.rcm.corredor.BatchSeal",
                    {
                        "tree_size": seal.tree_size,
                        "leaf_index": seal.leaf_index,
                        "path": list(seal.path),
                    },
                ),
            },
            self._signed,
        )

    def envelope_template(self, shared: Envelope) -> EnvelopeTemplate:
        """An encoder of envelopes equal to ``shared`` but for their event id,
        subject, revision and body: what the events of one batch differ in."""

        def full(event_id: str, subject: str, revision: int, body: bytes | None) -> bytes:
            return self.encode_envelope(
                dataclasses.replace(
                    shared, event_id=event_id, subject=subject, revision=revision, body=body
                )
            )

        try:
            return EnvelopeTemplate(
                full, MAGIC + self._envelope.fingerprint, shared.producer, shared.kind
            )
        except ValueError as exc:
            raise CodecError(f"Envelope v{self._envelope.version}: {exc}") from exc

    # -- decode --------------------------------------------------------------

    def split_signed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """(envelope bytes, signature) of a message from the topic, for readers
        that only need the envelope; whoever verifies uses ``split_sealed``."""
        _, record = decode(data, self.registry, self._signed)
        return record["envelope"], record["signature"]

    def split_sealed(self, data: bytes) -> tuple[bytes, bytes | None, SealProof | None]:
        """(envelope bytes, signature, seal proof or None) of a message.

        Read as this codec's SignedEvent version: a v1 reader does not see a
        seal, so the signature then fails as a signature over the envelope."""
        _, record = decode(data, self.registry, self._signed)
        seal = record.get("seal")
        proof = (
            None
            if seal is None
            else SealProof(seal["tree_size"], seal["leaf_index"], tuple(seal["path"]))
        )
        return record["envelope"], record["signature"], proof

    def decode_envelope(self, data: bytes) -> Envelope:
        _, r = decode(data, self.registry, self._envelope)
        produced = r["produced_at"]
        if produced.tzinfo is None:
            produced = produced.replace(tzinfo=UTC)
        embargo = r["embargo_until"]
        policy = r["policy"]
        return Envelope(
            event_id=r["event_id"],
            producer=r["producer"],
            kind=r["kind"],
            subject=r["subject"],
            revision=r["revision"],
            produced_at=produced,
            policy=PolicyRef(policy["id"], policy["version"], policy["sha256"]),
            audiences=tuple(r["audiences"]),
            purposes=tuple(r["purposes"]),
            key_id=r["key_id"],
            retain_until=r["retain_until"],
            embargo_until=embargo.replace(tzinfo=UTC)
            if isinstance(embargo, datetime) and embargo.tzinfo is None
            else embargo,
            body=r["body"],
        )

    def decode_event(self, envelope: Envelope) -> Event:
        """Decode the body named by the envelope's kind, resolved to our latest schema."""
        if envelope.body is None:
            return Event(envelope, None)
        reader = self.schema(envelope.kind) if envelope.kind in self.registry.names() else None
        if reader is None:
            raise CodecError(f"unknown event kind {envelope.kind!r}")
        writer, body = decode(envelope.body, self.registry, reader)
        return Event(envelope, body, writer.version)
