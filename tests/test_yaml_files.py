"""Every YAML file Corredor reads (policies, the regional floor, a home's
corredor.yaml, schemas/compatibility.yaml) goes through one strict, bounded
loader: a duplicate key, a document nested too deeply, too many nodes, a value
that cannot be built or a file over the size limit is an error naming the file,
the line and, where one is to blame, the key. Never a silent last-key-wins, never
a traceback, never a minute and gigabytes spent on a file that will be refused.

The hostile documents here are written as text by the tests, not produced by
the code under test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import main
from node.codec.compat import load_modes
from node.config import REPO_ROOT, load_home, policies_dir, regional_policy_path
from node.errors import (
    CodecError,
    ConfigError,
    ConfigFileError,
    FileFormatError,
    PolicyError,
    PolicyFileError,
    SchemaFileError,
)
from node.limits import MAX_YAML_BYTES, MAX_YAML_DEPTH
from node.member.member_home import init_member
from node.policy.loader import load_floor, load_policy

PAN = policies_dir() / "PAN.yaml"


def _with_line_after(text: str, anchor: str, extra: str) -> tuple[str, int]:
    """``text`` with ``extra`` inserted after the first line containing
    ``anchor``; returns the new text and the 1-based line of ``extra``."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if anchor in line)
    lines.insert(at + 1, extra)
    return "".join(lines), at + 2


def _policy_check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["policy", "check", str(path)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


# -- duplicate keys ----------------------------------------------------------------


def test_a_duplicate_min_cell_size_in_a_policy_names_file_line_and_key(tmp_path: Path) -> None:
    text = PAN.read_text(encoding="utf-8")
    weakened, line = _with_line_after(text, "min_cell_size: 5", "    min_cell_size: 1\n")
    path = tmp_path / "PAN.yaml"
    path.write_text(weakened, encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    err = caught.value
    assert isinstance(err, PolicyError)  # callers that catch PolicyError still do
    assert (err.file, err.line, err.key) == (
        str(path),
        line,
        "exchanges.flow_statistics.min_cell_size",
    )
    assert f"{path}:{line}" in str(err) and "duplicate key" in str(err)
    # The command an officer runs says the same, and fails.
    code, out = _policy_check(path)
    assert code == 1
    assert f"{path}:{line}" in out and "exchanges.flow_statistics.min_cell_size" in out
    assert "Traceback" not in out
    # Control: the untouched policy loads, with the value the file states.
    assert load_policy(PAN).exchanges.flow_statistics.min_cell_size == 5


def test_keys_that_load_as_the_same_value_are_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    # `yes` and `true` are both the boolean true in YAML 1.1.
    path.write_text("country: PAN\nyes: 1\ntrue: 2\n", encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.line == 3 and caught.value.key == "True"


def test_a_duplicate_key_inside_a_list_item_is_located(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("margins:\n  - a: 1\n  - b: 1\n    b: 2\n", encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert (caught.value.line, caught.value.key) == (4, "margins[1].b")


def test_a_merge_may_be_overridden_but_not_a_key_stated_twice(tmp_path: Path) -> None:
    from node.yamlsafe import parse_yaml

    merged = parse_yaml("base: &b {m: 5}\nz:\n  <<: *b\n  m: 1\n", "m.yaml", error=PolicyFileError)
    assert merged["z"] == {"m": 1}  # what a merge says: the explicit key wins


def test_a_duplicate_key_in_the_regional_floor(tmp_path: Path) -> None:
    text = regional_policy_path().read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if line and not line.startswith(("#", " ")))
    key = first.split(":", 1)[0]
    path = tmp_path / "regional.yaml"
    path.write_text(text + f"{first}\n", encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_floor(path)
    assert caught.value.key == key and caught.value.line == len(text.splitlines()) + 1
    load_floor(regional_policy_path())  # control


def test_a_duplicate_key_in_a_home_config(tmp_path: Path) -> None:
    home = init_member(tmp_path / "pan", "PAN")
    text = home.config_file.read_text(encoding="utf-8")
    assert text.startswith("role: member\n")
    home.config_file.write_text(text + "role: aggregator\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_home(home.path)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.key == "role" and caught.value.line == len(text.splitlines()) + 1
    assert str(home.config_file) in str(caught.value)
    # Through the CLI: one clean line, exit 1, no traceback.
    result = CliRunner().invoke(main, ["--home", str(home.path), "status"])
    assert result.exit_code == 1 and "duplicate key" in result.output
    assert "Traceback" not in result.output


def test_a_duplicate_key_in_schemas_compatibility(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", schemas)
    compat = schemas / "compatibility.yaml"
    text = compat.read_text(encoding="utf-8")
    name = next(
        line.strip().split(":")[0]
        for line in text.splitlines()
        if line.startswith("  ") and not line.strip().startswith("#")
    )
    weakened, line = _with_line_after(text, f"  {name}:", f"  {name}: NONE\n")
    compat.write_text(weakened, encoding="utf-8")
    with pytest.raises(SchemaFileError) as caught:
        load_modes(schemas)
    assert isinstance(caught.value, CodecError)
    assert (caught.value.line, caught.value.key) == (line, f"schemas.{name}")
    assert load_modes(REPO_ROOT / "schemas")  # control


# -- depth, nodes, values -------------------------------------------------------------


def _deep_mappings(n: int) -> str:
    return "".join(" " * i + f"k{i}:\n" for i in range(n)) + " " * n + "v\n"


@pytest.mark.parametrize(
    "name,text,line",
    [
        ("5000 nested mappings", "{a: " * 5000 + "1" + "}" * 5000 + "\n", 1),
        ("100000 nested lists", "[" * 100_000 + "]" * 100_000 + "\n", 1),
        # Block style: indentation makes each level longer, so 1000 fit the limit.
        ("1000 nested block mappings", _deep_mappings(1000), MAX_YAML_DEPTH + 1),
    ],
)
def test_deep_nesting_is_a_located_error_not_a_traceback(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tmp_path / "DEEP.yaml"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size <= MAX_YAML_BYTES  # the depth limit, not the size limit
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.line == line, name
    assert f"deeper than {MAX_YAML_DEPTH}" in str(caught.value)
    code, out = _policy_check(path)
    assert code == 1 and f"{path}:{line}" in out and "RecursionError" not in out


def test_nesting_at_the_limit_still_parses(tmp_path: Path) -> None:
    from node.yamlsafe import parse_yaml

    at_limit = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    parse_yaml(at_limit, "ok.yaml", error=PolicyFileError)
    with pytest.raises(PolicyFileError):
        parse_yaml("[" + at_limit + "]", "deep.yaml", error=PolicyFileError)


def test_aliases_that_expand_exponentially_are_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 6):  # a5 would repeat a million x's
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    path = tmp_path / "LAUGHS.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size < 1000
    started = time.monotonic()
    with pytest.raises(PolicyFileError, match="nodes") as caught:
        load_policy(path)
    assert time.monotonic() - started < 5
    assert caught.value.line is not None and caught.value.line <= 6


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "CYCLE.yaml"
    path.write_text("exchanges: &e {flow_statistics: *e}\n", encoding="utf-8")
    with pytest.raises(PolicyFileError, match="cycle"):
        load_policy(path)


@pytest.mark.parametrize(
    "value", ["2026-02-30", "1" * 5000], ids=["impossible date", "5000-digit integer"]
)
def test_a_value_yaml_cannot_build_is_a_located_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "VAL.yaml"
    path.write_text(f"country: PAN\nexchanges:\n  flow_statistics:\n    x: {value}\n")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.line == 4
    code, out = _policy_check(path)
    assert code == 1 and "Traceback" not in out and f"{path}:4" in out


# -- size (issue 14 item 10) ------------------------------------------------------------


def test_a_100_mb_policy_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "BIG.yaml"
    with path.open("wb") as handle:
        handle.write(PAN.read_bytes())
        handle.write(b"# padding\n" * 10_000_000)  # 100 MB, valid YAML all the way
    assert path.stat().st_size > 100_000_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(PolicyFileError) as caught:
            load_policy(path)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "limit" in str(caught.value) and str(path) in str(caught.value)
    assert elapsed < 1.0, elapsed
    assert peak < 1_000_000, peak  # nothing of the file was read into memory
    path.unlink()  # 100 MB of disk back now, not when pytest prunes old runs


def test_a_stream_without_a_size_is_cut_at_the_limit(tmp_path: Path) -> None:
    # A pipe reports no size: the read itself must stop at the limit.
    fifo = tmp_path / "PAN.yaml"
    os.mkfifo(fifo)
    body = PAN.read_bytes() + b"# padding\n" * (2 * MAX_YAML_BYTES // 10)

    def write() -> None:
        # The reader stops early, as it should: the rest of the pipe breaks.
        with fifo.open("wb") as handle, contextlib.suppress(BrokenPipeError):
            handle.write(body)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with pytest.raises(PolicyFileError, match="limit"):
        load_policy(fifo)
    writer.join(timeout=30)
    assert not writer.is_alive()


def test_a_file_just_under_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "PAN.yaml"
    body = PAN.read_bytes()
    path.write_bytes(body + b"#" * (MAX_YAML_BYTES - len(body) - 1) + b"\n")
    assert path.stat().st_size == MAX_YAML_BYTES
    assert load_policy(path).country == "PAN"
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(PolicyFileError, match="limit"):
        load_policy(path)


def test_an_oversized_home_config_and_compatibility_file_are_refused(tmp_path: Path) -> None:
    home = init_member(tmp_path / "pan", "PAN")
    with home.config_file.open("a", encoding="utf-8") as handle:
        handle.write("#" * (MAX_YAML_BYTES + 1))
    with pytest.raises(ConfigFileError, match="limit"):
        load_home(home.path)
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", schemas)
    with (schemas / "compatibility.yaml").open("a", encoding="utf-8") as handle:
        handle.write("#" * (MAX_YAML_BYTES + 1))
    with pytest.raises(SchemaFileError, match="limit"):
        load_modes(schemas)


def test_every_yaml_read_in_node_goes_through_the_one_loader() -> None:
    """A new ``yaml.safe_load`` (or ``yaml.load``) elsewhere would skip every
    rule above; only node/yamlsafe.py may call PyYAML's loaders."""
    offenders = []
    for path in sorted((REPO_ROOT / "node").rglob("*.py")):
        if path.name == "yamlsafe.py":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("yaml.safe_load", "yaml.load(", "yaml.full_load", "yaml.unsafe_load"):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO_ROOT)}: {needle}")
    assert offenders == []


def test_every_error_is_a_corredor_error_with_the_file() -> None:
    assert issubclass(PolicyFileError, FileFormatError)
    err = PolicyFileError("duplicate key", file="p.yaml", line=3, key="a.b")
    assert str(err) == "p.yaml:3: key 'a.b': duplicate key"


def test_a_character_yaml_does_not_allow_is_located(tmp_path: Path) -> None:
    path = tmp_path / "NUL.yaml"
    path.write_bytes(b"country: PAN\nname: Pa\x00nama\n")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.line == 2 and "not valid YAML" in str(caught.value)


def test_aliases_cannot_stack_depth_past_the_limit(tmp_path: Path) -> None:
    from node.yamlsafe import parse_yaml

    def nest(n: int, inner: str) -> str:
        return "[" * n + inner + "]" * n

    # Each anchor alone is 21 levels deep; the alias puts it 5 levels further in.
    doc = "a: &a " + nest(20, "1") + "\nb: " + nest(5, "*a") + "\n"
    parse_yaml(doc, "ok.yaml", error=PolicyFileError)
    chained = "a: &a " + nest(20, "1") + "\nb: &b " + nest(5, "*a") + "\nc: " + nest(8, "*b") + "\n"
    with pytest.raises(PolicyFileError, match=r"alias \*b here nests deeper") as caught:
        parse_yaml(chained, "deep.yaml", error=PolicyFileError)
    assert caught.value.line == 3
