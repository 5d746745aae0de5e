"""Reference data a member submits: legislation, consular missions, health
advisories, focal points, and (restricted) intelligence reports.

Unlike encounter records these are meant to leave the node, as whole records,
under the policy's exchange rules. Validation happens here, at the boundary:
country codes are ISO 3166-1 alpha-3, enums are the Avro schemas' symbols,
dates are ISO 8601. Each model knows its event kind, its subject and its Avro
record, so the pipeline and the aggregator never guess.

In CSV files a list is written with ``;`` between items (``CRI;NIC``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from node.model.codes import Iso3, LanguageCode, Upper

_TEXT = 500
_LONG_TEXT = 4000
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Deliberately plain: one @, a dot in the domain, no spaces.
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(";") if item.strip()]
    return value


class ReferenceItem(BaseModel):
    """Common shape of every reference record."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    #: Event kind (and Avro schema name).
    KIND: ClassVar[str]
    #: What an operator types for ``--kind``.
    FILE_KIND: ClassVar[str]
    #: The field naming the submitting country (must be the node's own).
    OWNER_FIELD: ClassVar[str]
    #: The field holding the country's own id of the record.
    ID_FIELD: ClassVar[str]
    #: Fields holding lists (``;``-separated in CSV).
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Restricted kinds never travel unencrypted.
    RESTRICTED: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _blank_is_none_and_lists(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # A blank cell is an absent value: the default applies, or "Field required".
        out = {}
        for key, value in data.items():
            if key in cls.LIST_FIELDS:
                out[key] = _split_list(value)
            elif not (isinstance(value, str) and not value.strip()):
                out[key] = value
        return out

    @property
    def owner(self) -> str:
        return str(getattr(self, self.OWNER_FIELD))

    @property
    def item_id(self) -> str:
        return str(getattr(self, self.ID_FIELD))

    @property
    def subject(self) -> str:
        return f"{self.KIND}|{self.owner}|{self.item_id}"

    def to_avro(self) -> dict[str, Any]:
        """The record as the kind's Avro schema takes it (dates stay dates)."""
        return self.model_dump(mode="python")

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def required_columns(cls) -> tuple[str, ...]:
        return tuple(n for n, f in cls.model_fields.items() if f.is_required())


class LegislationEntry(ReferenceItem):
    """One provision of national law for the IOM legislation mapping."""

    KIND: ClassVar[str] = "LegislationEntry"
    FILE_KIND: ClassVar[str] = "legislation"
    OWNER_FIELD: ClassVar[str] = "country"
    ID_FIELD: ClassVar[str] = "entry_id"

    country: Iso3
    entry_id: str = Field(pattern=_ID)
    topic: Annotated[
        Literal[
            "CARRIER_SANCTIONS", "SMUGGLING_OFFENCE", "NON_CRIMINALISATION", "PALERMO_PROTOCOL"
        ],
        Upper,
    ]
    instrument: str = Field(min_length=1, max_length=_TEXT)
    article: str | None = Field(default=None, max_length=_TEXT)
    summary: str = Field(min_length=1, max_length=_LONG_TEXT)
    in_force_since: date | None = None
    penalty_min_months: int | None = Field(default=None, ge=0, le=1200)
    penalty_max_months: int | None = Field(default=None, ge=0, le=1200)
    fine_min: int | None = Field(default=None, ge=0)
    fine_max: int | None = Field(default=None, ge=0)
    fine_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    palermo_status: (
        Annotated[Literal["NOT_SIGNED", "SIGNED", "RATIFIED", "ACCEDED"], Upper] | None
    ) = None
    palermo_status_date: date | None = None
    compliance_notes: str | None = Field(default=None, max_length=_LONG_TEXT)
    source_url: str | None = Field(default=None, max_length=_TEXT, pattern=r"^https?://\S+$")

    @model_validator(mode="after")
    def _consistent(self) -> LegislationEntry:
        if (
            self.penalty_min_months is not None
            and self.penalty_max_months is not None
            and self.penalty_min_months > self.penalty_max_months
        ):
            raise ValueError("penalty_min_months is greater than penalty_max_months")
        if (
            self.fine_min is not None
            and self.fine_max is not None
            and self.fine_min > self.fine_max
        ):
            raise ValueError("fine_min is greater than fine_max")
        if (self.fine_min is not None or self.fine_max is not None) and self.fine_currency is None:
            raise ValueError("a fine needs fine_currency (ISO 4217)")
        if self.topic == "PALERMO_PROTOCOL" and self.palermo_status is None:
            raise ValueError("a PALERMO_PROTOCOL entry needs palermo_status")
        if self.topic != "PALERMO_PROTOCOL" and self.palermo_status is not None:
            raise ValueError("palermo_status belongs only to PALERMO_PROTOCOL entries")
        return self


class ConsularMission(ReferenceItem):
    """A consulate or embassy accredited in the submitting (host) country."""

    KIND: ClassVar[str] = "ConsularMission"
    FILE_KIND: ClassVar[str] = "consular"
    OWNER_FIELD: ClassVar[str] = "host_country"
    ID_FIELD: ClassVar[str] = "mission_id"
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("also_accredited_to", "languages")

    host_country: Iso3
    mission_id: str = Field(pattern=_ID)
    sending_country: Iso3
    mission_type: Annotated[
        Literal[
            "EMBASSY", "CONSULATE_GENERAL", "CONSULATE", "HONORARY_CONSULATE", "CONSULAR_SECTION"
        ],
        Upper,
    ]
    city: str = Field(min_length=1, max_length=_TEXT)
    address: str | None = Field(default=None, max_length=_TEXT)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()./-]{5,40}$")
    email: str | None = Field(default=None, max_length=254, pattern=_EMAIL)
    also_accredited_to: list[Iso3] = Field(default_factory=list, max_length=60)
    notes: str | None = Field(default=None, max_length=_LONG_TEXT)
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    emergency_phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()./-]{5,40}$")

    @model_validator(mode="after")
    def _not_self(self) -> ConsularMission:
        if self.sending_country == self.host_country:
            raise ValueError("sending_country is the host country itself")
        return self


class HealthAdvisory(ReferenceItem):
    """An infectious-disease advisory about a country of origin."""

    KIND: ClassVar[str] = "HealthAdvisory"
    FILE_KIND: ClassVar[str] = "health"
    OWNER_FIELD: ClassVar[str] = "issuer"
    ID_FIELD: ClassVar[str] = "advisory_id"

    issuer: Iso3
    advisory_id: str = Field(pattern=_ID)
    disease: str = Field(min_length=1, max_length=_TEXT)
    icd10: str | None = Field(default=None, pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
    country_of_origin: Iso3
    source: Annotated[Literal["PAHO", "ICRC", "WHO", "NATIONAL_HEALTH_AUTHORITY"], Upper]
    confidence: Annotated[Literal["LOW", "MEDIUM", "HIGH"], Upper]
    impact: Annotated[Literal["LOW", "MODERATE", "HIGH", "VERY_HIGH"], Upper]
    valid_from: date
    valid_until: date | None = None
    summary: str = Field(min_length=1, max_length=_LONG_TEXT)
    recommended_measures: str | None = Field(default=None, max_length=_LONG_TEXT)
    reference_url: str | None = Field(default=None, max_length=_TEXT, pattern=r"^https?://\S+$")

    @model_validator(mode="after")
    def _period(self) -> HealthAdvisory:
        if self.valid_until is not None and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self

    def current_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)


class FocalPoint(ReferenceItem):
    """A focal point of the technical working group."""

    KIND: ClassVar[str] = "FocalPoint"
    FILE_KIND: ClassVar[str] = "focal-points"
    OWNER_FIELD: ClassVar[str] = "country"
    ID_FIELD: ClassVar[str] = "focal_point_id"
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("languages",)

    country: Iso3
    focal_point_id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=_TEXT)
    role: str = Field(min_length=1, max_length=_TEXT)
    institution: str = Field(min_length=1, max_length=_TEXT)
    email: str = Field(max_length=254, pattern=_EMAIL)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()./-]{5,40}$")
    working_group: str = Field(default="extraregional-flows", min_length=1, max_length=_TEXT)
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    since: date | None = None


class IntelligenceReport(ReferenceItem):
    """Restricted intelligence on smuggling routes, methods and networks."""

    KIND: ClassVar[str] = "IntelligenceReport"
    FILE_KIND: ClassVar[str] = "intelligence"
    OWNER_FIELD: ClassVar[str] = "reporting_country"
    ID_FIELD: ClassVar[str] = "report_id"
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("countries_involved",)
    RESTRICTED: ClassVar[bool] = True

    reporting_country: Iso3
    report_id: str = Field(pattern=_ID)
    title: str = Field(min_length=1, max_length=_TEXT)
    category: Annotated[
        Literal["SMUGGLING_ROUTE", "MODUS_OPERANDI", "NETWORK", "DOCUMENT_FRAUD", "OTHER"], Upper
    ]
    summary: str = Field(min_length=1, max_length=_LONG_TEXT)
    countries_involved: list[Iso3] = Field(default_factory=list, max_length=60)
    period_start: date
    period_end: date | None = None
    confidence: Annotated[Literal["LOW", "MEDIUM", "HIGH"], Upper]
    handling: str | None = Field(default=None, max_length=_TEXT)

    @model_validator(mode="after")
    def _period(self) -> IntelligenceReport:
        if self.period_end is not None and self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


REFERENCE_MODELS: tuple[type[ReferenceItem], ...] = (
    LegislationEntry,
    ConsularMission,
    HealthAdvisory,
    FocalPoint,
    IntelligenceReport,
)
#: Event kind -> model.
BY_KIND: dict[str, type[ReferenceItem]] = {m.KIND: m for m in REFERENCE_MODELS}
#: ``--kind`` value -> model.
BY_FILE_KIND: dict[str, type[ReferenceItem]] = {m.FILE_KIND: m for m in REFERENCE_MODELS}
