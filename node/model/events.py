"""Events as they travel: the envelope every event carries, and its body.

Plain dataclasses rather than pydantic: these are built and read on the hot
path, and their values come from code that already validated its input (the
policy engine) or from a decoder that checked the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

#: Every event kind, one per exchange in the 2016 conclusions; each is an Avro
#: schema in ``schemas/`` and an exchange in the policy (``KIND_EXCHANGE``).
KINDS: tuple[str, ...] = (
    "FlowStatistic",
    "EncounterRecord",
    "IntelligenceReport",
    "LegislationEntry",
    "ConsularMission",
    "HealthAdvisory",
    "FocalPoint",
)

#: Kinds whose body is sealed to named recipients: relayed, never read, by the
#: Secretariat.
RESTRICTED_KINDS: frozenset[str] = frozenset({"IntelligenceReport"})


@dataclass(frozen=True)
class PolicyRef:
    """The policy version that let an event out."""

    id: str
    version: str
    sha256: str


@dataclass(frozen=True)
class Envelope:
    event_id: str
    producer: str
    kind: str
    subject: str
    revision: int
    produced_at: datetime
    policy: PolicyRef
    audiences: tuple[str, ...]
    purposes: tuple[str, ...]
    key_id: str
    retain_until: date | None = None
    embargo_until: datetime | None = None
    body: bytes | None = field(default=None, repr=False)

    @property
    def is_withdrawal(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class Event:
    """A decoded event: its envelope and its body record (None for a withdrawal)."""

    envelope: Envelope
    body: dict[str, Any] | None
    body_schema_version: int | None = None
