"""How each kind of verified event changes the picture.

One applier per event kind. An applier is called only for the newest revision
of a subject and adds its rows to the ``PictureWrites`` the batch's SQLite
transaction sends; a None body is a withdrawal of the subject.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import ValidationError

from node.model.events import Envelope
from node.model.reference import BY_KIND
from node.store.picture_writes import PictureWrites

Applier = Callable[[PictureWrites, Envelope, dict[str, Any] | None], None]


def apply_flow_statistic(writes: PictureWrites, env: Envelope, body: dict[str, Any] | None) -> None:
    writes.flow(env.subject, env.revision, env.event_id, env.producer, body)


def _reference_applier(table: str, keys: Callable[[dict[str, Any]], dict[str, Any]]) -> Applier:
    """An applier that keeps the current revision of a subject in a view table."""

    def apply(writes: PictureWrites, env: Envelope, body: dict[str, Any] | None) -> None:
        if body is None:
            writes.delete_view(table, env.subject)
        else:
            writes.upsert_view(table, env, keys(body), body)

    return apply


def _date(value: object) -> str | None:
    # A body read back from the history (a revocation restoring a revision)
    # holds its dates as ISO strings already.
    if isinstance(value, str):
        return value
    return value.isoformat() if isinstance(value, date) else None


apply_legislation_entry = _reference_applier(
    "legislation_view", lambda b: {"country": b["country"], "topic": b["topic"]}
)
apply_consular_mission = _reference_applier(
    "consular_view",
    lambda b: {k: b[k] for k in ("host_country", "sending_country", "mission_type", "city")},
)
apply_health_advisory = _reference_applier(
    "health_view",
    lambda b: {
        "issuer": b["issuer"],
        "country_of_origin": b["country_of_origin"],
        "disease": b["disease"],
        "valid_from": _date(b["valid_from"]),
        "valid_until": _date(b.get("valid_until")),
    },
)
apply_focal_point = _reference_applier(
    "focal_point_view", lambda b: {"country": b["country"], "name": b["name"]}
)
apply_encounter_record = _reference_applier(
    "encounter_view",
    lambda b: {
        k: b.get(k)
        for k in ("reporting_country", "linkage_token", "encounter_period", "nationality")
    },
)

#: Reference kind -> the body field naming the submitting country and the one
#: holding its own id; the subject must be <kind>|<owner>|<id> with owner the producer.
REFERENCE_SUBJECTS: dict[str, tuple[str, str]] = {
    "LegislationEntry": ("country", "entry_id"),
    "ConsularMission": ("host_country", "mission_id"),
    "HealthAdvisory": ("issuer", "advisory_id"),
    "FocalPoint": ("country", "focal_point_id"),
    "IntelligenceReport": ("reporting_country", "report_id"),
}


def subject_problem(env: Envelope, body: dict[str, Any] | None) -> str | None:
    """Why an event may not describe its subject (None: it may).

    A producer speaks only for itself: its subjects name it, and a reference
    body names it as the submitting country. Without this a member holding a
    valid key could overwrite another member's entries.
    """
    prefix = f"{env.kind}|{env.producer}|"
    if not env.subject.startswith(prefix):
        return f"subject {env.subject!r} is not one of {env.producer}'s {env.kind} subjects"
    if body is None or env.kind not in REFERENCE_SUBJECTS:
        return None
    owner, ident = REFERENCE_SUBJECTS[env.kind]
    if body.get(owner) != env.producer:
        return f"{env.kind}.{owner} is {body.get(owner)!r}, the producer is {env.producer}"
    if env.subject != f"{prefix}{body.get(ident)}":
        return f"subject {env.subject!r} does not match {env.kind}.{ident} {body.get(ident)!r}"
    return None


def body_problem(env: Envelope, body: dict[str, Any] | None) -> str | None:
    """Why a reference body is not valid at the aggregator's boundary (None: it is).

    The producer's node validated it, but the aggregator trusts no node's
    validation: code lists (ISO 3166 countries, enum-like fields held as
    strings) and cross-field rules are checked again with the same models.
    """
    model = BY_KIND.get(env.kind)
    if body is None or model is None:
        return None
    try:
        model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        return f"{env.kind}{'.' + where if where else ''}: {msg}"
    return None


APPLIERS: dict[str, Applier] = {
    "FlowStatistic": apply_flow_statistic,
    "LegislationEntry": apply_legislation_entry,
    "ConsularMission": apply_consular_mission,
    "HealthAdvisory": apply_health_advisory,
    "FocalPoint": apply_focal_point,
    "EncounterRecord": apply_encounter_record,
}
