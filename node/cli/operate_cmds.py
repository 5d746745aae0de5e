"""Commands for running a node in production: doctor, backup, restore, serve. The
set-up steps of a deployed federation (``deploy init-*``) are in ``deploy_cmds``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click
from rich.table import Table

from node.cli import store_cmds
from node.cli.common import (
    bootstrap_option,
    console,
    format_option,
    handle_errors,
    home_of,
    progress,
)
from node.errors import ConfigError
from node.loops import stop_on_signals
from node.operator import backup as backups
from node.operator.doctor import DEFAULT_MAX_LAG, DEFAULT_MAX_OUTBOX_AGE_S, diagnose

_STATUS_STYLE = {"ok": "green", "problem": "red", "skipped": "yellow"}


@click.command()
@bootstrap_option
@format_option("table", "json")
@click.option(
    "--max-outbox-age",
    type=float,
    default=DEFAULT_MAX_OUTBOX_AGE_S,
    show_default=True,
    metavar="SECONDS",
    help="A member's oldest unacknowledged event older than this is a problem.",
)
@click.option(
    "--max-lag",
    type=int,
    default=DEFAULT_MAX_LAG,
    show_default=True,
    metavar="MESSAGES",
    help="The aggregator further behind the shared topic than this is a problem.",
)
@click.pass_context
@handle_errors
def doctor(
    ctx: click.Context, bootstrap: str | None, fmt: str, max_outbox_age: float, max_lag: int
) -> None:
    """Check that this node can run: broker reachable, credentials accepted,
    manifest current and verified, policy above the regional floor. Report the
    outbox depth and age, consumer lag, quarantine and dead-letter counts.

    Exits 1 if any check found a problem, with one line per problem saying what
    to do.

    \b
    Example:
      corredor --home ./pan doctor
      corredor --home ./ts doctor --format json --max-lag 500
    """
    home = home_of(ctx)
    report = diagnose(home, bootstrap=bootstrap, max_outbox_age_s=max_outbox_age, max_lag=max_lag)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        table = Table(title=f"{home.path}: doctor", title_justify="left")
        for col in ("check", "status", "detail"):
            table.add_column(col)
        for c in report.as_dict()["checks"]:
            table.add_row(c["name"], f"[{_STATUS_STYLE[c['status']]}]{c['status']}[/]", c["detail"])
        console.print(table)
        figures = Table(show_header=False, title="figures", title_justify="left")
        for k, v in report.figures.items():
            figures.add_row(k.replace("_", " "), json.dumps(v) if isinstance(v, dict) else str(v))
        console.print(figures)
    if not report.healthy:
        for p in report.problems:
            click.echo(f"problem: {p.name}: {p.detail}", err=True)
        ctx.exit(1)


@click.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
@handle_errors
def backup(ctx: click.Context, dest: Path) -> None:
    """Copy this home to DEST while the node runs: config, keys, manifest, and each
    SQLite store through SQLite's online backup API, integrity-checked.

    DEST holds private keys: keep it as safe as the home. Restore with
    `corredor restore DEST --home NEW`.

    \b
    Example:
      corredor --home ./pan backup /backups/pan-2026-11-27
    """
    result = backups.backup_home(home_of(ctx), dest)
    for name, pages in result.stores.items():
        console.print(f"{name}: {pages} pages, integrity ok")
    console.print(f"backup written to {result.path}")


@click.command()
@click.argument("source", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--recover-revisions",
    "recover",
    is_flag=True,
    help="Then raise the store's revisions above what the federation has seen "
    "(`corredor recover-revisions`): needs the broker.",
)
@bootstrap_option
@store_cmds.audit_option
@click.pass_context
@handle_errors
def restore(
    ctx: click.Context,
    source: Path,
    recover: bool,
    bootstrap: str | None,
    audit_exports: tuple[Path, ...],
) -> None:
    """Check the stores of a backup at SOURCE and copy it to --home, which must
    not be a home yet (stop the node and move the damaged home aside first).

    A member's restored store may be behind what it published after the
    backup: it stages and publishes nothing until its revisions are recovered,
    with --recover-revisions here or `corredor recover-revisions` later.

    \b
    Example:
      corredor --home ./pan restore /backups/pan-2026-11-27 --recover-revisions
    """
    target = ctx.find_root().obj.get("home") if ctx.find_root().obj else None
    if target is None:
        raise ConfigError("give the home to restore into: --home DIR")
    home = backups.restore_home(source, target)
    console.print(f"restored {source} to {home.path}")
    if home.is_aggregator:
        console.print(f"run `corredor --home {home.path} doctor`")
    elif recover:
        store_cmds.recover(home, bootstrap, audit_exports, "table")
    else:
        console.print(
            f"it publishes nothing until `corredor --home {home.path} recover-revisions` "
            "has raised its revisions above what the federation has seen"
        )


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--refresh",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How old the folder's snapshot of the picture may get.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate chain (PEM); with --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The certificate's private key (PEM).",
)
@click.option(
    "--folder-db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CORREDOR_FOLDER_DB",
    help="Users, settings and access log (default: <home>/folder.db).",
)
@click.pass_context
@handle_errors
def serve(
    ctx: click.Context,
    address: str,
    port: int,
    refresh: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    folder_db: Path | None,
) -> None:
    """Serve the online folder: the regional picture for signed-in users, each
    seeing only what their audience is admitted to (docs/folder.md), with a
    JSON API under /api/ and /healthz. Reads a snapshot of the picture; the
    live store is never written and no key is opened. Users: `corredor users`.

    \b
    Example:
      corredor --home ./ts users add ana --audience TS < password.txt
      corredor --home ./ts serve --address 0.0.0.0 --port 8443 \\
        --tls-cert /etc/corredor/folder.crt --tls-key /etc/corredor/folder.key
    """
    from node.operator.serve import make_server

    server = make_server(
        home_of(ctx),
        address,
        port,
        refresh,
        tls_cert=tls_cert,
        tls_key=tls_key,
        folder_db=folder_db,
    )
    server.start()
    scheme = "https" if tls_cert else "http"
    url = f"{scheme}://{address}:{server.port}/"
    progress(f"serving the folder on {url}", stdout=True, url=url)
    try:
        with stop_on_signals(threading.Event()) as stop:
            stop.wait()  # SIGTERM (docker stop) or Ctrl-C
    finally:
        server.stop()
    progress("stopped", stdout=True)


COMMANDS: tuple[click.Command, ...] = (doctor, backup, restore, serve)
