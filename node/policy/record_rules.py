"""The rules of the encounter-records exchange: what is done with each raw
field (drop, keep, generalise along its ladder, pseudonymise) and the linkage
and k-anonymity a policy asks for."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from node.policy.use_rules import StrictModel, UseRules

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
