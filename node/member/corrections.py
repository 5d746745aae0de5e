"""Withdraw or correct a country's own events, and show a subject's history.

A correction is the next revision of a subject with the corrected body; a
withdrawal is the next revision with no body. Both are staged by the next
publish (the CLI publishes straight away), so the usual ledger, outbox and
acknowledgement rules apply. The aggregator's picture then shows the latest
revision; every revision stays in its history.

Reference records (legislation, consular missions, ...) are corrected or
withdrawn in the node's reference store. Flow-statistic cells are computed
from raw records, so they are corrected by correcting the raw records; an
operator can still withdraw a cell, which holds it back from every later
publication.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from node.config import Home
from node.errors import ConfigError, InputError
from node.member.event_factory import FLOW_KIND
from node.model.reference import BY_KIND
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.store.reference import ReferenceStore, canonical


@dataclass(frozen=True)
class Change:
    subject: str
    kind: str
    action: str  # withdraw | correct


def _member(home: Home) -> Home:
    if home.is_aggregator:
        raise ConfigError(f"{home.path} is the aggregator's home; this needs a member node")
    return home


def resolve_subject(store: NodeStore, target: str) -> str:
    """A subject, given itself or the id of one of this node's events."""
    row = store.event_record(target)
    return str(row["subject"]) if row is not None else target


def _published_kind(store: NodeStore, subject: str) -> str | None:
    kind = subject.split("|", 1)[0]
    previous = store.ledger(kind).get(subject)
    return kind if previous is not None else None


def withdraw(home: Home, target: str, reason: str | None = None) -> Change:
    """Withdraw one of this node's subjects (by subject or event id)."""
    _member(home)
    with NodeStore(home.store_path) as store, ReferenceStore(home.store_path) as refs:
        subject = resolve_subject(store, target)
        item = refs.get(subject)
        if item is not None:
            if item.withdrawn:
                raise ConfigError(f"{subject} is already withdrawn")
            refs.withdraw_item(subject, item.kind, reason)
            return Change(subject, item.kind, "withdraw")
        kind = _published_kind(store, subject)
        if kind != FLOW_KIND:
            raise ConfigError(f"{home.country} has published no subject or event {target!r}")
        if subject in refs.held(kind):
            raise ConfigError(f"{subject} is already withdrawn")
        refs.hold(subject, kind, reason)
        return Change(subject, kind, "withdraw")


def _with_changes(item_fields: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
    merged = dict(item_fields)
    for name, value in changes.items():
        merged[name] = value
    return merged


def correct(home: Home, target: str, changes: dict[str, str], reason: str | None = None) -> Change:
    """Correct fields of one of this node's reference records (by subject or event id).

    ``changes`` maps field names to new values as they would be written in a
    CSV cell (lists ``;``-separated, blank for none). The corrected record is
    validated like an ingested one.
    """
    _member(home)
    if not changes:
        raise InputError("nothing to correct: give at least one FIELD=VALUE")
    with NodeStore(home.store_path) as store, ReferenceStore(home.store_path) as refs:
        subject = resolve_subject(store, target)
        stored = refs.get(subject)
        if stored is None:
            if _published_kind(store, subject) == FLOW_KIND:
                raise ConfigError(
                    "flow statistics are computed from raw records: correct the records and "
                    "publish again (or withdraw the cell)"
                )
            raise ConfigError(f"{home.country} holds no reference record {target!r}")
        model = BY_KIND[stored.kind]
        for name in changes:
            if name not in model.model_fields:
                raise InputError(f"no such field in {stored.kind}", field=name)
            if name in (model.OWNER_FIELD, model.ID_FIELD):
                raise InputError(
                    "identifies the record and cannot be corrected; withdraw it and ingest "
                    "a new one",
                    field=name,
                )
        try:
            corrected = model.model_validate(
                _with_changes(stored.item.model_dump(mode="json"), changes)
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = err["loc"]
            raise InputError(
                err["msg"].removeprefix("Value error, "), field=str(loc[0]) if loc else None
            ) from exc
        refs.correct_item(corrected, reason, changes)
        return Change(subject, stored.kind, "correct")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def history(home: Home, target: str) -> dict[str, Any]:
    """Every revision of a subject (given itself or an event id).

    At the aggregator: each revision received, with its body, whether it was
    applied and which one is current. At a member: each revision sent, with
    its broker acknowledgement, the local record and the operator's notes.
    """
    if home.is_aggregator:
        with PictureStore(home.store_path) as pic:
            revisions = pic.history(target)
        subject = revisions[0]["subject"] if revisions else target
        if not revisions:
            raise ConfigError(f"no event or subject {target!r} in the picture")
        return {"subject": subject, "revisions": revisions}
    with NodeStore(home.store_path) as store, ReferenceStore(home.store_path) as refs:
        subject = resolve_subject(store, target)
        sent = refs.sent_revisions(subject)
        item = refs.get(subject)
        notes = refs.notes(subject)
        if not sent and item is None:
            raise ConfigError(f"{home.country} has no subject or event {target!r}")
        for rev in sent:
            rev["created_at"] = _iso(rev["created_at"])
            rev["acked_at"] = _iso(rev["acked_at"])
        for note in notes:
            note["at"] = _iso(note["at"])
        return {
            "subject": subject,
            "revisions": sent,
            "notes": notes,
            "current": None if item is None else item.item.model_dump(mode="json"),
            "withdrawn": None if item is None else item.withdrawn,
        }


def list_references(home: Home, kind: str | None = None) -> list[dict[str, Any]]:
    """The reference records this node holds, with what was last published of each.

    ``state`` is ``published`` (the topic has this content), ``pending`` (new
    or changed since the last publish), ``withdrawn`` or ``withdrawal pending``.
    """
    _member(home)
    kinds = [kind] if kind else list(BY_KIND)
    out: list[dict[str, Any]] = []
    with NodeStore(home.store_path) as store, ReferenceStore(home.store_path) as refs:
        for k in kinds:
            if k not in BY_KIND:
                raise InputError(f"unknown kind {k!r}; use one of {list(BY_KIND)}")
            ledger = store.ledger(k)
            for stored in refs.items(k):
                revision, content = ledger.get(stored.subject, (0, None))
                current = canonical(stored.item.model_dump(mode="json"))
                if stored.withdrawn:
                    state = "withdrawn" if content is None else "withdrawal pending"
                else:
                    state = "published" if content == current else "pending"
                out.append(
                    {
                        "subject": stored.subject,
                        "kind": k,
                        "id": stored.item.item_id,
                        "state": state,
                        "published_revision": revision or None,
                    }
                )
    return out
