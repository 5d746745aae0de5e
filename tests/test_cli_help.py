"""Every command's help carries an example: the CLI is an interface people script."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from node.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, (*prefix, name)))
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("path", _commands(main), ids=lambda p: " ".join(p) or "corredor")
def test_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    example = result.output.split("Example:", 1)[1]
    assert "corredor" in example


def test_the_slice_commands_exist() -> None:
    paths = {" ".join(p) for p in _commands(main)}
    for expected in (
        "init",
        "keys export-public",
        "member add",
        "ingest",
        "publish",
        "aggregate",
        "report",
        "status",
        "demo",
        "kafka up",
        "kafka status",
        "kafka down",
    ):
        assert expected in paths


def test_ingest_template_prints_the_header() -> None:
    result = CliRunner().invoke(main, ["ingest", "--template"])
    assert result.exit_code == 0
    assert result.output.strip().startswith("record_id,document_number,family_name")


def test_missing_home_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "nope"), "status"])
    assert result.exit_code == 1
    assert "not a Corredor home" in result.output
    assert "Traceback" not in result.output
