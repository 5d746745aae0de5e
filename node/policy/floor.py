"""The regional floor: what every member agreed any national policy must at least do.

``policies/regional.yaml`` states it. A national policy weaker than the floor is
rejected when it is loaded (by the node) and events that break it are set aside
by the aggregator (``below-regional-floor``).

What the aggregator can check of an incoming event, without the member's
policy text (it has only the event's ``PolicyRef``):

- the envelope's audiences and purposes are within the floor's for the kind;
- its retention (``retain_until`` - the broker's append date) is within the
  floor's maximum;
- its ``produced_at`` is within the floor's clock skew of the broker's append
  time (``time_problem``): the signer's clock decides nothing;
- a FlowStatistic's count is at least the floor's minimum cell size, unless
  it is a noisy count (obs_status ``N``, differential privacy): that one is
  judged on its noise instead (``differential_privacy`` below): it carries its
  95% interval and a measurement epsilon within the floor's;
- an EncounterRecord carries no field the floor says never leaves.

It cannot check secondary suppression, coarsening or pseudonymisation keys:
those need the raw data and stay the node's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from node.model.codes import CSM_GUESTS, RCM_INVITED, RCM_MEMBERS
from node.policy.model import KIND_EXCHANGE, Policy
from node.policy.record_rules import IDENTIFYING
from node.policy.use_rules import AUDIENCE_GROUPS, PURPOSES, StrictModel

#: Countries a policy may name as an audience when the floor allows ``members``.
FEDERATION: frozenset[str] = frozenset((*RCM_MEMBERS, *RCM_INVITED, *CSM_GUESTS))

#: EncounterRecord body fields -> the raw field they come from.
ENCOUNTER_FIELD_SOURCE: dict[str, str] = {
    "record_pseudonym": "record_id",
    "document_pseudonym": "document_number",
    "encounter_period": "encounter_date",
    "age": "date_of_birth",
    "age_band": "date_of_birth",
    "sex": "sex",
    "nationality": "nationality",
    "nationality_region": "nationality",
    "place": "encounter_place",
    "previous_country": "previous_country",
}


class PrivacyFloor(StrictModel):
    """The regional ceiling on differential privacy: the most one release of a
    period may cost, and each audience's total privacy-loss budget (a ceiling:
    a national policy's budget may be lower, never higher)."""

    max_epsilon_per_release: float = Field(gt=0, le=10)
    budget: dict[str, float] = Field(
        description="Audience group -> the most privacy loss (epsilon) it may accumulate "
        "on any period; an ISO3 audience takes the 'members' budget."
    )

    def budget_of(self, audience: str) -> float | None:
        if audience in self.budget:
            return self.budget[audience]
        if audience in FEDERATION:
            return self.budget.get("members")
        return None


class RegionalFloor(StrictModel):
    """The minimum every national policy keeps to."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    min_cell_size: int = Field(ge=1, le=1000)
    min_protection: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="The narrowest feasible interval any hidden count of flow statistics "
        "may keep (a policy's protection, or its min_cell_size when it states none).",
    )
    never_leave: list[str] = Field(
        description="Raw fields that leave a node in no form at all, not even pseudonymised."
    )
    audiences: dict[str, list[str]] = Field(
        description="Per exchange, the audiences a member may name; an ISO3 audience is "
        "allowed where 'members' is."
    )
    purposes: list[str]
    max_retention_days: int = Field(gt=0, le=36500)
    max_clock_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How far an event's produced_at may be ahead of the broker's append time.",
    )
    max_publish_delay_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="How far produced_at may be behind the broker's append time: the longest "
        "an event may wait in a node's outbox (an outage) before it reaches the topic.",
    )
    #: Who must approve admitting a member, changing a member's status or
    #: replacing a member's root key (node.federation.membership): a majority, two
    #: thirds, or every counted member.
    membership_quorum: Literal["majority", "two-thirds", "unanimity"] = "majority"
    #: Differential privacy (a flow-statistics method); absent: no policy may use it.
    differential_privacy: PrivacyFloor | None = None

    @field_validator("audiences")
    @classmethod
    def _audiences(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for exchange, names in value.items():
            if exchange not in KIND_EXCHANGE.values():
                raise ValueError(f"{exchange}: not an exchange")
            for name in names:
                if name not in AUDIENCE_GROUPS:
                    raise ValueError(f"{exchange}: unknown audience {name!r}")
        return value

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in PURPOSES:
                raise ValueError(f"unknown purpose {item!r}")
        return value

    # -- national policies ---------------------------------------------------

    def _audience_ok(self, exchange: str, audience: str) -> bool:
        allowed = self.audiences.get(exchange, [])
        if audience in allowed:
            return True
        return audience in FEDERATION and "members" in allowed

    def problems(self, policy: Policy) -> list[tuple[str, str]]:
        """(key path, problem) for every way ``policy`` is weaker than the floor."""
        out: list[tuple[str, str]] = []
        floor = f"the regional floor ({self.version})"
        for kind, exchange in KIND_EXCHANGE.items():
            rules = policy.exchange(kind)
            if not rules.shared:
                continue
            key = f"exchanges.{exchange}"
            for i, audience in enumerate(rules.audiences):
                if not self._audience_ok(exchange, audience):
                    out.append(
                        (f"{key}.audiences[{i}]", f"{audience!r} is not an audience {floor} allows")
                    )
            for i, purpose in enumerate(rules.purposes):
                if purpose not in self.purposes:
                    out.append(
                        (f"{key}.purposes[{i}]", f"{purpose!r} is not a purpose {floor} allows")
                    )
            if rules.retention_days > self.max_retention_days:
                out.append(
                    (
                        f"{key}.retention_days",
                        f"{rules.retention_days} exceeds {floor} maximum of "
                        f"{self.max_retention_days}",
                    )
                )
        flows = policy.exchanges.flow_statistics
        if flows.shared:
            protection = flows.protection or flows.min_cell_size
            if protection < self.min_protection:
                out.append(
                    (
                        "exchanges.flow_statistics.protection",
                        f"{protection} is below {floor} minimum protection of "
                        f"{self.min_protection}",
                    )
                )
        if flows.shared and flows.privacy is not None:
            privacy = flows.privacy
            out.extend(self._privacy_problems(privacy.epsilon_per_release, privacy.budget))
        if flows.shared and flows.min_cell_size < self.min_cell_size:
            out.append(
                (
                    "exchanges.flow_statistics.min_cell_size",
                    f"{flows.min_cell_size} is below {floor} minimum of {self.min_cell_size}",
                )
            )
        records = policy.exchanges.encounter_records
        if records.shared:
            for name, rule in sorted(records.fields.items()):
                if name in self.never_leave and rule.action != "drop":
                    out.append(
                        (
                            f"exchanges.encounter_records.fields.{name}.action",
                            f"{name} never leaves under {floor}: the only rule is drop",
                        )
                    )
                if name in IDENTIFYING and rule.action == "keep":
                    out.append(
                        (
                            f"exchanges.encounter_records.fields.{name}.action",
                            f"{name} identifies a person and may not be kept",
                        )
                    )
        return out

    def _privacy_problems(
        self, epsilon: float, budget: Mapping[str, float]
    ) -> list[tuple[str, str]]:
        key = "exchanges.flow_statistics.privacy"
        floor = f"the regional floor ({self.version})"
        ceiling = self.differential_privacy
        if ceiling is None:
            return [(key, f"{floor} allows no differential privacy: use suppression")]
        out: list[tuple[str, str]] = []
        if epsilon > ceiling.max_epsilon_per_release:
            out.append(
                (
                    f"{key}.epsilon_per_release",
                    f"{epsilon} exceeds {floor} maximum of {ceiling.max_epsilon_per_release}",
                )
            )
        for audience, eps in sorted(budget.items()):
            top = ceiling.budget_of(audience)
            if top is None:
                out.append((f"{key}.budget.{audience}", f"{floor} sets no budget for {audience}"))
            elif eps > top:
                out.append((f"{key}.budget.{audience}", f"{eps} exceeds {floor} budget of {top}"))
        return out

    # -- incoming events -------------------------------------------------------

    def time_problem(self, produced_at: datetime, appended_at: datetime) -> str | None:
        """Why a signer's ``produced_at`` cannot be believed next to the broker's
        append time, or None. Ahead: a clock (or a forger) in the future; behind
        by more than an outbox could have held it: a backdated event."""
        ahead = (produced_at - appended_at).total_seconds()
        if ahead > self.max_clock_skew_seconds:
            return (
                f"produced_at is {ahead:.0f} s after the broker's append time, more than "
                f"the floor's clock skew of {self.max_clock_skew_seconds} s"
            )
        if -ahead > self.max_publish_delay_days * 86_400:
            return (
                f"produced_at is {-ahead / 86_400:.1f} days before the broker's append time, "
                f"more than the floor's publish delay of {self.max_publish_delay_days} days"
            )
        return None

    def event_problem(
        self,
        kind: str,
        audiences: tuple[str, ...],
        purposes: tuple[str, ...],
        retention_days: int | None,
        body: Mapping[str, Any] | None,
    ) -> str | None:
        """Why an event breaks the floor, or None. Never quotes a body value."""
        exchange = KIND_EXCHANGE.get(kind)
        if exchange is None:
            return None
        for audience in audiences:
            if not self._audience_ok(exchange, audience):
                return f"audience {audience!r} not allowed for {kind} by the regional floor"
        for purpose in purposes:
            if purpose not in self.purposes:
                return f"purpose {purpose!r} not allowed by the regional floor"
        if retention_days is not None and retention_days > self.max_retention_days:
            return (
                f"retained {retention_days} days, more than the floor's {self.max_retention_days}"
            )
        if body is None:
            return None
        if kind == "FlowStatistic":
            count = body.get("count")
            if body.get("obs_status") == "N":
                return self._noisy_problem(body)
            if isinstance(count, int) and count < self.min_cell_size:
                return f"count below the floor's minimum cell size {self.min_cell_size}"
        if kind == "EncounterRecord":
            for name, source in ENCOUNTER_FIELD_SOURCE.items():
                if body.get(name) is not None and source in self.never_leave:
                    return f"field {name} derives from {source}, which never leaves"
        return None

    def _noisy_problem(self, body: Mapping[str, Any]) -> str | None:
        """Why a noisy FlowStatistic (obs_status N) breaks the floor, or None: it
        is judged on its noise, not on the minimum cell size. Never quotes a value."""
        ceiling = self.differential_privacy
        if ceiling is None:
            return "noisy count (obs_status N), but the floor allows no differential privacy"
        count, low, high = body.get("count"), body.get("ci95_low"), body.get("ci95_high")
        epsilon, scale = body.get("epsilon"), body.get("noise_scale")
        if not all(isinstance(v, int) for v in (count, low, high)):
            return "noisy count without its 95% interval (ci95_low, ci95_high)"
        if not (isinstance(epsilon, float) and isinstance(scale, float)):
            return "noisy count without its epsilon and noise scale"
        assert isinstance(count, int) and isinstance(low, int) and isinstance(high, int)
        if not 0 <= low <= count <= high:
            return "noisy count outside its own 95% interval"
        if not 0 < epsilon <= ceiling.max_epsilon_per_release:
            return (
                "noisy count measured with an epsilon above the floor's "
                f"{ceiling.max_epsilon_per_release}"
            )
        if scale * epsilon < 1.0 - 1e-9:
            return "noise scale below 1/epsilon: not a differentially private count"
        return None
