"""Schema compatibility: can data written with one schema be read with another?

The rules are the Avro specification's schema resolution ("Schema Resolution"
in the 1.11 spec), checked statically so that an incompatible schema is
refused before any event is written with it:

- records match by name; every reader field must exist in the writer (by name
  or alias) or have a default; writer fields the reader lacks are skipped;
- enums match by name; every writer symbol must be a reader symbol, unless
  the reader declares a default symbol;
- fixed match by name and size; arrays by items; maps by values;
- primitives match, or are promoted: int -> long, float, double; long ->
  float, double; float -> double; string <-> bytes;
- a writer union is readable if every branch is; a reader union reads a
  writer if one of its branches does.

Logical types are annotations of their underlying type, as in resolution.

Modes, per schema, checked transitively against every earlier version:
BACKWARD (the newest reads all older data), FORWARD (all older readers read
the newest data), FULL (both). ``schemas/compatibility.yaml`` sets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from node.codec.registry import SchemaRegistry, SchemaVersion
from node.errors import CodecError, SchemaFileError
from node.yamlsafe import load_yaml

Mode = Literal["BACKWARD", "FORWARD", "FULL", "NONE"]
MODES: tuple[str, ...] = ("BACKWARD", "FORWARD", "FULL", "NONE")
COMPATIBILITY_FILE = "compatibility.yaml"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Resolver:
    """Walks a reader and a writer schema together, collecting problems."""

    def __init__(self) -> None:
        self.named_reader: dict[str, Any] = {}
        self.named_writer: dict[str, Any] = {}
        self._seen: set[tuple[int, int]] = set()

    def collect(self, schema: Any, table: dict[str, Any], namespace: str = "") -> None:
        """Register every named type a schema defines, wherever it is used first."""
        if isinstance(schema, list):
            for branch in schema:
                self.collect(branch, table, namespace)
            return
        if not isinstance(schema, dict):
            return
        self._resolve_named(schema, table, namespace)
        ns = schema.get("namespace", namespace)
        for field in schema.get("fields", []):
            self.collect(field["type"], table, ns)
        for key in ("items", "values"):
            if key in schema:
                self.collect(schema[key], table, ns)

    def _resolve_named(self, schema: Any, table: dict[str, Any], namespace: str) -> Any:
        """Replace a reference to a named type by its definition; record definitions."""
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return schema
            full = schema if "." in schema else f"{namespace}.{schema}".lstrip(".")
            for key in (full, schema, _short(schema)):
                if key in table:
                    return table[key]
            raise CodecError(f"unknown named type {schema!r}")
        if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name else f"{ns}.{name}".lstrip(".")
            table.setdefault(full, schema)
            table.setdefault(_short(full), schema)
        return schema

    def check(
        self, reader: Any, writer: Any, path: str, r_ns: str = "", w_ns: str = ""
    ) -> list[str]:
        reader = self._resolve_named(reader, self.named_reader, r_ns)
        writer = self._resolve_named(writer, self.named_writer, w_ns)
        if isinstance(writer, list):
            problems: list[str] = []
            for branch in writer:
                problems += self.check(reader, branch, path, r_ns, w_ns)
            return problems
        if isinstance(reader, list):
            for branch in reader:
                if not self.check(branch, writer, path, r_ns, w_ns):
                    return []
            return [f"{path}: no branch of the reader's union reads the writer's {_kind(writer)}"]
        r_type, w_type = _kind(reader), _kind(writer)
        if r_type in _PRIMITIVES or w_type in _PRIMITIVES:
            if r_type == w_type or r_type in _PROMOTIONS.get(w_type, frozenset()):
                return []
            return [f"{path}: the writer's {w_type} cannot be read as {r_type}"]
        if r_type != w_type:
            return [f"{path}: the writer's {w_type} cannot be read as {r_type}"]
        if r_type == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]", r_ns, w_ns)
        if r_type == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}", r_ns, w_ns)
        if _short(reader["name"]) != _short(writer["name"]):
            return [f"{path}: the writer's {w_type} {writer['name']} is not {reader['name']}"]
        if r_type == "fixed":
            if reader["size"] != writer["size"]:
                return [f"{path}: fixed size {writer['size']} cannot be read as {reader['size']}"]
            return []
        if r_type == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [
                    f"{path}: enum {reader['name']} of the reader lacks the writer's symbols "
                    f"{missing} and has no default"
                ]
            return []
        return self._record(reader, writer, path, r_ns, w_ns)

    def _record(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str, r_ns: str, w_ns: str
    ) -> list[str]:
        pair = (id(reader), id(writer))
        if pair in self._seen:  # recursive types: assume compatible on the way back
            return []
        self._seen.add(pair)
        r_ns = reader.get("namespace", r_ns)
        w_ns = writer.get("namespace", w_ns)
        by_name: dict[str, dict[str, Any]] = {}
        for field in writer["fields"]:
            by_name[field["name"]] = field
        problems: list[str] = []
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            match = next((by_name[n] for n in names if n in by_name), None)
            where = f"{path}.{field['name']}" if path else field["name"]
            if match is None:
                if "default" not in field:
                    problems.append(
                        f"{where}: the reader's field is missing from the writer and has no default"
                    )
                continue
            problems += self.check(field["type"], match["type"], where, r_ns, w_ns)
        return problems


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    kind = schema["type"]
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return kind
    return str(kind) if isinstance(kind, str) else _kind(kind)


def _unwrap(schema: Any) -> Any:
    # {"type": "string"} and {"type": "int", "logicalType": ...} are primitives.
    if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
        return schema["type"]
    if isinstance(schema, dict):
        out = dict(schema)
        if "fields" in out:
            out["fields"] = [{**f, "type": _unwrap(f["type"])} for f in out["fields"]]
        if "items" in out:
            out["items"] = _unwrap(out["items"])
        if "values" in out:
            out["values"] = _unwrap(out["values"])
        return out
    if isinstance(schema, list):
        return [_unwrap(s) for s in schema]
    return schema


def reader_problems(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can)."""
    resolver = _Resolver()
    r, w = _unwrap(dict(reader)), _unwrap(dict(writer))
    resolver.collect(r, resolver.named_reader)
    resolver.collect(w, resolver.named_writer)
    return resolver.check(r, w, "")


@dataclass(frozen=True)
class Incompatibility:
    """One failed check: ``reader`` cannot read data written with ``writer``."""

    name: str
    mode: str
    reader: int
    writer: int
    problems: tuple[str, ...]

    def describe(self) -> str:
        head = (
            f"{self.name}: {self.mode} compatibility broken: v{self.reader} cannot read data "
            f"written with v{self.writer}"
        )
        return head + "".join(f"\n  - {p}" for p in self.problems)


@dataclass(frozen=True)
class SchemaCheck:
    name: str
    mode: str
    versions: tuple[int, ...]
    incompatibilities: tuple[Incompatibility, ...]

    @property
    def ok(self) -> bool:
        return not self.incompatibilities


def _pairs(mode: str, newest: SchemaVersion, older: list[SchemaVersion]) -> list[tuple[Any, Any]]:
    pairs: list[tuple[Any, Any]] = []
    for old in older:
        if mode in ("BACKWARD", "FULL"):
            pairs.append((newest, old))
        if mode in ("FORWARD", "FULL"):
            pairs.append((old, newest))
    return pairs


def check_history(name: str, mode: str, history: list[SchemaVersion]) -> SchemaCheck:
    """Check each version against every earlier one (transitive), in ``mode``."""
    if mode not in MODES:
        raise CodecError(f"{name}: unknown compatibility mode {mode!r}; use one of {MODES}")
    found: list[Incompatibility] = []
    if mode != "NONE":
        for i, version in enumerate(history):
            for reader, writer in _pairs(mode, version, history[:i]):
                problems = reader_problems(reader.raw, writer.raw)
                if problems:
                    found.append(
                        Incompatibility(name, mode, reader.version, writer.version, tuple(problems))
                    )
    return SchemaCheck(name, mode, tuple(v.version for v in history), tuple(found))


def load_modes(directory: Path) -> dict[str, str]:
    """Compatibility mode per schema name from ``<directory>/compatibility.yaml``."""
    path = directory / COMPATIBILITY_FILE
    data = load_yaml(path, error=SchemaFileError, what="schemas/compatibility.yaml")
    schemas = data.get("schemas") if isinstance(data, dict) else None
    if not isinstance(schemas, dict):
        raise CodecError(f"{path}: expected a 'schemas:' mapping of name to mode")
    modes: dict[str, str] = {}
    for name, mode in schemas.items():
        if mode not in MODES:
            raise CodecError(f"{path}: schemas.{name}: unknown mode {mode!r}; use one of {MODES}")
        modes[str(name)] = str(mode)
    return modes


def check_directory(directory: Path) -> list[SchemaCheck]:
    """Check every schema in ``directory`` against its declared mode.

    A schema without a declared mode is itself an error: governance that
    silently skips is no governance. A mode may be declared before the
    schema's first version lands.
    """
    registry = SchemaRegistry.from_directory(directory)
    modes = load_modes(directory)
    names = registry.names()
    undeclared = [n for n in names if n not in modes]
    if undeclared:
        raise CodecError(
            f"{directory / COMPATIBILITY_FILE}: no compatibility mode for {undeclared}"
        )
    for name in names:
        numbers = [v.version for v in registry.history(name)]
        if numbers != list(range(1, len(numbers) + 1)):
            raise CodecError(f"{name}: versions must run 1..N without gaps, found {numbers}")
    return [check_history(n, modes[n], registry.history(n)) for n in names]
