"""Commands of a node's daily work: init, ingest, publish, aggregate, report, purge,
status. Publish and aggregate are in ``exchange_cmds``, report and purge in
``report_cmds``; all are listed here, in the order the group registers them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from node.aggregator.setup import init_aggregator
from node.cli.common import (
    console,
    err_console,
    format_option,
    handle_errors,
    home_of,
)
from node.cli.exchange_cmds import aggregate, publish
from node.cli.report_cmds import purge, run_report
from node.config import DEFAULT_TOPIC
from node.crypto.keys import read_key_text
from node.member import intake
from node.member.ingest import unknown_places_note
from node.member.ingest_reference import ENCOUNTERS, FILE_KINDS
from node.member.ingest_reference import template_header as reference_template
from node.member.member_home import init_member
from node.operator.status import home_status
from node.report.dispatch import REPORT_FORMATS, REPORT_VIEWS

# -- init, keys, members ------------------------------------------------------------


@click.command()
@click.option("--country", metavar="ISO3", help="The member country (ISO 3166-1 alpha-3).")
@click.option("--aggregator", is_flag=True, help="Create the Secretariat's aggregator home.")
@click.option(
    "--home", "home_opt", type=click.Path(file_okay=False, path_type=Path), help="Home to create."
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Policy file (default: policies/<ISO3>.yaml).",
)
@click.option("--bootstrap", default="127.0.0.1:9092", show_default=True, metavar="HOST:PORT")
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True, help="The shared topic.")
@click.option(
    "--secretariat-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The Secretariat's public key (PEM) to pin; manifests it did not sign are refused.",
)
@click.pass_context
@handle_errors
def init(
    ctx: click.Context,
    country: str | None,
    aggregator: bool,
    home_opt: Path | None,
    policy: Path | None,
    bootstrap: str,
    topic: str,
    secretariat_key: Path | None,
) -> None:
    """Create a node's home: config, SQLite store, Ed25519 signing and X25519
    encryption keys (encrypted at rest when CORREDOR_KEY_PASSPHRASE is set).

    \b
    Example:
      corredor init --country PAN --home ./pan --secretariat-key ts.pub
      corredor init --aggregator --home ./ts
    """
    path = home_opt or (ctx.find_root().obj or {}).get("home")
    if path is None:
        raise click.UsageError("give --home DIR")
    if aggregator == bool(country):
        raise click.UsageError("give exactly one of --country ISO3 or --aggregator")
    if aggregator:
        home = init_aggregator(path, bootstrap=bootstrap, topic=topic)
        console.print(f"Created the aggregator home at [bold]{home.path}[/]")
        console.print(f"Secretariat public key (members pin it): {home.secretariat_pub_path}")
        return
    assert country is not None
    home = init_member(
        path,
        country,
        policy=policy,
        bootstrap=bootstrap,
        topic=topic,
        secretariat_pem=read_key_text(secretariat_key) if secretariat_key else None,
    )
    console.print(f"Created {home.country}'s node home at [bold]{home.path}[/]")
    console.print(f"Policy: {home.policy_path}")
    console.print(f"Public signing key: {home.public_key_path}")


# -- member node: ingest --------------------------------------------------------------


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--template", is_flag=True, help="Print the CSV header of a file of --kind.")
@click.option(
    "--kind",
    type=click.Choice(FILE_KINDS),
    default=None,
    help="What FILE holds; detected from its header (or first JSON object) when not given.",
)
@format_option("table", "json")
@click.pass_context
@handle_errors
def ingest(
    ctx: click.Context, file: Path | None, template: bool, kind: str | None, fmt: str
) -> None:
    """Validate and store raw encounter records (CSV), or reference data: legislation,
    consular missions, health advisories, focal points or intelligence reports
    (CSV, JSON array or JSON Lines).

    Good rows are stored; each bad row is reported with its file, line, field
    and reason, and kept in a rejects file in the home. Ingesting the same file
    twice stores nothing twice; a changed reference record is a correction that
    the next publish sends as a new revision. Records are stored even when the
    policy is broken: only staging their events waits for a valid policy.

    \b
    Example:
      corredor ingest --template > encounters.csv
      corredor --home ./pan ingest encounters.csv
      corredor ingest --template --kind legislation > legislation.csv
      corredor --home ./pan ingest health.json --kind health
    """
    if template:
        click.echo(reference_template(kind or ENCOUNTERS))
        return
    if file is None:
        raise click.UsageError("give FILE, or --template")
    home = home_of(ctx)
    with console.status(f"Ingesting {file}…"):
        report = intake.ingest(home, file, kind=kind)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(
            f"{file}: {report.rows} rows, [green]{report.stored} stored[/], "
            f"{report.duplicates} already stored, "
            f"[{'red' if report.rejected else 'green'}]{report.rejected_rows} rejected[/]"
            + (f", {report.blank} blank" if report.blank else "")
        )
        for rej in report.rejected[:20]:
            err_console.print(f"  [red]{escape(rej.located())}[/]")
        if len(report.rejected) > 20:
            err_console.print(f"  … {len(report.rejected) - 20} more")
        if report.rejects_file:
            console.print(f"Rejected rows kept in {report.rejects_file}")
        if report.unknown_places:
            err_console.print(f"[yellow]{escape(unknown_places_note(report))}[/]")
    if report.staging_waits:
        err_console.print(f"[yellow]Records stored; {escape(report.staging_waits)}[/]")
    if report.rejected and report.stored == 0 and report.duplicates == 0:
        ctx.exit(1)


@click.command()
@click.argument("view", required=False, default="flows", type=click.Choice(REPORT_VIEWS))
@format_option(*REPORT_FORMATS)
@click.option("--last", type=int, default=0, help="Only the last N periods (html: default 12).")
@click.option("--origin", metavar="ISO3", help="Consulates of / advisories about this country.")
@click.option("--country", metavar="ISO3", help="Only what this member submitted.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Health advisories current on this day (default: today).",
)
@click.option(
    "--audience",
    help="Whom the export is for: TS, IOM, UNHCR, PAHO, ICRC, UNODC, public, or "
    "ISO3 (default: TS; on a member's node, the member).",
)
@click.option("--purpose", help="The export's purpose (default: the view's, e.g. statistics).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(2),
    default=10,
    show_default=True,
    help="corridors: people a multi-country route needs before it is shown.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Member: use the picture last read, without reading the picture topic.",
)
@click.pass_context
@handle_errors
def report(
    ctx: click.Context,
    view: str,
    fmt: str,
    last: int,
    origin: str | None,
    country: str | None,
    as_of: datetime | None,
    audience: str | None,
    purpose: str | None,
    output: Path | None,
    k: int,
    offline: bool,
) -> None:
    """Print the regional picture for one audience. VIEW is flows (the default:
    nationality × reporting country, by ISO week), trends (totals, change, top
    nationalities, origins), corridors (route legs and shared routes), alerts,
    regional (totals across countries), legislation (the IOM matrix),
    consulates, health (current advisories) or focal-points. Only events whose
    audiences and purposes admit --audience, not expired and not embargoed,
    are included. On a member's node it first reads the picture the
    Secretariat published back, verifying every producer's signature.

    \b
    Example:
      corredor --home ./ts report --last 4
      corredor --home ./ts report --format json > picture.json
      corredor --home ./ts report alerts
      corredor --home ./ts report regional --audience public --format sdmx -o flows.csv
      corredor --home ./ts report --format html --audience IOM -o report.html
      corredor --home ./ts report consulates --origin IND --format csv
    """
    run_report(ctx, view, fmt, last, origin, country, as_of, audience, purpose, output, k, offline)


@click.command()
@format_option("table", "json")
@click.pass_context
@handle_errors
def status(ctx: click.Context, fmt: str) -> None:
    """Show the node's state: stored records and outbox, or the aggregator's
    applied events and what it set aside, by reason.

    \b
    Example:
      corredor --home ./ts status
    """
    home = home_of(ctx)
    data = home_status(home)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    table = Table(title=f"{home.path}", title_justify="left", show_header=False)
    for k, v in data.items():
        if isinstance(v, dict | list):
            continue
        table.add_row(k.replace("_", " "), str(v))
    console.print(table)
    revocations = data.get("revocations")
    if isinstance(revocations, list) and revocations:
        columns = ("key_id", "producer", "compromised_at", "events", "restored", "removed")
        vt = Table(title="Revocations carried out in the picture", title_justify="left")
        for col in columns:
            vt.add_column(col.replace("_", " "))
        for r in revocations:
            # No compromise time: nothing the key ever signed is trusted.
            vt.add_row(*(str(r[c]) if r[c] is not None else "ever" for c in columns))
        console.print(vt)
    coverage = data.get("coverage")
    if isinstance(coverage, list) and coverage:
        from node.report.views import render_coverage

        render_coverage(console, coverage)
    rejected = data.get("rejected_messages")
    if isinstance(rejected, list) and rejected:
        rt = Table(title="Set aside (never applied)", title_justify="left")
        for col in ("reason", "producer", "event_id", "partition", "offset", "detail"):
            rt.add_column(col)
        for r in rejected:
            rt.add_row(
                *(
                    str(r.get(c) or "")
                    for c in ("reason", "producer", "event_id", "partition", "offset", "detail")
                )
            )
        console.print(rt)


COMMANDS: tuple[click.Command, ...] = (
    init,
    ingest,
    publish,
    aggregate,
    report,
    purge,
    status,
)
