"""The reference views of the regional picture, as rows, JSON, CSV and tables.

    legislation    the IOM legislation matrix: country × topic (conclusion 1b)
    consulates     the regional consular directory (conclusion 2f)
    health         current health advisories by country of origin (conclusion 2c)
    focal-points   the technical working group's focal points (conclusion 1a)

Rows are the latest revision of each subject; withdrawn subjects are gone
from the views (their history stays, see ``corredor history``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from node.model.codes import corridor_sort_key
from node.store.picture import PictureStore

LEGISLATION_TOPICS: tuple[str, ...] = (
    "CARRIER_SANCTIONS",
    "SMUGGLING_OFFENCE",
    "NON_CRIMINALISATION",
    "PALERMO_PROTOCOL",
)
_SOURCES = {"NATIONAL_HEALTH_AUTHORITY": "national authority"}
_IMPACT_ORDER = {"VERY_HIGH": 0, "HIGH": 1, "MODERATE": 2, "LOW": 3}


@dataclass(frozen=True)
class ViewFilter:
    """What an operator narrows a view to."""

    origin: str | None = None  # sending country / country of origin, ISO3
    country: str | None = None  # reporting (submitting) country, ISO3
    as_of: date | None = None  # health: advisories current on this day


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    out["revision"] = row["_revision"]
    out["event_id"] = row["_event_id"]
    return out


def legislation_rows(store: PictureStore, flt: ViewFilter) -> list[dict[str, Any]]:
    rows = [_clean(r) for r in store.view("legislation_view")]
    if flt.country:
        rows = [r for r in rows if r["country"] == flt.country]
    return sorted(
        rows,
        key=lambda r: (
            corridor_sort_key(r["country"]),
            LEGISLATION_TOPICS.index(r["topic"]) if r["topic"] in LEGISLATION_TOPICS else 99,
            r["entry_id"],
        ),
    )


def consular_rows(store: PictureStore, flt: ViewFilter) -> list[dict[str, Any]]:
    rows = [_clean(r) for r in store.view("consular_view")]
    if flt.origin:
        rows = [r for r in rows if r["sending_country"] == flt.origin]
    if flt.country:
        rows = [
            r
            for r in rows
            if r["host_country"] == flt.country or flt.country in r["also_accredited_to"]
        ]
    return sorted(
        rows,
        key=lambda r: (r["sending_country"], corridor_sort_key(r["host_country"]), r["city"]),
    )


def health_rows(store: PictureStore, flt: ViewFilter) -> list[dict[str, Any]]:
    day = (flt.as_of or datetime.now(UTC).date()).isoformat()
    rows = [
        _clean(r)
        for r in store.view("health_view")
        if r["valid_from"] <= day and (r.get("valid_until") is None or day <= r["valid_until"])
    ]
    if flt.origin:
        rows = [r for r in rows if r["country_of_origin"] == flt.origin]
    if flt.country:
        rows = [r for r in rows if r["issuer"] == flt.country]
    return sorted(
        rows,
        key=lambda r: (
            r["country_of_origin"],
            _IMPACT_ORDER.get(r["impact"], 9),
            r["disease"],
            r["issuer"],
        ),
    )


def focal_point_rows(store: PictureStore, flt: ViewFilter) -> list[dict[str, Any]]:
    rows = [_clean(r) for r in store.view("focal_point_view")]
    if flt.country:
        rows = [r for r in rows if r["country"] == flt.country]
    return sorted(rows, key=lambda r: (corridor_sort_key(r["country"]), r["name"]))


# -- terminal tables -------------------------------------------------------------


def _months(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n // 12} y" if n % 12 == 0 and n >= 12 else f"{n} m"


def legislation_cell(entry: dict[str, Any]) -> str:
    """One line of the matrix for an entry: the penalty or status, and the citation."""
    cite = entry["instrument"] + (f", {entry['article']}" if entry.get("article") else "")
    topic = entry["topic"]
    if topic == "PALERMO_PROTOCOL":
        when = entry.get("palermo_status_date")
        return f"{entry['palermo_status']}" + (f" {when}" if when else "")
    parts: list[str] = []
    lo, hi = entry.get("penalty_min_months"), entry.get("penalty_max_months")
    if lo is not None or hi is not None:
        parts.append(f"prison {_months(lo)}–{_months(hi)}")
    fmin, fmax = entry.get("fine_min"), entry.get("fine_max")
    if fmin is not None or fmax is not None:
        span = (
            f"{fmin:,}–{fmax:,}" if fmin is not None and fmax is not None else f"{fmin or fmax:,}"
        )
        parts.append(f"fine {span} {entry.get('fine_currency') or ''}".rstrip())
    return "; ".join([*parts, cite])


def render_legislation(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("[yellow]No legislation entries in the picture.[/]")
        return
    table = Table(
        title="Legislation matrix (IOM mapping): country × topic",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("Country", style="bold")
    for topic in LEGISLATION_TOPICS:
        table.add_column(topic.replace("_", " ").title(), overflow="fold")
    countries = sorted({r["country"] for r in rows}, key=corridor_sort_key)
    for country in countries:
        cells = []
        for topic in LEGISLATION_TOPICS:
            entries = [r for r in rows if r["country"] == country and r["topic"] == topic]
            cells.append("\n".join(legislation_cell(e) for e in entries) or "·")
        table.add_row(country, *cells)
    console.print(table)
    console.print("[dim]· no entry submitted for this topic.[/]")


def render_consulates(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("[yellow]No consular missions in the picture.[/]")
        return
    table = Table(title="Regional consular directory", title_justify="left")
    for col in ("Of", "In", "Type", "City", "Phone", "Email", "Also covers", "Languages"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["sending_country"],
            r["host_country"],
            r["mission_type"].replace("_", " ").lower(),
            r["city"],
            r.get("phone") or "",
            r.get("email") or "",
            " ".join(r.get("also_accredited_to") or []),
            " ".join(r.get("languages") or []),
        )
    console.print(table)


def render_health(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("[yellow]No current health advisories in the picture.[/]")
        return
    table = Table(title="Current health advisories by country of origin", title_justify="left")
    for col in ("Origin", "Disease", "Impact", "Confidence", "Source", "Valid", "Issuer"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["country_of_origin"],
            r["disease"] + (f" ({r['icd10']})" if r.get("icd10") else ""),
            r["impact"].replace("_", " ").lower(),
            r["confidence"].lower(),
            _SOURCES.get(r["source"], r["source"]),
            f"{r['valid_from']} – {r.get('valid_until') or 'open'}",
            r["issuer"],
        )
    console.print(table)
    console.print("[dim]Summaries and recommended measures: --format json or csv.[/]")


def render_focal_points(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("[yellow]No focal points in the picture.[/]")
        return
    table = Table(title="Technical working group focal points", title_justify="left")
    for col in ("Country", "Name", "Role", "Institution", "Email", "Phone", "Languages"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["country"],
            r["name"],
            r["role"],
            r["institution"],
            r["email"],
            r.get("phone") or "",
            " ".join(r.get("languages") or []),
        )
    console.print(table)


@dataclass(frozen=True)
class View:
    name: str
    kind: str
    rows: Callable[[PictureStore, ViewFilter], list[dict[str, Any]]]
    render: Callable[[Console, list[dict[str, Any]]], None]


VIEWS: dict[str, View] = {
    "legislation": View("legislation", "LegislationEntry", legislation_rows, render_legislation),
    "consulates": View("consulates", "ConsularMission", consular_rows, render_consulates),
    "health": View("health", "HealthAdvisory", health_rows, render_health),
    "focal-points": View("focal-points", "FocalPoint", focal_point_rows, render_focal_points),
}


def view_json(name: str, store: PictureStore, flt: ViewFilter) -> dict[str, Any]:
    view = VIEWS[name]
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "view": name,
        "kind": view.kind,
        "rows": view.rows(store, flt),
    }


def rows_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """CSV of rows: ``columns``, or every field seen in first-seen order; lists
    joined with ';'."""
    columns = list(columns or [])
    for r in rows:
        columns.extend(c for c in r if c not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                k: ";".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                for k, v in r.items()
            }
        )
    return buf.getvalue()
