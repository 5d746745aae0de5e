"""What every exchange of a policy states (``UseRules``): whether it is shared,
on what legal basis, to whom, for what and for how long; and the strict base
of every policy model. The exchanges' own rules are ``node.policy.record_rules``
and ``node.policy.flow_rules``; the whole policy is ``node.policy.model``."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from node.model.codes import is_iso3

Audience = str  # "TS", "IOM", "UNHCR", "PAHO", "ICRC", "UNODC", "members", "public" or an ISO3
AUDIENCE_GROUPS: frozenset[str] = frozenset(
    {"TS", "IOM", "UNHCR", "PAHO", "ICRC", "UNODC", "members", "public"}
)
PURPOSES: frozenset[str] = frozenset(
    {
        "statistics",
        "planning",
        "humanitarian",
        "health",
        "anti-smuggling",
        "research",
        "legal-mapping",
    }
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UseRules(StrictModel):
    """Whether an exchange is shared, on what basis, to whom, for what, how long."""

    shared: bool = False
    legal_basis: str | None = Field(
        default=None, description="Citation for this exchange; the policy's own if absent."
    )
    audiences: list[Audience] = Field(default_factory=list)
    purposes: list[str] = Field(default_factory=list)
    retention_days: int = Field(default=1825, gt=0, le=36500)
    embargo_days: int = Field(default=0, ge=0, le=3650)

    @field_validator("audiences")
    @classmethod
    def _audiences(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in AUDIENCE_GROUPS and not is_iso3(item):
                raise ValueError(
                    f"unknown audience {item!r}: use one of {sorted(AUDIENCE_GROUPS)} "
                    "or an ISO 3166-1 alpha-3 country code"
                )
        return value

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in PURPOSES:
                raise ValueError(f"unknown purpose {item!r}: use one of {sorted(PURPOSES)}")
        return value

    @model_validator(mode="after")
    def _shared_needs_use(self) -> UseRules:
        if self.shared and not self.audiences:
            raise ValueError("a shared exchange names at least one audience")
        if self.shared and not self.purposes:
            raise ValueError("a shared exchange names at least one purpose")
        return self

    def retain_until(self, today: date) -> date:
        return today + timedelta(days=self.retention_days)
