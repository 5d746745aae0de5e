"""The folder's pages of record: reference views, the countries and each
country's folder of releases, a subject's history, what was received,
intelligence, downloads and the access log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from node.folder.layout import e, message, table
from node.model.codes import COUNTRY_NAMES, corridor_sort_key
from node.report.reference import LEGISLATION_TOPICS, legislation_cell


def _ts(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def legislation_page(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return message("No legislation entries for this audience.")
    countries = sorted({r["country"] for r in rows}, key=corridor_sort_key)
    out = []
    for c in countries:
        line = [COUNTRY_NAMES.get(c, c)]
        for t in LEGISLATION_TOPICS:
            entries = [r for r in rows if r["country"] == c and r["topic"] == t]
            line.append("; ".join(legislation_cell(x) for x in entries) or "·")
        out.append(line)
    return table(
        ["Country", *(t.replace("_", " ").title() for t in LEGISLATION_TOPICS)],
        out,
        "matrix",
        "legislation",
    )


_REF_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "consulates": [
        ("sending_country", "Of"),
        ("host_country", "In"),
        ("mission_type", "Type"),
        ("city", "City"),
        ("phone", "Phone"),
        ("email", "Email"),
    ],
    "health": [
        ("country_of_origin", "Origin"),
        ("disease", "Disease"),
        ("impact", "Impact"),
        ("confidence", "Confidence"),
        ("issuer", "Issuer"),
        ("valid_from", "From"),
        ("valid_until", "Until"),
    ],
    "focal-points": [
        ("country", "Country"),
        ("name", "Name"),
        ("role", "Role"),
        ("institution", "Institution"),
        ("email", "Email"),
    ],
}


def reference_page(kind: str, rows: list[dict[str, Any]]) -> str:
    if kind == "legislation":
        return legislation_page(rows)
    cols = _REF_COLUMNS[kind]
    if not rows:
        return message("Nothing in this view for this audience.")
    return table(
        [label for _, label in cols],
        [[r.get(k) or "" for k, _ in cols] for r in rows],
        "text",
        kind,
    )


def countries_page(countries: list[str]) -> str:
    items = "".join(
        f"<li><a href='/countries/{e(c)}'>{e(COUNTRY_NAMES.get(c, c))} ({e(c)})</a></li>"
        for c in countries
    )
    return f"<ul id='countries'>{items}</ul>"


def country_page(doc: dict[str, Any], own: bool) -> str:
    c = doc["country"]
    kinds = [[k, n] for k, n in doc["subjects_by_kind"].items()]
    rows = [
        [
            r["kind"],
            r["subject"],
            r["revision"],
            r["revisions"],
            r["action"],
            r["produced_at"],
            "yes" if r["current"] else "no",
        ]
        for r in doc["releases"][:500]
    ]
    links = "".join(
        f"<li><a href='/history?subject={e(r['subject'])}'>{e(r['subject'])}</a></li>"
        for r in doc["releases"][:20]
    )
    own_note = (
        (
            f"<p><a href='/received/{e(c)}'>What the Secretariat received from "
            f"{e(c)}, and what it set aside</a></p>"
        )
        if own
        else ""
    )
    return (
        f"<p>What {e(COUNTRY_NAMES.get(c, c))} released"
        + (" (all of your own releases)" if own else ", as far as it was released to you")
        + ": the latest revision of each subject and how many revisions it had.</p>"
        + own_note
        + (
            table(["Kind", "Subjects"], kinds, "", "kinds")
            if kinds
            else message("Nothing released to this audience.")
        )
        + (
            table(
                [
                    "Kind",
                    "Subject",
                    "Latest revision",
                    "Revisions",
                    "Action",
                    "Produced",
                    "Current",
                ],
                rows,
                "text",
                "releases",
            )
            if rows
            else ""
        )
        + (f"<h2>History of the latest subjects</h2><ul>{links}</ul>" if links else "")
    )


def history_page(subject: str, revisions: list[dict[str, Any]]) -> str:
    if not revisions:
        return message("No revision of this subject was released to this audience.")
    rows = [
        [
            r["revision"],
            r["action"],
            r["produced_at"],
            r["producer"],
            "yes" if r["applied"] else "no",
            "yes" if r["current"] else "no",
            ""
            if r["body"] is None
            else ", ".join(f"{k}={v}" for k, v in sorted(r["body"].items())),
        ]
        for r in revisions
    ]
    return table(
        ["Revision", "Action", "Produced", "Producer", "Applied", "Current", "Content"],
        rows,
        "text",
        "history",
    )


def received_page(doc: dict[str, Any]) -> str:
    events = [
        [
            r["kind"],
            r["subject"],
            r["revision"],
            "applied" if r["applied"] else "superseded",
            r["policy_id"] + " " + r["policy_version"],
            _ts(r["received_at"]),
        ]
        for r in doc["events"]
    ]
    aside = [
        [r["reason"], r["detail"], r["event_id"] or "", _ts(r["received_at"])]
        for r in doc["set_aside"]
    ]
    return (
        f"<p>{doc['received']:,} events received from {e(doc['country'])}, "
        f"{doc['applied']:,} applied.</p>"
        "<h2>Set aside (quarantined), with the reason</h2>"
        + (
            table(["Reason", "Detail", "Event", "Received"], aside, "text", "set-aside")
            if aside
            else "<p id='set-aside'>Nothing set aside.</p>"
        )
        + "<h2>Received (latest 500)</h2>"
        + table(
            ["Kind", "Subject", "Revision", "State", "Policy", "Received"],
            events,
            "text",
            "received",
        )
    )


def intelligence_page(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return message("No intelligence report addressed to you.", "note")
    return message(
        "Metadata only: the content is sealed to its recipients end to end and is "
        "read with `corredor inbox` at the recipient's node."
    ) + table(
        ["Producer", "Subject", "Revision", "Recipients", "Received", "Relayed"],
        [
            [
                r["producer"],
                r["subject"],
                r["revision"],
                " ".join(r["recipients"]) or f"not named ({r['sealed_entries']} sealed entries)",
                r["received_at"],
                "yes" if r["relayed"] else "not yet",
            ]
            for r in rows
        ],
        "text",
        "intelligence",
    )


def downloads_page(audience: str) -> str:
    items = [
        ("flows.csv", "Flows, CSV (report --format csv)"),
        ("flows.json", "Flows, JSON (report --format json)"),
        ("flows.sdmx.csv", "Flows, SDMX-CSV 2.0"),
        ("regional.sdmx.csv", "Regional totals, SDMX-CSV 2.0 (with _T totals)"),
        (
            "sdmx-structure.json",
            "The SDMX dataflow's structure (dimensions, measure, attributes, codes)",
        ),
        (
            "sdmx-structure.xml",
            "The SDMX-ML 3.0 structure message: dataflow, DSD and code lists (1.0.0)",
        ),
        ("report.html", "The HTML report (self-contained file)"),
    ]
    lis = "".join(
        f"<li><a href='/download/{e(n)}' download>{e(n)}</a>: {e(d)}</li>" for n, d in items
    )
    return f"<p>Each file is made for <b>{e(audience)}</b> only.</p><ul id='downloads'>{lis}</ul>"


def access_log_page(rows: list[dict[str, Any]]) -> str:
    return table(
        ["When", "User", "Audience", "Action", "What", "Status", "Client"],
        [
            [
                _ts(r["at"]),
                r["user"] or "(public)",
                r["audience"] or "",
                r["action"],
                r["target"],
                r["status"],
                r["client"],
            ]
            for r in rows
        ],
        "text",
        "access-log",
    )
