"""`corredor recover-revisions`: carry on with a store that lost its history."""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.cli.common import bootstrap_option, console, format_option, handle_errors, home_of
from node.config import Home
from node.member import revisions

audit_option = click.option(
    "--audit",
    "audit_exports",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="An `audit export` JSON-lines file (an auditor's copy, an older backup's) "
    "whose sent entries also count. Repeatable.",
)


def print_recovery(result: revisions.RecoveryResult, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    console.print(
        f"{result.subjects} subjects known to the federation, highest revision "
        f"{result.highest_revision}; {result.raised} raised in the ledger, "
        f"{result.superseded_outbox} stale outbox rows dropped",
        soft_wrap=True,
    )
    for source, count in result.sources.items():
        console.print(f"  {source}: {count} subjects", soft_wrap=True)
    if result.head_kept_as:
        console.print(f"the lost audit head is kept as {result.head_kept_as}", soft_wrap=True)
    if result.recovered_from is not None or result.head_kept_as:
        console.print(
            f"store {result.store_id} now replaces {result.recovered_from or 'the lost store'}",
            soft_wrap=True,
        )


def recover(
    home: Home,
    bootstrap: str | None,
    audit_exports: tuple[Path, ...],
    fmt: str,
    *,
    offline: bool = False,
) -> None:
    result = revisions.recover_revisions(
        home, bootstrap=bootstrap, audit_exports=audit_exports, picture_topic=not offline
    )
    print_recovery(result, fmt)


@click.command("recover-revisions")
@bootstrap_option
@audit_option
@click.option(
    "--offline",
    is_flag=True,
    help="Do not read the picture topic: only the store's audit log and --audit files.",
)
@format_option("table", "json")
@click.pass_context
@handle_errors
def recover_revisions(
    ctx: click.Context,
    bootstrap: str | None,
    audit_exports: tuple[Path, ...],
    offline: bool,
    fmt: str,
) -> None:
    """Raise this member store's revisions above every revision of this country
    on the picture topic (and in the audit logs given), so that the next
    publish continues above what the aggregator has seen; then accept the
    store as this home's. For a store that was emptied, replaced or restored
    from a backup: the node refuses to stage or publish on one until this runs.

    \b
    Example:
      corredor --home ./pan recover-revisions
      corredor --home ./pan recover-revisions --audit /backups/pan-audit.jsonl
      corredor --home ./pan recover-revisions --offline --audit pan-audit.jsonl
    """
    recover(home_of(ctx), bootstrap, audit_exports, fmt, offline=offline)


COMMANDS: tuple[click.Command, ...] = (recover_revisions,)
