"""`corredor schema check|list`: schema governance from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from node.cli.common import console, err_console, format_option, handle_errors
from node.codec.compat import check_directory, load_modes
from node.codec.registry import SchemaRegistry
from node.config import schemas_dir

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Schema directory (default: the package's schemas/).",
)


@click.group()
def schema() -> None:
    """Govern the Avro schemas every event is written with.

    \b
    Example:
      corredor schema check
      corredor schema list --format json
    """


@schema.command("check")
@_DIR_OPTION
@format_option("table", "json")
@click.pass_context
@handle_errors
def schema_check(ctx: click.Context, directory: Path | None, fmt: str) -> None:
    """Check every schema against all its earlier versions in its compatibility
    mode (schemas/compatibility.yaml: BACKWARD, FORWARD or FULL, transitive).

    Exits 1 and names the schema, the versions and the reason when a version
    breaks its mode.

    \b
    Example:
      corredor schema check
      corredor schema check --dir ./schemas --format json
    """
    checks = check_directory(directory or schemas_dir())
    failed = [c for c in checks if not c.ok]
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "schemas": [
                        {
                            "name": c.name,
                            "mode": c.mode,
                            "versions": list(c.versions),
                            "ok": c.ok,
                            "problems": [i.describe() for i in c.incompatibilities],
                        }
                        for c in checks
                    ],
                },
                indent=2,
            )
        )
    else:
        table = Table(title="Schema compatibility (transitive)", title_justify="left")
        for col in ("schema", "mode", "versions", "result"):
            table.add_column(col)
        for c in checks:
            table.add_row(
                c.name,
                c.mode,
                ", ".join(f"v{v}" for v in c.versions),
                "[green]ok[/]" if c.ok else "[red]INCOMPATIBLE[/]",
            )
        console.print(table)
        for c in failed:
            for inc in c.incompatibilities:
                err_console.print(f"[red]{inc.describe()}[/]")
    if failed:
        ctx.exit(1)


@schema.command("list")
@_DIR_OPTION
@format_option("table", "json")
@handle_errors
def schema_list(directory: Path | None, fmt: str) -> None:
    """List every schema version with its CRC-64-AVRO fingerprint, the bytes
    after C3 01 in a single-object-encoded message.

    \b
    Example:
      corredor schema list
    """
    where = directory or schemas_dir()
    registry = SchemaRegistry.from_directory(where)
    modes = load_modes(where)
    rows = [
        {
            "name": v.name,
            "version": v.version,
            "fingerprint": v.fingerprint.hex(),
            "mode": modes.get(v.name),
            "file": v.path.name,
        }
        for name in registry.names()
        for v in registry.history(name)
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Schemas in {where}", title_justify="left")
    for col in ("name", "version", "fingerprint", "mode", "file"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[c]) for c in ("name", "version", "fingerprint", "mode", "file")))
    console.print(table)


COMMANDS: tuple[click.Command, ...] = (schema,)
