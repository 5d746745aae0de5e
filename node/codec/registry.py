"""Schemas from ``schemas/``, indexed by their CRC-64-AVRO fingerprint.

Every version of every schema is kept (``<Name>.v<N>.avsc``), so a reader can
resolve whatever writer schema an event names, with no registry server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from node.errors import CodecError, SchemaFileError
from node.limits import MAX_SCHEMA_BYTES, read_limited

_FILENAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")
NAMESPACE = "org.rcm.corredor"


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one named schema."""

    name: str
    version: int
    path: Path
    raw: dict[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO, as single-object encoding writes it


def crc64_avro_fingerprint(canonical_form: str) -> bytes:
    """The 8 fingerprint bytes of a canonical form, in single-object encoding order."""
    return bytes.fromhex(fingerprint(canonical_form, "CRC-64-AVRO"))


def load_schema_version(path: Path) -> SchemaVersion:
    match = _FILENAME.match(path.name)
    if match is None:
        raise CodecError(f"{path}: schema files are named <Name>.v<N>.avsc")
    try:
        raw = json.loads(
            read_limited(path, limit=MAX_SCHEMA_BYTES, what="a schema", error=SchemaFileError)
        )
        # The canonical form is taken from a plain parse; readers and writers get
        # the hinted parse, which fastavro recognises and does not parse again on
        # every call (2-3x faster encoding and decoding here).
        canonical = to_parsing_canonical_form(parse_schema(raw, _write_hint=False))
        parsed = parse_schema(raw)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CodecError(f"{path}: invalid Avro schema: {exc}") from exc
    name = match["name"]
    full = f"{raw.get('namespace', '')}.{raw.get('name')}".lstrip(".")
    if full != f"{NAMESPACE}.{name}":
        raise CodecError(f"{path}: file name says {name} but the schema is {full}")
    return SchemaVersion(
        name=name,
        version=int(match["version"]),
        path=path,
        raw=raw,
        parsed=parsed,
        canonical=canonical,
        fingerprint=crc64_avro_fingerprint(canonical),
    )


class SchemaRegistry:
    """All schema versions in a directory, by fingerprint and by name."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._by_name: dict[str, list[SchemaVersion]] = {}
        for version in versions:
            other = self._by_fingerprint.get(version.fingerprint)
            if other is not None and other.name != version.name:
                raise CodecError(f"{version.path} and {other.path} have the same fingerprint")
            self._by_fingerprint[version.fingerprint] = version
            self._by_name.setdefault(version.name, []).append(version)
        for history in self._by_name.values():
            history.sort(key=lambda v: v.version)

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaRegistry:
        if not directory.is_dir():
            raise CodecError(f"schema directory not found: {directory}")
        return cls([load_schema_version(p) for p in sorted(directory.glob("*.avsc"))])

    def by_fingerprint(self, fp: bytes) -> SchemaVersion:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise CodecError(f"unknown schema fingerprint {fp.hex()}") from None

    def latest(self, name: str) -> SchemaVersion:
        try:
            return self._by_name[name][-1]
        except KeyError:
            raise CodecError(f"no schema named {name}") from None

    def history(self, name: str) -> list[SchemaVersion]:
        return list(self._by_name.get(name, []))

    def names(self) -> list[str]:
        return sorted(self._by_name)
