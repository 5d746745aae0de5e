"""docs/cli.md is the CLI's interface contract: every command and every option
it takes must be written there, so a new flag cannot ship undocumented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from node.cli import main

CLI_MD = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")


def _leaves(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, path)
        else:
            yield " ".join(path), cmd


COMMANDS = list(_leaves(main))


def _written(word: str) -> bool:
    """``word`` appears in the page as a whole word (not inside a longer flag)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", CLI_MD) is not None


def _documented_option(option: click.Option) -> bool:
    """The option, in its long or its short spelling, is written in the page."""
    return any(_written(s) for s in option.opts)


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_and_option_is_in_cli_md(name: str, cmd: click.Command) -> None:
    assert _written(name), f"`corredor {name}` is not in docs/cli.md"
    undocumented = [
        p.opts[0]
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and not _documented_option(p)
    ]
    assert undocumented == [], f"`corredor {name}` options missing from docs/cli.md"


def test_the_check_can_fail() -> None:
    """A made-up flag is not found: the search above is not vacuous."""
    fake = click.Option(["--no-such-flag-anywhere"])
    assert not _documented_option(fake)
