"""What the folder shows, as plain data for one audience: the pages and the API
both call these, and these call ``node.report`` (the exports' own functions),
so every number passes the exports' admission rule
(``node.report.audience.admits``) and nothing else decides what is shown.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from node.errors import ConfigError
from node.model.codes import SUBREGION, is_iso3
from node.report.audience import Scope, admits
from node.report.flows import FlowRow, picture_json_for, rows_of
from node.report.reference import VIEWS, ViewFilter
from node.report.regional import FlowCell, admitted_cells
from node.report.tables import UNIT
from node.report.views import admitted_view_rows, view_data
from node.store.picture import PictureStore

PERIOD_RE = re.compile(r"\d{4}(-W\d{2}|-\d{2}|-Q[1-4])?")
REGIONS: frozenset[str] = frozenset(SUBREGION.values())
#: The view whose purpose an event of each kind is read for (its default purpose).
KIND_VIEW: dict[str, str] = {
    "FlowStatistic": "flows",
    "EncounterRecord": "corridors",
    **{v.kind: name for name, v in VIEWS.items()},
}
REFERENCE_KINDS: tuple[str, ...] = tuple(VIEWS)


@dataclass(frozen=True)
class FlowFilter:
    """What a user narrows the flows to; every field validated (``parse``)."""

    period_from: str | None = None
    period_to: str | None = None
    country: str | None = None
    nationality: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, params: dict[str, str]) -> FlowFilter:
        """From query parameters; an invalid value is a ``ConfigError`` naming it."""

        def period(name: str) -> str | None:
            v = (params.get(name) or "").strip()
            if not v:
                return None
            if not PERIOD_RE.fullmatch(v):
                raise ConfigError(f"{name}: not a period like 2026-W03, 2026-01 or 2026-Q1")
            return v

        def iso3(name: str) -> str | None:
            v = (params.get(name) or "").strip().upper()
            if not v:
                return None
            if not is_iso3(v):
                raise ConfigError(f"{name}: not an ISO 3166 alpha-3 country code")
            return v

        region = (params.get("region") or "").strip() or None
        if region is not None and region not in REGIONS:
            raise ConfigError("region: not a UN M49 sub-region name")
        return cls(period("from"), period("to"), iso3("country"), iso3("nationality"), region)

    def keeps(self, period: str, country: str, nationality: str | None, region: str | None) -> bool:
        if self.period_from and period < self.period_from:
            return False
        if self.period_to and period[: len(self.period_to)] > self.period_to:
            return False
        if self.country and country != self.country:
            return False
        if self.nationality and nationality != self.nationality:
            return False
        if self.region:
            cell_region = region or (SUBREGION.get(nationality or "") if nationality else None)
            if cell_region != self.region:
                return False
        return True

    def cells(self, cells: list[FlowCell]) -> list[FlowCell]:
        return [c for c in cells if self.keeps(c.period, c.country, c.nationality, c.region)]

    def as_query(self) -> dict[str, str]:
        out = {
            "from": self.period_from,
            "to": self.period_to,
            "country": self.country,
            "nationality": self.nationality,
            "region": self.region,
        }
        return {k: v for k, v in out.items() if v}


def flows_json(store: PictureStore, scope: Scope, flt: FlowFilter) -> dict[str, Any]:
    """``report --format json`` for the audience (``picture_json_for``), flows filtered."""
    doc = picture_json_for(store, scope)
    doc["flows"] = [
        f
        for f in doc["flows"]
        if flt.keeps(f["period"], f["reporting_country"], f["nationality"], f["nationality_region"])
    ]
    return doc


@dataclass(frozen=True)
class FlowPage:
    cells: list[FlowCell]
    rows: list[tuple[FlowRow, str]]  # (row, OBS_STATUS: A normal, E estimated)
    countries: list[str]
    periods: list[str]


def flow_page(store: PictureStore, scope: Scope, flt: FlowFilter) -> FlowPage:
    cells = flt.cells(admitted_cells(store, scope, "flows"))
    # Each row's status (exact, rounded, noisy, lower-bound) comes with it;
    # OBS_STATUS keeps the SDMX letter: N noisy, E rounded, A otherwise.
    rows = [
        (r, "N" if r.status == "noisy" else "E" if r.status == "rounded" else "A")
        for r in rows_of(cells)
    ]
    countries = sorted({c.country for c in cells})
    periods = sorted({c.period for c in cells})
    return FlowPage(cells, rows, countries, periods)


def stat_view(store: PictureStore, scope: Scope, view: str, last: int = 0) -> dict[str, Any]:
    return view_data(view, store, scope, last=last)


def reference_json(store: PictureStore, scope: Scope, kind: str) -> dict[str, Any]:
    """A reference view as ``report VIEW --format json`` makes it."""
    if kind not in VIEWS:
        raise KeyError(kind)
    rows = admitted_view_rows(store, kind, scope, ViewFilter(as_of=scope.now.date()))
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "view": kind,
        "kind": VIEWS[kind].kind,
        "audience": scope.audience,
        "purpose": scope.purpose_for(kind),
        "rows": json.loads(json.dumps(rows, default=str)),
    }


def _admitted_event(
    uses: dict[str, dict[str, Any]], event_id: str, kind: str, scope: Scope
) -> bool:
    view = KIND_VIEW.get(kind)
    if view is None:  # a kind with no export (intelligence reports): never admitted
        return False
    return admits(uses.get(event_id), scope.audience, scope.purpose_for(view), scope.now)


def releases(store: PictureStore, scope: Scope, country: str) -> dict[str, Any]:
    """What ``country`` released: each subject's latest revision and how many
    revisions it had, only for events the audience is admitted to; a member
    sees all of its own (it made them)."""
    uses = store.uses()
    own = scope.audience == country
    revisions = [
        r
        for r in store.revisions_by(country)
        if own or _admitted_event(uses, r["event_id"], r["kind"], scope)
    ]
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in revisions:
        by_subject[r["subject"]].append(r)
    latest = []
    for subject, revs in by_subject.items():
        top = max(revs, key=lambda r: (r["revision"], r["produced_at"]))
        latest.append(
            {
                "subject": subject,
                "kind": top["kind"],
                "revision": top["revision"],
                "action": "withdrawal" if top["withdrawn"] else "publication",
                "produced_at": top["produced_at"],
                "current": bool(top["current"]),
                "event_id": top["event_id"],
                "revisions": len(revs),
            }
        )
    latest.sort(key=lambda r: (r["produced_at"], r["subject"]), reverse=True)
    kinds: dict[str, int] = defaultdict(int)
    for r in latest:
        kinds[r["kind"]] += 1
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "country": country,
        "audience": scope.audience,
        "subjects_by_kind": dict(sorted(kinds.items())),
        "releases": latest,
    }


def history(store: PictureStore, scope: Scope, subject: str) -> list[dict[str, Any]]:
    """Every revision of a subject the audience is admitted to; the body only
    when its own event admits the audience."""
    uses = store.uses()
    out = []
    for rev in store.history(subject):
        admitted = _admitted_event(uses, rev["event_id"], rev["kind"], scope)
        if not admitted and rev["producer"] != scope.audience:
            continue
        out.append({**rev, "body": rev["body"] if admitted else None})
    return out


def received(store: PictureStore, country: str) -> dict[str, Any]:
    """What the Secretariat received from ``country`` and what it set aside,
    with the reasons (metadata only: no number, no body)."""
    got = store.received_by(country)
    return {
        "country": country,
        "received": len(got),
        "applied": sum(1 for r in got if r["applied"]),
        "events": got[:500],
        "set_aside": store.rejected_from(country),
    }


def intelligence(store: PictureStore, audience: str) -> list[dict[str, Any]]:
    """Intelligence reports the Secretariat relayed (sealed: metadata only),
    those whose recipients include ``audience``, or that it produced; the
    Secretariat, which relays them, sees the metadata of all."""
    out = []
    for r in store.restricted_events():
        labels = [k for k in r["recipients"].split(",") if k]
        # A v1 box names its recipients' key ids (ISO3:...); an HPKE box (v2)
        # carries an opaque label per entry and names nobody, so only its
        # producer and the TS, which relays it, see that it exists.
        recipients = sorted({k.split(":", 1)[0] for k in labels if not k.startswith("hpke:")})
        if audience == "TS" or audience == r["producer"] or audience in recipients:
            out.append(
                {
                    "event_id": r["event_id"],
                    "producer": r["producer"],
                    "subject": r["subject"],
                    "revision": r["revision"],
                    "recipients": recipients,
                    "sealed_entries": len(labels),
                    "received_at": datetime.fromtimestamp(r["created_at"], UTC).isoformat(
                        timespec="seconds"
                    ),
                    "relayed": r["relayed_at"] is not None,
                }
            )
    return out


def flow_rows_dicts(page: FlowPage) -> list[dict[str, Any]]:
    return [{**asdict(r), "obs_status": s, "unit": UNIT} for r, s in page.rows]
