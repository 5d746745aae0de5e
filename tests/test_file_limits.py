"""Files read whole (keys handed over, manifests, schemas, JSON reference files)
are refused over a stated limit before they are parsed, with an error naming
the file and the limit, and a JSON file nested too deeply for Python's parser is
a located error rather than a RecursionError traceback.

Oversized files are sparse (``truncate``): their size is what is checked, and
the tests assert no more than the limit is ever read into memory.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.aggregator.setup import add_member, init_aggregator
from node.cli import main
from node.codec.registry import load_schema_version
from node.config import REPO_ROOT
from node.errors import ConfigFileError, InputError, KeyFileError, SchemaFileError
from node.federation import manifest as fed
from node.limits import (
    MAX_KEY_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_REFERENCE_JSON_BYTES,
    MAX_SCHEMA_BYTES,
)
from node.member.ingest_reference import detect_kind
from node.member.intake import ingest
from node.member.member_home import init_member


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def _bounded(call: Callable[[], object], limit: int) -> Exception:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as caught:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < limit + 1_000_000, peak
    return caught.value


def test_an_oversized_manifest_is_refused_before_parsing(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "manifest.json", MAX_MANIFEST_BYTES + 1, b'{"payload": "')
    err = _bounded(lambda: fed.read_signed(path), 0)
    assert isinstance(err, ConfigFileError)
    assert err.file == str(path) and "4 MiB limit" in str(err)


def test_an_oversized_schema_file_is_refused(tmp_path: Path) -> None:
    source = REPO_ROOT / "schemas" / "FocalPoint.v1.avsc"
    path = _sparse(tmp_path / "FocalPoint.v1.avsc", MAX_SCHEMA_BYTES + 1, source.read_bytes())
    err = _bounded(lambda: load_schema_version(path), 0)
    assert isinstance(err, SchemaFileError) and "1 MiB limit" in str(err)
    load_schema_version(source)  # control


def test_a_key_handed_over_that_is_too_large_is_refused_by_add_member(tmp_path: Path) -> None:
    ts = init_aggregator(tmp_path / "ts")
    member = init_member(tmp_path / "pan", "PAN")
    big = _sparse(tmp_path / "pan.pub", 200 * MAX_KEY_BYTES, member.public_key_path.read_bytes())
    result = CliRunner().invoke(
        main,
        ["--home", str(ts.path), "federation", "add-member", "PAN", "--signing-key", str(big)],
    )
    assert result.exit_code == 1
    assert str(big) in result.output and "64 KiB limit" in result.output
    assert "Traceback" not in result.output
    # An endless stream (no size to check) is cut at the limit, too.
    err = _bounded(lambda: add_member(ts, "PAN", Path("/dev/zero")), MAX_KEY_BYTES)
    assert isinstance(err, KeyFileError) and err.file == "/dev/zero"
    # Control: the real key is accepted.
    add_member(ts, "PAN", member.public_key_path, member.encryption_pub_path)


def test_an_oversized_linkage_bundle_is_refused(tmp_path: Path) -> None:
    member = init_member(tmp_path / "pan", "PAN")
    big = _sparse(tmp_path / "bundle.json", MAX_KEY_BYTES + 1, b"{")
    result = CliRunner().invoke(main, ["--home", str(member.path), "linkage", "sync", str(big)])
    assert result.exit_code == 1 and "limit" in result.output and str(big) in result.output


def test_an_oversized_json_reference_file_is_refused(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "missions.json", MAX_REFERENCE_JSON_BYTES + 1, b'[{"mission_id": ')
    err = _bounded(lambda: detect_kind(path), 0)
    assert isinstance(err, InputError) and err.file == str(path)
    assert "64 MiB limit" in str(err)
    member = init_member(tmp_path / "pan", "PAN")
    with pytest.raises(InputError, match="64 MiB limit"):
        ingest(member, path, kind="consular")


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_nested_too_deeply_is_a_located_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"missions{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    member = init_member(tmp_path / "pan", "PAN")
    result = CliRunner().invoke(
        main, ["--home", str(member.path), "ingest", "--kind", "consular", str(path)]
    )
    assert result.exit_code == 1, result.output
    assert str(path) in result.output and "nested too deeply" in result.output
    assert "RecursionError" not in result.output


def test_an_oversized_password_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    from node.config import KafkaSettings, kafka_password
    from node.operator.deploy import read_secret

    path = _sparse(tmp_path / "password", MAX_KEY_BYTES + 1, b"hunter2-secret")
    path.chmod(0o600)
    settings = KafkaSettings(password_file=str(path))
    for call in (lambda: kafka_password(settings, tmp_path), lambda: read_secret(path)):
        err = _bounded(call, MAX_KEY_BYTES)
        assert isinstance(err, ConfigFileError) and "limit" in str(err)
        assert "hunter2" not in str(err)
