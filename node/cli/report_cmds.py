"""The body of ``corredor report`` and ``corredor purge`` (registered with the
daily-work commands in ``node_cmds``): parse, call the report library, print."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import UTC, date, datetime
from pathlib import Path

import click

from node.cli.common import console, handle_errors, home_of
from node.errors import TransportError
from node.report.audience import Scope, audience_name, purpose_name

REPORT_VIEWS: tuple[str, ...] = (
    "flows",
    "trends",
    "corridors",
    "alerts",
    "regional",
    "legislation",
    "consulates",
    "health",
    "focal-points",
)
REPORT_FORMATS: tuple[str, ...] = ("table", "json", "csv", "sdmx", "sdmx-structure", "html")


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
    ``offline``) and the audience defaults to the member itself."""
    from node.aggregator.picture_sync import picture_path, sync_picture
    from node.report.flows import (
        FlowRow,
        country_total_rows,
        picture_json_for,
        render_flow_tables,
        rows_of,
    )
    from node.report.html import report_html
    from node.report.reference import VIEWS, ViewFilter, rows_csv
    from node.report.regional import admitted_cells, coverage
    from node.report.sdmx import admitted_withdrawn, flows_sdmx_csv, require_released
    from node.report.sdmx_structure import structure_xml
    from node.report.tables import UNIT
    from node.report.views import (
        CSV_COLUMNS,
        STAT_VIEWS,
        admitted_view_rows,
        render_coverage,
        render_view,
        view_csv_rows,
        view_data,
    )
    from node.store.picture import PictureStore

    if fmt == "sdmx-structure":
        # The dataflow's structure is the same for every audience and picture.
        _emit(structure_xml(), output)
        return
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
    with PictureStore(picture_path(home)) as store:
        if fmt == "html":
            _emit(report_html(store, scope, last=last or 12, k=k), output)
            return
        if fmt == "sdmx":
            if view not in ("flows", "regional"):
                raise click.UsageError("--format sdmx is for the flows and regional views")
            cells = admitted_cells(store, scope, view)
            withdrawn = admitted_withdrawn(store, scope, view)
            require_released(cells, withdrawn, scope.audience, scope.purpose_for(view))
            _emit(
                flows_sdmx_csv(cells, scope.audience, totals=view == "regional",
                               withdrawn=withdrawn),
                output,
            )
            return
        if view == "flows":
            if fmt == "json":
                _emit(json.dumps(picture_json_for(store, scope), indent=2) + "\n", output)
            elif fmt == "csv":
                columns = [f.name for f in fields(FlowRow)] + ["unit"]
                flows = rows_of(admitted_cells(store, scope, "flows"))
                _emit(rows_csv([{**asdict(r), "unit": UNIT} for r in flows], columns), output)
            else:
                cells = admitted_cells(store, scope, "flows")
                flows = rows_of(cells)
                render_flow_tables(console, flows, last=last,
                                   totals=country_total_rows(cells, flows),
                                   audience=scope.audience)
                render_coverage(console, coverage(cells))
            return
        if view in STAT_VIEWS:
            data = view_data(view, store, scope, last=last, k=k)
            if fmt == "json":
                _emit(json.dumps(data, indent=2, default=str) + "\n", output)
            elif fmt == "csv":
                _emit(rows_csv(view_csv_rows(view, data), CSV_COLUMNS[view]), output)
            else:
                render_view(console, view, data)
            return
        flt = ViewFilter(
            origin=origin.upper() if origin else None,
            country=country.upper() if country else None,
            as_of=as_of.date() if as_of else None,
        )
        rows = admitted_view_rows(store, view, scope, flt)
        if fmt == "json":
            doc = {
                "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "view": view,
                "kind": VIEWS[view].kind,
                "audience": scope.audience,
                "purpose": scope.purpose_for(view),
                "rows": rows,
            }
            _emit(json.dumps(doc, indent=2, default=str) + "\n", output)
        elif fmt == "csv":
            _emit(rows_csv(rows), output)
        else:
            VIEWS[view].render(console, rows)


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
    from node.aggregator.picture_sync import picture_path
    from node.store.picture import PictureStore

    today: date = as_of.date() if as_of else datetime.now(UTC).date()
    with PictureStore(picture_path(home_of(ctx))) as store:
        removed = store.purge_expired(today)
    total = sum(removed.values())
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(removed.items()))
    click.echo(f"purged {total} events past retain_until" + (f" ({detail})" if detail else ""))
