"""The version is written once, in pyproject.toml; the package and the CLI
read it from the installed metadata."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

import node
from node.cli import main

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]


def test_the_package_reads_the_version_pyproject_states() -> None:
    assert node.__version__ == VERSION


def test_corredor_version_prints_it() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"corredor, version {VERSION}\n"
    # As an operator runs it: a fresh interpreter, the installed entry point's module.
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout == f"corredor, version {VERSION}\n"


def test_no_other_file_writes_the_version() -> None:
    """A second copy is how two numbers come to disagree."""
    literal = re.compile(rf"""["']{re.escape(VERSION)}["']""")
    copies = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "node").rglob("*.py"))
        if literal.search(p.read_text(encoding="utf-8"))
    ]
    assert copies == []


def test_the_changelog_follows_keep_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog")
    assert "## [Unreleased]" in text
    assert f"## [{VERSION}]" in text
