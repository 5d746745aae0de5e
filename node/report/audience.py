"""Who an export is made for, and which events it may therefore contain.

Every export of the picture is made for one audience: the Secretariat (``TS``),
an international organisation (``IOM``, ``UNHCR``, ``PAHO``, ``ICRC``,
``UNODC``), one member country (its ISO3 code) or the ``public``. An event is
in the export only when its envelope admits it (``admits``):

- the audience is named in the envelope's audiences, or the envelope names
  ``public``, or the audience is an RCM member or invitee and the envelope
  names ``members``;
- the export's purpose is one of the envelope's purposes;
- it is not past its ``retain_until`` (nor purged), and
- its ``embargo_until``, if any, has passed.

An event the aggregator stored before it kept usage rules has none on record:
it is admitted to the Secretariat only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from node.errors import ConfigError
from node.model.codes import RCM_INVITED, RCM_MEMBERS, is_iso3
from node.policy.use_rules import PURPOSES

ORGANISATIONS: tuple[str, ...] = ("TS", "IOM", "UNHCR", "PAHO", "ICRC", "UNODC")
PUBLIC = "public"

#: The purpose an export of each view serves unless the operator names another.
DEFAULT_PURPOSE: dict[str, str] = {
    "flows": "statistics",
    "trends": "statistics",
    "corridors": "statistics",
    "alerts": "statistics",
    "regional": "statistics",
    "legislation": "legal-mapping",
    "consulates": "humanitarian",
    "health": "health",
    "focal-points": "planning",
}


def audience_name(value: str) -> str:
    """Validate an audience given on the command line (case-insensitive)."""
    if value.lower() == PUBLIC:
        return PUBLIC
    upper = value.upper()
    if upper in ORGANISATIONS or is_iso3(upper):
        return upper
    raise ConfigError(
        f"unknown audience {value!r}: one of {', '.join(ORGANISATIONS)}, public, "
        "or a member's ISO3 code"
    )


def purpose_name(value: str | None) -> str | None:
    """Validate a purpose given on the command line (None: the view's default)."""
    if value is None or value in PURPOSES:
        return value
    raise ConfigError(f"unknown purpose {value!r}: one of {', '.join(sorted(PURPOSES))}")


@dataclass(frozen=True)
class Scope:
    """One export: for whom, for what purpose (None: the view's default), when."""

    audience: str = "TS"
    purpose: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def purpose_for(self, view: str) -> str:
        return self.purpose or DEFAULT_PURPOSE.get(view, "statistics")


def admits(use: dict[str, Any] | None, audience: str, purpose: str, now: datetime) -> bool:
    """Whether an event with these usage rules may be in an export for
    ``audience`` and ``purpose`` at ``now``; see the module docstring."""
    if use is None:
        return audience == "TS"
    if use["purged"]:
        return False
    retain = use["retain_until"]
    if retain is not None and retain < now.date():
        return False
    embargo = use["embargo_until"]
    if embargo is not None:
        if embargo.tzinfo is None:
            embargo = embargo.replace(tzinfo=UTC)
        if embargo > now:
            return False
    if purpose not in use["purposes"]:
        return False
    audiences = set(use["audiences"])
    if audience in audiences or PUBLIC in audiences:
        return True
    return "members" in audiences and audience in (*RCM_MEMBERS, *RCM_INVITED)


def admission_changes_at(uses: dict[str, dict[str, Any]], now: datetime) -> datetime | None:
    """The first moment after ``now`` at which ``admits`` may answer otherwise
    for any of these events (an embargo ends, a retention period runs out), or
    None: a cache of what the events admit is good until then."""
    moments: list[datetime] = []
    for use in uses.values():
        if use["purged"]:
            continue
        embargo = use["embargo_until"]
        if embargo is not None:
            if embargo.tzinfo is None:
                embargo = embargo.replace(tzinfo=UTC)
            if embargo > now:
                moments.append(embargo)
        retain = use["retain_until"]
        if retain is not None:
            # admits() refuses once retain_until < today: from the next midnight UTC.
            end = datetime.combine(retain + timedelta(days=1), time.min, UTC)
            if end > now:
                moments.append(end)
    return min(moments) if moments else None
