"""The body of ``corredor report`` and ``corredor purge`` (registered with the
daily-work commands in ``node_cmds``): parse, call the report library, print."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click

from node.cli.common import console, handle_errors, home_of
from node.errors import TransportError
from node.report.audience import Scope, audience_name, purpose_name
from node.report.dispatch import (
    ReportOptions,
    ViewFormatMismatch,
    needs_picture,
    render,
)
from node.report.reference import ViewFilter


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(str(output), err=True)


def run_report(
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
    offline: bool = False,
) -> None:
    """What ``corredor report`` does; see its help. On a member's home the
    picture is first brought up to date from the picture topic (unless
    ``offline``) and the audience defaults to the member itself; the view is
    rendered by ``node.report.dispatch.render``."""
    from node.aggregator.picture_sync import picture_path, sync_picture

    picture: Path | None = None
    scope: Scope | None = None
    if needs_picture(fmt):
        home = home_of(ctx)
        if audience is None:
            audience = "TS" if home.is_aggregator else home.country
        scope = Scope(audience_name(audience), purpose_name(purpose))
        if not home.is_aggregator and not offline:
            try:
                stats = sync_picture(home)
            except TransportError as exc:
                raise click.ClickException(
                    f"{exc} (--offline reports the picture this node last read)"
                ) from exc
            click.echo(
                f"picture topic: {stats.applied} new events applied, "
                f"{stats.rejected_total} set aside",
                err=True,
            )
        picture = picture_path(home)
    narrow = ViewFilter(
        origin=origin.upper() if origin else None,
        country=country.upper() if country else None,
        as_of=as_of.date() if as_of else None,
    )
    try:
        text = render(picture, view, fmt, scope, ReportOptions(last, k, narrow), console)
    except ViewFormatMismatch as exc:
        raise click.UsageError(str(exc)) from exc
    if text is not None:
        _emit(text, output)


@click.command()
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Purge what expired before this day (default: today).",
)
@click.pass_context
@handle_errors
def purge(ctx: click.Context, as_of: datetime | None) -> None:
    """Remove from the picture (the aggregator's, or a member's copy) every
    event past its retain_until: flow cells, reference rows and stored bodies.
    The event's id and digest stay, so a replay of it is recognised and not
    applied again.

    \b
    Example:
      corredor --home ./ts purge
    """
    from node.aggregator.picture_sync import purge_picture

    today: date = as_of.date() if as_of else datetime.now(UTC).date()
    removed = purge_picture(home_of(ctx), today)
    total = sum(removed.values())
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(removed.items()))
    click.echo(f"purged {total} events past retain_until" + (f" ({detail})" if detail else ""))
