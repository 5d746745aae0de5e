"""A country's data-sharing law as a validated model.

A policy file (``policies/<ISO3>.yaml``) states, per exchange, whether it is
shared, on what legal basis, in what shape, to whom and for what. This module
holds the shape; ``loader`` reads files and reports located errors.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Literal

import rfc8785
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
#: A dimension a table keeps: one of the policy's, or nationality_region for a
#: policy that publishes nationality (totals per region of nationality).
TableDimension = FlowDimension
PeriodType = Literal["iso_week", "month", "quarter"]
#: Ladders a small cell may climb before it is suppressed ("coarsen before suppress").
CoarsenLadder = Literal["period", "nationality"]

#: Raw fields that identify a person: they may be dropped or pseudonymised, never
#: kept or generalised (date of birth may be generalised to an age).
IDENTIFYING: frozenset[str] = frozenset(
    {"record_id", "document_number", "family_name", "given_names", "date_of_birth"}
)
FieldAction = Literal["drop", "keep", "generalise", "pseudonymise"]
#: Field -> the levels it may be generalised to, finest first (the raw value is
#: the level before the first).
LADDERS: dict[str, tuple[str, ...]] = {
    "encounter_date": ("day", "iso_week", "month", "quarter"),
    "date_of_birth": ("age", "age_band"),
    "encounter_place": ("municipality", "province", "border_sector", "country"),
    "nationality": ("country", "region"),
}
#: Which actions each raw field admits.
FIELD_ACTIONS: dict[str, frozenset[str]] = {
    "record_id": frozenset({"drop", "pseudonymise"}),
    "document_number": frozenset({"drop", "pseudonymise"}),
    "family_name": frozenset({"drop"}),
    "given_names": frozenset({"drop"}),
    "date_of_birth": frozenset({"drop", "generalise"}),
    "sex": frozenset({"drop", "keep"}),
    "nationality": frozenset({"drop", "keep", "generalise"}),
    "encounter_date": frozenset({"drop", "keep", "generalise"}),
    "encounter_place": frozenset({"drop", "keep", "generalise"}),
    "previous_country": frozenset({"drop", "keep"}),
    "health_notes": frozenset({"drop"}),
}


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


class FieldRule(StrictModel):
    """What happens to one raw field before anything leaves: ``drop``, ``keep``,
    ``generalise`` (to the ladder level ``to``) or ``pseudonymise`` (keyed
    HMAC-SHA256 under the node's own key; never a plain hash)."""

    action: FieldAction
    to: str | None = None

    @model_validator(mode="after")
    def _to_only_for_generalise(self) -> FieldRule:
        if self.action == "generalise" and self.to is None:
            raise ValueError("generalise names the ladder level to reach: add 'to'")
        if self.action != "generalise" and self.to is not None:
            raise ValueError(f"'to' applies only to generalise, not {self.action}")
        return self


class EncounterRecordRules(UseRules):
    """Pseudonymised encounter records: one event per raw record, each raw field
    transformed by its rule. A field without a rule is dropped."""

    fields: dict[str, FieldRule] = Field(default_factory=dict)
    k_anonymity: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="A record leaves only when at least this many records share its "
        "published quasi-identifiers (period, age, sex, nationality, place, previous "
        "country); the flow statistics' min_cell_size if absent.",
    )
    linkage_tokens: bool = Field(
        default=False,
        description="Add a linkage token (HMAC under the regional linkage key) so that "
        "routes can be traced across borders.",
    )

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name, rule in value.items():
            allowed = FIELD_ACTIONS.get(name)
            if allowed is None:
                raise ValueError(f"{name}: not a raw field; use one of {sorted(FIELD_ACTIONS)}")
            if rule.action not in allowed:
                raise ValueError(
                    f"{name}: action {rule.action!r} not allowed for this field; "
                    f"use one of {sorted(allowed)}"
                )
            if rule.action == "generalise":
                ladder = LADDERS[name]
                if rule.to not in ladder:
                    raise ValueError(
                        f"{name}: cannot generalise to {rule.to!r}; use one of {list(ladder)}"
                    )
        return value

    @model_validator(mode="after")
    def _linkage(self) -> EncounterRecordRules:
        if (
            self.linkage_tokens
            and self.fields.get("document_number", FieldRule(action="drop")).action
            != "pseudonymise"
        ):
            raise ValueError(
                "linkage_tokens: a linkage token is made from the document number; "
                "pseudonymise document_number too"
            )
        return self

    def rule(self, name: str) -> FieldRule:
        """The field's rule; a field the policy does not name is dropped."""
        return self.fields.get(name, _DROP)


_DROP = FieldRule(action="drop")


#: How a flow-statistics exchange protects small counts (``node.policy.privacy``).
FlowMethod = Literal["suppression", "differential_privacy"]


class PrivacyRules(StrictModel):
    """Differential privacy for one flow-statistics exchange: every count gets
    calibrated integer noise (OpenDP's discrete Laplace) instead of being
    suppressed. ``epsilon_per_release`` is what one period's measurement costs
    every audience (its later revisions included, up to ``revisions``);
    ``budget`` is the total privacy loss each audience may accumulate on any
    one period (periods are disjoint, so they compose in parallel)."""

    mechanism: Literal["discrete_laplace"] = "discrete_laplace"
    epsilon_per_release: float = Field(gt=0, le=10)
    budget: dict[str, float] = Field(
        description="Audience -> the privacy-loss budget (epsilon) it may accumulate."
    )
    revisions: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Releases of a period (one per period of age) sharing one measurement, "
        "by a binary-tree counter; later records are not counted.",
    )
    domain: dict[FlowDimension, list[str]] = Field(
        default_factory=dict,
        description="The public values of a dimension; a value outside them counts as "
        "'_O' (other). Needed for nationality and previous_country.",
    )

    @field_validator("budget")
    @classmethod
    def _budgets(cls, value: dict[str, float]) -> dict[str, float]:
        for audience, eps in value.items():
            if audience not in AUDIENCE_GROUPS and not is_iso3(audience):
                raise ValueError(f"unknown audience {audience!r}")
            if not eps > 0:
                raise ValueError(f"{audience}: a budget is a positive epsilon")
        return value


class FlowStatisticsRules(UseRules):
    """Counts of encounters by period and dimensions, small cells suppressed.

    ``margins`` lists the totals the country publishes elsewhere (its statistics
    office's tables) or the Secretariat may publish: each is a set of dimensions,
    ``[]`` being the period total. Complementary suppression makes sure no
    suppressed cell can be recovered from those totals and the published cells.
    """

    period: PeriodType = "iso_week"
    dimensions: list[FlowDimension] = Field(min_length=1)
    min_cell_size: int = Field(ge=1, le=1000)
    coarsen: list[CoarsenLadder] = Field(
        default_factory=list,
        description="Ladders a small cell climbs before it is suppressed, in order.",
    )
    secondary_suppression: Literal["none", "complementary"] = "complementary"
    margins: list[list[FlowDimension]] = Field(default_factory=list)
    rounding: int = Field(
        default=1, ge=1, le=100, description="Publish counts rounded to this base; 1 = exact."
    )
    protection: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Width every hidden count's feasible interval keeps, given every "
        "release, margin and exchange its audience sees; min_cell_size if absent.",
    )
    tables: list[list[TableDimension]] | None = Field(
        default=None,
        description="The tables released, each a list of the dimensions it keeps "
        "(``[]`` the period total; the dimensions themselves the detail, which must be "
        "listed); a cell of a table carries _T in the dimensions it sums over. Only the "
        "detail if absent.",
    )

    method: FlowMethod = Field(
        default="suppression",
        description="suppression (small cells hidden) or differential_privacy (every "
        "count noisy; see privacy).",
    )
    privacy: PrivacyRules | None = None

    @field_validator("dimensions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("dimensions are listed more than once")
        if "nationality" in value and "nationality_region" in value:
            raise ValueError("nationality and nationality_region cannot both be dimensions")
        return value

    @model_validator(mode="after")
    def _ladders_and_margins(self) -> FlowStatisticsRules:
        if len(set(self.coarsen)) != len(self.coarsen):
            raise ValueError("coarsen: a ladder is listed more than once")
        if "nationality" in self.coarsen and "nationality" not in self.dimensions:
            raise ValueError("coarsen: nationality is not a dimension, so it cannot be coarsened")
        if "period" in self.coarsen and self.period == "quarter":
            raise ValueError("coarsen: quarter is the top of the period ladder")
        for i, margin in enumerate(self.margins):
            extra = set(margin) - set(self.dimensions)
            if extra:
                raise ValueError(f"margins[{i}]: {sorted(extra)} not among the dimensions")
        if self.margins and self.secondary_suppression == "none":
            raise ValueError(
                "margins are published but secondary_suppression is none: a suppressed "
                "cell could be recovered from them"
            )
        if self.rounding > self.min_cell_size:
            raise ValueError("rounding: the base must not exceed min_cell_size")
        self._privacy_settings()
        self._check_tables()
        return self

    def _privacy_settings(self) -> None:
        if self.method != "differential_privacy":
            if self.privacy is not None:
                raise ValueError("privacy: applies only to method differential_privacy")
            return
        if self.privacy is None:
            raise ValueError(
                "method differential_privacy needs privacy: {epsilon_per_release, budget}"
            )
        if self.coarsen or self.rounding > 1:
            raise ValueError("differential_privacy: coarsen and rounding do not apply; remove them")
        missing = [a for a in self.audiences if a not in self.privacy.budget]
        if missing:
            raise ValueError(f"privacy.budget: no budget for audience(s) {missing}")
        for audience, eps in self.privacy.budget.items():
            if eps < self.privacy.epsilon_per_release:
                raise ValueError(
                    f"privacy.budget.{audience}: {eps} is less than one release "
                    f"(epsilon_per_release {self.privacy.epsilon_per_release})"
                )
        for dim in ("nationality", "previous_country"):
            if dim in self.dimensions and dim not in self.privacy.domain:
                raise ValueError(f"privacy.domain: list the public values of {dim}")

    def _check_tables(self) -> None:
        if self.tables is None:
            return
        dims = set(self.dimensions)
        seen: dict[frozenset[str], int] = {}
        for i, table in enumerate(self.tables):
            where = f"tables[{i}]"
            if len(set(table)) != len(table):
                raise ValueError(f"{where}: a dimension is listed more than once")
            kept = set(table)
            if "nationality_region" in kept and "nationality_region" not in dims:
                if "nationality" not in dims:
                    raise ValueError(
                        f"{where}: nationality_region needs nationality or "
                        "nationality_region among the dimensions"
                    )
                if "nationality" in kept:
                    raise ValueError(
                        f"{where}: nationality and nationality_region cannot both be kept"
                    )
                if kept - {"nationality_region"} == dims - {"nationality"}:
                    raise ValueError(
                        f"{where}: the detail by region of nationality is the detail "
                        "coarsened: use coarsen: [nationality] instead"
                    )
                kept = (kept - {"nationality_region"}) | {"nationality"}
            extra = kept - dims
            if extra:
                raise ValueError(
                    f"{where}: {sorted(extra)} not among the dimensions {self.dimensions}"
                )
            key = frozenset(table)
            if key in seen:
                raise ValueError(f"{where}: the same table as tables[{seen[key]}]")
            seen[key] = i
        if frozenset(self.dimensions) not in seen:
            raise ValueError(
                f"tables: list the detail {self.dimensions} too (the finest table is the "
                "policy's dimensions; to publish less detail, drop dimensions)"
            )
        if (
            len(self.tables) > 1
            and self.secondary_suppression == "none"
            and self.method != "differential_privacy"  # nothing is suppressed
        ):
            raise ValueError(
                "tables are published but secondary_suppression is none: a suppressed "
                "cell could be recovered from a table"
            )

    def table_list(self) -> list[tuple[str, ...]]:
        """The tables other than the detail, each as the dimensions it keeps in the
        order of ``dimensions`` (nationality_region standing for nationality)."""
        order: dict[str, int] = {name: i for i, name in enumerate(self.dimensions)}
        if "nationality" in order:
            order.setdefault("nationality_region", order["nationality"])
        out: list[tuple[str, ...]] = []
        for table in self.tables or ():
            if set(table) == set(self.dimensions):
                continue
            out.append(tuple(sorted(table, key=lambda d: order[d])))
        return out

    def output_fields(self) -> frozenset[str]:
        """The FlowStatistic body fields this policy lets carry a value."""
        fields = {"reporting_country", "period", "period_type", "count", "obs_status"}
        fields |= set(self.dimensions)
        if self.method == "differential_privacy":
            fields |= {"ci95_low", "ci95_high", "noise_mechanism", "noise_scale", "epsilon"}
        if "nationality" in self.coarsen or any(
            "nationality_region" in t for t in self.tables or ()
        ):
            fields.add("nationality_region")
        return frozenset(fields)


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
