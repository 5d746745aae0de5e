"""Raw encounter records as they arrive from a country's systems.

These never leave the node. Validation happens here, at the boundary, so every
later stage may trust the types.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from node.model.codes import Iso3, Upper, iso3_code

#: Columns of an encounter file, in template order. ``health_notes`` is optional.
ENCOUNTER_COLUMNS: tuple[str, ...] = (
    "record_id",
    "document_number",
    "family_name",
    "given_names",
    "date_of_birth",
    "sex",
    "nationality",
    "encounter_date",
    "encounter_place",
    "previous_country",
    "health_notes",
)
REQUIRED_COLUMNS: tuple[str, ...] = ENCOUNTER_COLUMNS[:-1]

#: Raw values that identify a person. The egress guard and the Kafka scan tests
#: look for exactly these.
IDENTIFYING_FIELDS: tuple[str, ...] = (
    "document_number",
    "family_name",
    "given_names",
    "date_of_birth",
)

_MAX_TEXT = 200


class EncounterRecord(BaseModel):
    """One person's encounter with the authorities of the reporting country."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    record_id: str = Field(min_length=1, max_length=64)
    document_number: str = Field(min_length=1, max_length=64)
    family_name: str = Field(min_length=1, max_length=_MAX_TEXT)
    given_names: str = Field(min_length=1, max_length=_MAX_TEXT)
    date_of_birth: date
    sex: Annotated[Literal["F", "M", "X"], Upper]
    nationality: Iso3
    encounter_date: date
    encounter_place: str = Field(min_length=1, max_length=_MAX_TEXT)
    previous_country: str | None = None
    health_notes: str | None = Field(default=None, max_length=2000)

    @field_validator("previous_country", "health_notes", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("previous_country")
    @classmethod
    def _previous(cls, value: str | None) -> str | None:
        return None if value is None else iso3_code(value)

    @field_validator(
        "record_id", "document_number", "family_name", "given_names", "encounter_place"
    )
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("contains control characters")
        return value

    @field_validator("encounter_date")
    @classmethod
    def _after_birth(cls, value: date, info: ValidationInfo) -> date:
        born = info.data.get("date_of_birth")
        if isinstance(born, date):
            if born > value:
                raise ValueError("encounter_date is before date_of_birth")
            if value.year - born.year > 120:
                raise ValueError("encounter_date is more than 120 years after date_of_birth")
        return value
