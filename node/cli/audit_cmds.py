"""`corredor audit verify|export`: the hash-chained log of what was sent or received."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from node.cli.common import (
    bootstrap_option,
    console,
    err_console,
    format_option,
    handle_errors,
    home_of,
)
from node.federation.control import federation_anchors, publish_audit_head
from node.store import audit_check


@click.group("audit")
def audit_group() -> None:
    """Check and export the node's hash-chained audit log.

    A member logs every event the broker acknowledged; the aggregator logs
    every message it applied, found stale or duplicate, or quarantined.

    \b
    Example:
      corredor --home ./pan audit verify
      corredor --home ./ts audit export -o audit.csv --format csv
    """


@audit_group.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="SEQ:HASH",
    help="An entry hash recorded earlier (e.g. by an auditor); it must still be in the log.",
)
@click.option(
    "--accept-behind",
    is_flag=True,
    help="Accept entries after the head file's (left by a crash between a commit and "
    "the head-file write) instead of failing on them.",
)
@click.option(
    "--against-federation",
    is_flag=True,
    help="Also check the heads of this log that other nodes signed on the control topic.",
)
@bootstrap_option
@format_option("table", "json")
@click.pass_context
@handle_errors
def audit_verify(
    ctx: click.Context,
    anchors: tuple[str, ...],
    accept_behind: bool,
    against_federation: bool,
    bootstrap: str | None,
    fmt: str,
) -> None:
    """Recompute the chain; exit 1 naming the first edited, missing, reordered or
    truncated entry, or entries appended after the head file's (which anyone
    able to write the database alone could forge) unless --accept-behind.
    Prints the head (seq and hash) to record as an anchor.

    \b
    Example:
      corredor --home ./ts audit verify
      corredor --home ./ts audit verify --anchor 1200:3f5a...e9
      corredor --home ./pan audit verify --accept-behind
      corredor --home ./pan audit verify --against-federation
    """
    home = home_of(ctx)
    if against_federation:
        witnessed = federation_anchors(home, bootstrap=bootstrap)
        if not witnessed:
            err_console.print("note: no other party has witnessed this log's head yet")
        for witness, anchor in witnessed:
            err_console.print(f"note: {witness} witnessed head {anchor}", soft_wrap=True)
        anchors = (*anchors, *(a for _, a in witnessed))
    report = audit_check.verify(home.store_path, anchors, accept_behind=accept_behind)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        console.print(
            f"audit log OK: {report.entries} entries; head {report.head_seq}:{report.head_hash}",
            soft_wrap=True,
        )
    for note in report.notes:
        err_console.print(f"note: {note}", soft_wrap=True)
    if not report.ok:
        err_console.print(
            f"audit log BROKEN at entry {report.first_bad_seq}: {report.problem}", soft_wrap=True
        )
        raise SystemExit(1)


@audit_group.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: stdout).",
)
@format_option("jsonl", "csv")
@click.pass_context
@handle_errors
def audit_export(ctx: click.Context, output: Path | None, fmt: str) -> None:
    """Write every audit entry, in chain order, for an auditor: seq, at, entry,
    event_id, producer, subject, revision, policy_version, digest, reason,
    prev_hash, entry_hash. No raw record values are in the log.

    \b
    Example:
      corredor --home ./pan audit export --format csv -o pan-audit.csv
    """
    home = home_of(ctx)
    if output is None:
        audit_check.export(home.store_path, sys.stdout, fmt)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        count = audit_check.export(home.store_path, handle, fmt)
    err_console.print(f"{count} entries written to {output}")


@audit_group.command("publish-head")
@bootstrap_option
@click.pass_context
@handle_errors
def audit_publish_head(ctx: click.Context, bootstrap: str | None) -> None:
    """Sign this log's head, with the heads this node has seen of the others, and
    publish it on the control topic, so a rewrite of this log is caught against
    the copies other nodes keep. Run it at intervals (e.g. from cron).

    \b
    Example:
      corredor --home ./pan audit publish-head
    """
    statement = publish_audit_head(home_of(ctx), bootstrap=bootstrap)
    head = f"{statement.audit.seq}:{statement.audit.entry_hash}" if statement.audit else "empty"
    witnessed = ", ".join(sorted(statement.witnessed)) or "none"
    click.echo(f"published {statement.party} audit head {head}; witnessed: {witnessed}")


COMMANDS: tuple[click.Command, ...] = (audit_group,)
