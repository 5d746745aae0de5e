"""``corredor users``: the online folder's accounts (docs/folder.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from node.cli.common import console, format_option, handle_errors, home_of
from node.errors import ConfigError

if TYPE_CHECKING:
    from node.folder.accounts import FolderDB


def _db(ctx: click.Context) -> FolderDB:
    from node.folder.accounts import FolderDB
    from node.operator.serve import folder_db_path

    obj = ctx.find_object(dict) or {}
    given: Path | None = obj.get("folder_db")
    home = home_of(ctx)
    if not home.is_aggregator:
        raise ConfigError(f"{home.path} is a member node; the folder's users are the Secretariat's")
    return FolderDB(folder_db_path(home.path, given))


def _password(confirm: bool = True) -> str:
    """The password from stdin: prompted twice on a terminal, else its first line."""
    if sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
        return value
    line = sys.stdin.readline()
    value = line.rstrip("\r\n")
    if not value:
        raise ConfigError("no password on stdin (give it as the first line)")
    return value


@click.group("users")
@click.option(
    "--folder-db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CORREDOR_FOLDER_DB",
    help="The folder's users file (default: <home>/folder.db).",
)
@click.pass_context
def users_group(ctx: click.Context, folder_db: Path | None) -> None:
    """Accounts of the online folder (`corredor serve`), at the Secretariat.
    Passwords are read from stdin and stored as Argon2id hashes.

    \b
    Example:
      corredor --home ./ts users add ana --audience TS < ana.pw
      corredor --home ./ts users add pan-stats --audience PAN < pan.pw
      corredor --home ./ts users list
      corredor --home ./ts users disable pan-stats
      corredor --home ./ts users public --enable
    """
    obj = ctx.ensure_object(dict)
    obj["folder_db"] = folder_db


@users_group.command("add")
@click.argument("name")
@click.option(
    "--audience",
    required=True,
    help="TS, a member's ISO3, IOM, UNHCR, PAHO, ICRC, UNODC or public.",
)
@click.pass_context
@handle_errors
def users_add(ctx: click.Context, name: str, audience: str) -> None:
    """Add user NAME who sees the folder as AUDIENCE; the password from stdin
    (at least 12 characters).

    \b
    Example:
      corredor --home ./ts users add pan-stats --audience PAN < pan.pw
    """
    with _db(ctx) as db:
        user = db.add_user(name, audience, _password())
    console.print(f"added {user.name} ({user.audience})")


@users_group.command("list")
@format_option("table", "json")
@click.pass_context
@handle_errors
def users_list(ctx: click.Context, fmt: str) -> None:
    """List the folder's users: name, audience, disabled, created, changed.

    \b
    Example:
      corredor --home ./ts users list --format json
    """
    with _db(ctx) as db:
        found = db.users()
        public = db.public_enabled
    if fmt == "json":
        click.echo(
            json.dumps({"public_enabled": public, "users": [u.as_dict() for u in found]}, indent=2)
        )
        return
    table = Table(title="Folder users", title_justify="left")
    for col in ("name", "audience", "state", "created", "changed"):
        table.add_column(col)
    for u in found:
        table.add_row(
            u.name,
            u.audience,
            "disabled" if u.disabled else "active",
            datetime.fromtimestamp(u.created_at, UTC).strftime("%Y-%m-%d %H:%M"),
            datetime.fromtimestamp(u.changed_at, UTC).strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    console.print(f"anonymous visitors: {'public audience' if public else 'refused'}")


@users_group.command("disable")
@click.argument("name")
@click.pass_context
@handle_errors
def users_disable(ctx: click.Context, name: str) -> None:
    """Disable user NAME: no sign-in, and every open session ends.

    \b
    Example:
      corredor --home ./ts users disable pan-stats
    """
    with _db(ctx) as db:
        db.disable(name)
    console.print(f"disabled {name}")


@users_group.command("enable")
@click.argument("name")
@click.pass_context
@handle_errors
def users_enable(ctx: click.Context, name: str) -> None:
    """Enable a disabled user NAME again.

    \b
    Example:
      corredor --home ./ts users enable pan-stats
    """
    with _db(ctx) as db:
        db.enable(name)
    console.print(f"enabled {name}")


@users_group.command("reset")
@click.argument("name")
@click.pass_context
@handle_errors
def users_reset(ctx: click.Context, name: str) -> None:
    """Set a new password for NAME (from stdin); every open session ends.

    \b
    Example:
      corredor --home ./ts users reset pan-stats < new.pw
    """
    with _db(ctx) as db:
        db.reset(name, _password())
    console.print(f"reset the password of {name}")


@users_group.command("public")
@click.option(
    "--enable/--disable",
    "enable",
    required=True,
    help="Let anonymous visitors see the public audience, or refuse them.",
)
@click.pass_context
@handle_errors
def users_public(ctx: click.Context, enable: bool) -> None:
    """Whether visitors who do not sign in see the folder as the public audience
    (off until the Secretariat turns it on).

    \b
    Example:
      corredor --home ./ts users public --enable
    """
    from node.folder.accounts import PUBLIC_SETTING

    with _db(ctx) as db:
        db.set_setting(PUBLIC_SETTING, "1" if enable else "0")
    console.print(f"anonymous visitors: {'public audience' if enable else 'refused'}")


COMMANDS: tuple[click.Command, ...] = (users_group,)
