"""`corredor withdraw|correct|history`: revisions of a country's own events."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from node.cli.common import bootstrap_option, console, format_option, handle_errors, home_of
from node.config import Home
from node.member import corrections
from node.member.corrections import Change
from node.member.publish import publish
from node.model.reference import BY_KIND


def _publish_change(home: Home, change: Change, bootstrap: str | None, fmt: str) -> None:
    result = publish(home, bootstrap=bootstrap)
    summary = {
        "subject": change.subject,
        "kind": change.kind,
        "action": change.action,
        "sent": result.drain.sent,
        "acknowledged": result.drain.acknowledged,
        "outbox_pending": result.outbox.pending,
    }
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    verb = "Withdrew" if change.action == "withdraw" else "Corrected"
    console.print(
        f"{verb} [bold]{change.subject}[/]; published: {result.drain.acknowledged} "
        f"event(s) acknowledged, {result.outbox.pending} pending"
    )


@click.command()
@click.argument("target", metavar="SUBJECT_OR_EVENT_ID")
@click.option("--reason", help="Why; kept in the node's history.")
@click.option("--no-publish", is_flag=True, help="Only record it; the next `publish` sends it.")
@bootstrap_option
@format_option("table", "json")
@click.pass_context
@handle_errors
def withdraw(
    ctx: click.Context,
    target: str,
    reason: str | None,
    no_publish: bool,
    bootstrap: str | None,
    fmt: str,
) -> None:
    """Withdraw one of this country's events: the next revision of its subject
    carries no body, and the regional picture drops it. A withdrawn flow cell
    is held back from every later publication.

    \b
    Example:
      corredor --home ./pan withdraw 'HealthAdvisory|PAN|PAN-HA-2024-003' --reason superseded
      corredor --home ./pan withdraw 6f1c0a0e-… --no-publish
    """
    home = home_of(ctx)
    change = corrections.withdraw(home, target, reason)
    if no_publish:
        console.print(f"Recorded withdrawal of [bold]{change.subject}[/]; run publish to send it")
        return
    _publish_change(home, change, bootstrap, fmt)


def _parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r}: expected FIELD=VALUE", param_hint="--set")
        out[name.strip()] = value
    return out


@click.command()
@click.argument("target", metavar="SUBJECT_OR_EVENT_ID")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="FIELD=VALUE",
    required=True,
    help="A corrected field, as in a CSV cell (lists ';'-separated). Repeat for more.",
)
@click.option("--reason", help="Why; kept in the node's history.")
@click.option("--no-publish", is_flag=True, help="Only record it; the next `publish` sends it.")
@bootstrap_option
@format_option("table", "json")
@click.pass_context
@handle_errors
def correct(
    ctx: click.Context,
    target: str,
    sets: tuple[str, ...],
    reason: str | None,
    no_publish: bool,
    bootstrap: str | None,
    fmt: str,
) -> None:
    """Correct one of this country's reference records: the corrected record is
    validated like an ingested one and published as the subject's next revision,
    which replaces the earlier one in the regional picture.

    \b
    Example:
      corredor --home ./pan correct 'ConsularMission|PAN|PAN-CM-IND-01' \\
          --set phone='+507 200-0101' --reason 'new switchboard'
    """
    home = home_of(ctx)
    change = corrections.correct(home, target, _parse_sets(sets), reason)
    if no_publish:
        console.print(f"Recorded correction of [bold]{change.subject}[/]; run publish to send it")
        return
    _publish_change(home, change, bootstrap, fmt)


def _changes(previous: Any, body: Any) -> str:
    """What a revision changed compared with the one before it."""
    if body is None:
        return "withdrawn"
    if previous is None:
        return "first publication"
    changed = [
        f"{k}: {previous.get(k)!r} → {body.get(k)!r}"
        for k in sorted(set(previous) | set(body))
        if previous.get(k) != body.get(k)
    ]
    return "\n".join(changed) or "no field changed"


@click.command()
@click.argument("target", metavar="SUBJECT_OR_EVENT_ID")
@format_option("table", "json")
@click.pass_context
@handle_errors
def history(ctx: click.Context, target: str, fmt: str) -> None:
    """Show every revision of a subject (or of the subject of an event id): at
    the aggregator what was received and which revision is current; at a member
    what was sent, acknowledged, and why it was withdrawn or corrected.

    \b
    Example:
      corredor --home ./ts history 'LegislationEntry|PAN|PAN-LEG-001'
      corredor --home ./pan history 6f1c0a0e-… --format json
    """
    home = home_of(ctx)
    data = corrections.history(home, target)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    table = Table(title=f"History of {data['subject']}", title_justify="left")
    if home.is_aggregator:
        for col in (
            "rev",
            "action",
            "produced at",
            "appended at",
            "schema",
            "applied",
            "current",
            "changes",
        ):
            table.add_column(col, overflow="fold")
        previous = None
        for r in data["revisions"]:
            table.add_row(
                str(r["revision"]),
                r["action"],
                r["produced_at"],
                r.get("appended_at") or "",
                f"v{r['schema_version']}" if r["schema_version"] else "",
                "[red]revoked key[/]"
                if r.get("revoked")
                else "yes"
                if r["applied"]
                else "superseded",
                "◀" if r["current"] else "",
                _changes(previous, r["body"]),
            )
            previous = r["body"]
        console.print(table)
        return
    for col in ("rev", "action", "staged at", "acknowledged at", "offset", "changes"):
        table.add_column(col, overflow="fold")
    previous = None
    for r in data["revisions"]:
        table.add_row(
            str(r["revision"]),
            r["action"],
            r["created_at"] or "",
            r["acked_at"] or "pending",
            "" if r["offset"] is None else f"{r['partition']}:{r['offset']}",
            _changes(previous, r["body"]),
        )
        previous = r["body"]
    console.print(table)
    for note in data["notes"]:
        console.print(f"{note['at']}  {note['action']}: {note['reason'] or '(no reason given)'}")


@click.group()
def reference() -> None:
    """The reference records this node holds (legislation, consular missions,
    health advisories, focal points, intelligence).

    \b
    Example:
      corredor --home ./pan reference list --kind ConsularMission
    """


@reference.command("list")
@click.option(
    "--kind",
    type=click.Choice(sorted(BY_KIND)),
    help="Only this event kind.",
)
@format_option("table", "json")
@click.pass_context
@handle_errors
def reference_list(ctx: click.Context, kind: str | None, fmt: str) -> None:
    """List the reference records this node holds, their subjects (what
    `withdraw`, `correct` and `history` take) and whether the topic has them.

    \b
    Example:
      corredor --home ./pan reference list
      corredor --home ./pan reference list --kind HealthAdvisory --format json
    """
    rows = corrections.list_references(home_of(ctx), kind)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Reference records", title_justify="left")
    for col in ("subject", "state", "published revision"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["subject"], r["state"], str(r["published_revision"] or ""))
    console.print(table)


COMMANDS: tuple[click.Command, ...] = (withdraw, correct, history, reference)
