"""A country's data-sharing law as a validated model.

A policy file (``policies/<ISO3>.yaml``) states, per exchange, whether it is
shared, on what legal basis, in what shape, to whom and for what. This module
holds the shape of a whole policy, over the exchanges' rules
(``use_rules``, ``record_rules``, ``flow_rules``); ``loader`` reads files and
reports located errors.
"""

from __future__ import annotations

import hashlib

import rfc8785
from pydantic import Field, field_validator, model_validator

from node.model.codes import is_iso3
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.record_rules import EncounterRecordRules
from node.policy.use_rules import StrictModel, UseRules


class Exchanges(StrictModel):
    """One entry per exchange in the 2016 conclusions. An exchange a policy does
    not list is not shared."""

    flow_statistics: FlowStatisticsRules
    encounter_records: EncounterRecordRules = EncounterRecordRules()
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


class Policy(StrictModel):
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
        data = self.model_dump(mode="json")
        # absent = the minimum cell size: a policy that does not state these
        # keeps the hash it had before the settings existed
        if data["exchanges"]["flow_statistics"].get("protection") is None:
            data["exchanges"]["flow_statistics"].pop("protection", None)
        flows = data["exchanges"]["flow_statistics"]
        if flows.get("method") == "suppression" and flows.get("privacy") is None:
            flows.pop("method", None)
            flows.pop("privacy", None)
        if data["exchanges"]["flow_statistics"].get("tables") is None:
            data["exchanges"]["flow_statistics"].pop("tables", None)
        if data["exchanges"]["encounter_records"].get("k_anonymity") is None:
            data["exchanges"]["encounter_records"].pop("k_anonymity", None)
        # RFC 8785 (JSON Canonicalization Scheme), so a verifier in any language
        # reproduces the hash; the same canonical form signs the manifest.
        return rfc8785.dumps(data).decode("utf-8")

    @property
    def sha256(self) -> str:
        """Hash of the canonical form: what an auditor compares, not the YAML bytes.
        An event names the hash of the policy that let it out; the node archives
        each canonical form it used (``policy explain``), so a hash from before
        the move to RFC 8785 still resolves to the text it was made from."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
