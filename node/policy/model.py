"""A country's data-sharing law as a validated model.

A policy file (``policies/<ISO3>.yaml``) states, per exchange, whether it is
shared, on what legal basis, in what shape, to whom and for what. This module
holds the shape; ``loader`` reads files and reports located errors.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import Literal

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
FlowDimension = Literal["nationality", "nationality_region", "sex", "age_band", "previous_country"]
PeriodType = Literal["iso_week", "month", "quarter"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UseRules(_Strict):
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


class FlowStatisticsRules(UseRules):
    """Counts of encounters by period and dimensions, small cells suppressed."""

    period: PeriodType = "iso_week"
    dimensions: list[FlowDimension] = Field(min_length=1)
    min_cell_size: int = Field(ge=1, le=1000)

    @field_validator("dimensions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("dimensions are listed more than once")
        if "nationality" in value and "nationality_region" in value:
            raise ValueError("nationality and nationality_region cannot both be dimensions")
        return value


class Exchanges(_Strict):
    """One entry per exchange in the 2016 conclusions. An exchange a policy does
    not list is not shared."""

    flow_statistics: FlowStatisticsRules
    encounter_records: UseRules = UseRules()
    intelligence: UseRules = UseRules()
    legislation: UseRules = UseRules()
    consular_missions: UseRules = UseRules()
    health_advisories: UseRules = UseRules()
    focal_points: UseRules = UseRules()


#: Event kind -> the exchange of a policy that governs it.
KIND_EXCHANGE: dict[str, str] = {
    "FlowStatistic": "flow_statistics",
    "EncounterRecord": "encounter_records",
    "IntelligenceReport": "intelligence",
    "LegislationEntry": "legislation",
    "ConsularMission": "consular_missions",
    "HealthAdvisory": "health_advisories",
    "FocalPoint": "focal_points",
}


class Policy(_Strict):
    """One country's policy, one version of it."""

    country: str
    name: str = Field(min_length=1)
    version: str = Field(min_length=1, max_length=40)
    legal_basis: str = Field(min_length=1)
    exchanges: Exchanges

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not is_iso3(value):
            raise ValueError(f"not an ISO 3166-1 alpha-3 country code: {value!r}")
        return value

    @model_validator(mode="after")
    def _named_audiences_are_not_self(self) -> Policy:
        for name in KIND_EXCHANGE.values():
            if self.country in getattr(self.exchanges, name).audiences:
                raise ValueError(f"exchanges.{name}: a country does not list itself as an audience")
        return self

    def exchange(self, kind: str) -> UseRules:
        """The rules governing events of ``kind`` (e.g. ``FlowStatistic``)."""
        try:
            rules: UseRules = getattr(self.exchanges, KIND_EXCHANGE[kind])
        except KeyError:
            raise KeyError(f"no exchange governs event kind {kind!r}") from None
        return rules

    def legal_basis_for(self, kind: str) -> str:
        return self.exchange(kind).legal_basis or self.legal_basis

    @property
    def policy_id(self) -> str:
        return f"{self.country}-policy"

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def sha256(self) -> str:
        """Hash of the canonical form: what an auditor compares, not the YAML bytes."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
