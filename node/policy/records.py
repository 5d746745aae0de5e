"""Field rules on raw encounter records: drop, keep, generalise, pseudonymise.

Only ``transform_encounter`` turns a raw record into an EncounterRecord body,
so every field leaves through exactly one rule. Pseudonyms are HMAC-SHA256
under a key the node holds (never a plain hash, which anyone could recompute
from a guessed document number). Linkage tokens are HMACs under a *regional*
key that member nodes share and the Secretariat does not hold
(``node.crypto.linkage``); this module receives the token function as an
argument (``linker``) and adds no token when there is none.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from node.model.codes import age_at, age_band, region_of
from node.policy.atoms import period_label
from node.policy.places import Gazetteer as Gazetteer  # places not listed generalise to _U
from node.policy.record_rules import EncounterRecordRules

#: Output body field -> the raw field whose rule governs it.
BODY_SOURCE: dict[str, str] = {
    "record_pseudonym": "record_id",
    "document_pseudonym": "document_number",
    "linkage_token": "document_number",
    "encounter_period": "encounter_date",
    "encounter_period_type": "encounter_date",
    "age": "date_of_birth",
    "age_band": "date_of_birth",
    "sex": "sex",
    "nationality": "nationality",
    "nationality_region": "nationality",
    "place": "encounter_place",
    "place_level": "encounter_place",
    "previous_country": "previous_country",
}
_PERIOD_TYPES = {"day": "DAY", "iso_week": "ISO_WEEK", "month": "MONTH", "quarter": "QUARTER"}
_PLACE_LEVELS = {
    "municipality": "MUNICIPALITY",
    "province": "PROVINCE",
    "border_sector": "BORDER_SECTOR",
    "country": "COUNTRY",
}
UNKNOWN = "_U"


@dataclass(frozen=True)
class EncounterInput:
    """The raw fields an EncounterRecord may draw on. Names never enter."""

    record_id: str
    document_number: str
    date_of_birth: date
    sex: str
    nationality: str
    encounter_date: date
    encounter_place: str
    previous_country: str | None


def pseudonymise(key: bytes, field: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, separated per field so that a
    record id and a document number with the same text differ."""
    # hmac.digest is OpenSSL's one-shot HMAC: the same bytes as hmac.new(...)
    # at a fraction of the cost, and this runs several times per record.
    return hmac.digest(key, f"{field}\x1f{value}".encode(), "sha256").hex()[:32]


def _document_form(document_number: str) -> str:
    text = unicodedata.normalize("NFKC", document_number).upper()
    return "".join(ch for ch in text if ch.isalnum())


#: (document_number, nationality, date_of_birth ISO) -> linkage token.
Linker = Callable[[str, str, str], str]


def allowed_fields(rules: EncounterRecordRules, linkage: bool) -> frozenset[str]:
    """The body fields a policy lets carry a value."""
    out = {"reporting_country"}
    for name, source in BODY_SOURCE.items():
        rule = rules.rule(source)
        if rule.action == "drop":
            continue
        if name == "linkage_token":
            if rules.linkage_tokens and linkage:
                out.add(name)
            continue
        if source == "date_of_birth":
            if (name == "age" and rule.to == "age") or (
                name == "age_band" and rule.to == "age_band"
            ):
                out.add(name)
            continue
        if source == "nationality":
            to_region = rule.action == "generalise" and rule.to == "region"
            if (name == "nationality_region") == to_region:
                out.add(name)
            continue
        out.add(name)
    return frozenset(out)


def record_subject(country: str, key: bytes, record_id: str) -> str:
    return f"EncounterRecord|{country}|{pseudonymise(key, 'record_id', record_id)}"


def transform_encounter(
    row: EncounterInput,
    rules: EncounterRecordRules,
    country: str,
    *,
    pseudonym_key: bytes,
    linker: Linker | None,
    gazetteer: Gazetteer,
    pseudonyms: bool = True,
) -> dict[str, Any]:
    """The EncounterRecord body the policy lets out for one raw record. With
    ``pseudonyms`` False the pseudonyms and the linkage token are left None
    (their HMACs not computed): the body's quasi-identifiers only, as the
    k-anonymity grouping of every stored record reads them."""
    body: dict[str, Any] = dict.fromkeys(BODY_SOURCE)
    body["reporting_country"] = country
    rule = rules.rule
    if pseudonyms and rule("record_id").action == "pseudonymise":
        body["record_pseudonym"] = pseudonymise(pseudonym_key, "record_id", row.record_id)
    if pseudonyms and rule("document_number").action == "pseudonymise":
        body["document_pseudonym"] = pseudonymise(
            pseudonym_key, "document_number", _document_form(row.document_number)
        )
        if rules.linkage_tokens and linker is not None:
            body["linkage_token"] = linker(
                row.document_number, row.nationality, row.date_of_birth.isoformat()
            )
    date_rule = rule("encounter_date")
    if date_rule.action != "drop":
        level = "day" if date_rule.action == "keep" else (date_rule.to or "day")
        body["encounter_period"] = (
            row.encounter_date.isoformat()
            if level == "day"
            else period_label(row.encounter_date, level)  # type: ignore[arg-type]
        )
        body["encounter_period_type"] = _PERIOD_TYPES[level]
    born = rule("date_of_birth")
    if born.action == "generalise":
        age = age_at(row.date_of_birth, row.encounter_date)
        if born.to == "age":
            body["age"] = age
        else:
            body["age_band"] = age_band(age)
    if rule("sex").action == "keep":
        body["sex"] = row.sex
    nat = rule("nationality")
    if nat.action == "keep" or (nat.action == "generalise" and nat.to == "country"):
        body["nationality"] = row.nationality
    elif nat.action == "generalise":
        body["nationality_region"] = region_of(row.nationality)
    place = rule("encounter_place")
    if place.action != "drop":
        level = "municipality" if place.action == "keep" else (place.to or "municipality")
        province, sector = gazetteer.get(row.encounter_place, (UNKNOWN, UNKNOWN))
        body["place"] = {
            "municipality": row.encounter_place,
            "province": province,
            "border_sector": sector,
            "country": country,
        }[level]
        body["place_level"] = _PLACE_LEVELS[level]
    if rule("previous_country").action == "keep":
        body["previous_country"] = row.previous_country or UNKNOWN
    return body
