"""The federation manifest: who the members are and which keys speak for them.

The Secretariat signs it; nodes pin the Secretariat's key at ``init`` and
accept only manifests that key signed. The aggregator checks every event's
signing key against it at the broker's append time of the event (never the
time the event says it was produced, which its signer chose):

- a rotated key (``valid_until``) signs validly until then, and the events it
  signed before stay valid;
- a compromised key (``revoked_at`` with ``compromised_at``) signs nothing
  validly from ``compromised_at`` on: events the broker appended from then on
  leave the picture, and earlier ones stay;
- a revoked key with no compromise time is treated as compromised since it
  was enrolled: nothing it signed is trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from node.model.codes import is_iso3
from node.topics import CONTROL_TOPIC, EVENTS_TOPIC, PICTURE_TOPIC

KeyState = Literal["valid", "expired", "revoked"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyEntry(_Frozen):
    """One public key with its validity period (UTC)."""

    key_id: str
    public_pem: str
    valid_from: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    #: With ``revoked_at``: from when the key may have been in other hands.
    compromised_at: datetime | None = None

    @model_validator(mode="after")
    def _compromise_before_revocation(self) -> KeyEntry:
        if self.compromised_at is not None:
            if self.revoked_at is None:
                raise ValueError("compromised_at needs revoked_at")
            if self.compromised_at > self.revoked_at:
                raise ValueError("compromised_at is after revoked_at")
        return self

    def untrusted_from(self) -> datetime | None:
        """From when nothing this key signed is trusted (None: not revoked;
        ``datetime.min`` in UTC: since ever)."""
        if self.revoked_at is None:
            return None
        return self.compromised_at or datetime.min.replace(tzinfo=UTC)

    def state_at(self, when: datetime) -> KeyState:
        """Whether an event the broker appended at ``when`` may carry this key's
        signature. ``when`` must be a time the signer does not control.

        ``valid_from`` records when the Secretariat enrolled the key; events a
        node produced with it before enrolment (it may stage before it joins)
        are accepted. What ends trust is the end of validity (a rotation's
        overlap) and revocation: from the compromise time, or from the start
        when the revocation names none.
        """
        since = self.untrusted_from()
        if since is not None and when >= since:
            return "revoked"
        if self.valid_until is not None and when > self.valid_until:
            return "expired"
        return "valid"


class KeyStatement(_Frozen):
    """A member's own signature over one of its new keys: a rotation.

    ``signature`` is Ed25519, by the member's signing key ``signed_by``, over
    the RFC 8785 bytes of ``node.federation.statements.key_statement_body``. Nodes accept
    a key only along a chain of these from the key pinned when the member
    joined (manifest version 2)."""

    kind: Literal["signing", "encryption"]
    key_id: str
    public_sha256: str  # SHA-256 of the new key's PEM text (stripped)
    signed_by: str
    signature: str  # base64


class Member(_Frozen):
    country: str
    name: str
    status: Literal["member", "observer"] = "member"
    kafka_principal: str
    signing_keys: list[KeyEntry] = Field(default_factory=list)
    encryption_keys: list[KeyEntry] = Field(default_factory=list)
    #: Rotation statements the member signed (manifest version 2).
    key_statements: list[KeyStatement] = Field(default_factory=list)

    @field_validator("country")
    @classmethod
    def _iso3(cls, value: str) -> str:
        if not is_iso3(value):
            raise ValueError(f"not an ISO 3166-1 alpha-3 code: {value!r}")
        return value

    def current_encryption_key(self, when: datetime) -> KeyEntry | None:
        valid = [k for k in self.encryption_keys if k.state_at(when) == "valid"]
        return max(valid, key=lambda k: k.valid_from) if valid else None


class Topics(_Frozen):
    events: str = EVENTS_TOPIC
    control: str = CONTROL_TOPIC
    picture: str = PICTURE_TOPIC


#: Version 2: RFC 8785 canonical payload, ``prev_sha256`` chain, key statements.
MANIFEST_VERSION = 2


class Manifest(_Frozen):
    #: 1 for manifests written before RFC 8785 and the hash chain (still read).
    version: int = Field(default=1, ge=1, le=MANIFEST_VERSION)
    #: SHA-256 of the previous manifest's signed payload (version 2).
    prev_sha256: str | None = None
    federation: str = "RCM"
    serial: int = Field(ge=0)
    issued_at: datetime
    secretariat_key_id: str
    regional_policy_sha256: str | None = None
    topics: Topics = Topics()
    members: list[Member] = Field(default_factory=list)

    def member(self, country: str) -> Member | None:
        return next((m for m in self.members if m.country == country), None)

    def signing_key(self, key_id: str) -> tuple[Member, KeyEntry] | None:
        for m in self.members:
            for k in m.signing_keys:
                if k.key_id == key_id:
                    return m, k
        return None


class SignedManifest(_Frozen):
    """The exact bytes signed (canonical JSON) travel with the signature."""

    payload: str
    signature: str  # base64 Ed25519 signature over payload's UTF-8 bytes
    signer: str  # the Secretariat's key id
