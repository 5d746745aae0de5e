"""Every schema: exact bytes, round trips, and compatibility governance.

The exact-byte tests spell out the Avro binary encoding by hand from the
specification (zigzag varints, union branch indexes, enum indexes, blocked
arrays), so a silent change in a schema or in the encoder fails here.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import main
from node.codec import SchemaRegistry, decode, encode
from node.codec.compat import check_directory, check_history, load_modes, reader_problems
from node.codec.events import EventCodec
from node.codec.registry import load_schema_version
from node.config import schemas_dir
from node.errors import CodecError

REGISTRY = SchemaRegistry.from_directory(schemas_dir())


# -- exact bytes ---------------------------------------------------------------------


def test_legislation_entry_encodes_to_exact_bytes() -> None:
    schema = REGISTRY.latest("LegislationEntry")
    record = {
        "country": "PAN",
        "entry_id": "L1",
        "topic": "PALERMO_PROTOCOL",
        "instrument": "P",
        "summary": "S",
        "palermo_status": "RATIFIED",
        "palermo_status_date": date(2004, 8, 18),
    }
    expected = (
        b"\xc3\x01"
        + schema.fingerprint
        + b"\x06PAN"  # country
        + b"\x04L1"  # entry_id
        + b"\x06"  # topic: enum index 3
        + b"\x02P"  # instrument
        + b"\x00"  # article: null branch
        + b"\x02S"  # summary
        + b"\x00" * 6  # in_force_since .. fine_currency: null
        + b"\x02\x04"  # palermo_status: branch 1, enum index 2 (RATIFIED)
        + b"\x02\xd0\xc5\x01"  # palermo_status_date: branch 1, 12648 days
        + b"\x00\x00"  # compliance_notes, source_url
    )
    assert encode(record, schema) == expected


def _mission(**extra: Any) -> dict[str, Any]:
    return {
        "host_country": "PAN",
        "mission_id": "M1",
        "sending_country": "IND",
        "mission_type": "EMBASSY",
        "city": "C",
        "also_accredited_to": ["CRI"],
        **extra,
    }


_MISSION_V1_BODY = (
    b"\x06PAN"
    + b"\x04M1"
    + b"\x06IND"
    + b"\x00"  # EMBASSY
    + b"\x02C"
    + b"\x00\x00\x00"  # address, phone, email: null
    + b"\x02\x06CRI\x00"  # array: one block of 1 item, then the end block
    + b"\x00"  # notes: null
)


def test_consular_mission_v1_and_v2_encode_to_exact_bytes() -> None:
    v1, v2 = REGISTRY.history("ConsularMission")
    assert (v1.version, v2.version) == (1, 2)
    assert encode(_mission(), v1) == b"\xc3\x01" + v1.fingerprint + _MISSION_V1_BODY
    assert (
        encode(_mission(languages=["es"], emergency_phone="+1 555"), v2)
        == b"\xc3\x01"
        + v2.fingerprint
        + _MISSION_V1_BODY
        + b"\x02\x04es\x00"  # languages
        + b"\x02\x0c+1 555"  # emergency_phone: branch 1, 6 bytes
    )


def test_health_advisory_encodes_to_exact_bytes() -> None:
    schema = REGISTRY.latest("HealthAdvisory")
    record = {
        "issuer": "PAN",
        "advisory_id": "H1",
        "disease": "Cholera",
        "icd10": "A00",
        "country_of_origin": "HTI",
        "source": "PAHO",
        "confidence": "HIGH",
        "impact": "VERY_HIGH",
        "valid_from": date(2026, 1, 15),
        "summary": "S",
    }
    expected = (
        b"\xc3\x01"
        + schema.fingerprint
        + b"\x06PAN\x04H1\x0eCholera"
        + b"\x02\x06A00"
        + b"\x06HTI"
        + b"\x00"  # PAHO
        + b"\x04"  # HIGH: index 2
        + b"\x06"  # VERY_HIGH: index 3
        + b"\xe8\xbf\x02"  # valid_from: 20468 days
        + b"\x00"  # valid_until: null
        + b"\x02S"
        + b"\x00\x00"  # recommended_measures, reference_url
    )
    assert encode(record, schema) == expected


def test_focal_point_encodes_defaults_to_exact_bytes() -> None:
    schema = REGISTRY.latest("FocalPoint")
    record = {
        "country": "GTM",
        "focal_point_id": "F1",
        "name": "N",
        "role": "R",
        "institution": "I",
        "email": "a@b.c",
        "since": date(2016, 7, 28),
    }
    expected = (
        b"\xc3\x01"
        + schema.fingerprint
        + b"\x06GTM\x04F1\x02N\x02R\x02I\x0aa@b.c"
        + b"\x00"  # phone: null
        + b"\x26extraregional-flows"  # working_group default: 19 bytes
        + b"\x00"  # languages: empty array
        + b"\x02\xe4\x89\x02"  # since: 17010 days
    )
    assert encode(record, schema) == expected


def test_intelligence_report_encodes_to_exact_bytes() -> None:
    schema = REGISTRY.latest("IntelligenceReport")
    record = {
        "reporting_country": "PAN",
        "report_id": "R1",
        "title": "T",
        "category": "NETWORK",
        "summary": "S",
        "countries_involved": ["COL", "PAN"],
        "period_start": date(2026, 1, 15),
        "confidence": "LOW",
    }
    expected = (
        b"\xc3\x01"
        + schema.fingerprint
        + b"\x06PAN\x04R1\x02T"
        + b"\x04"  # NETWORK: index 2
        + b"\x02S"
        + b"\x04\x06COL\x06PAN\x00"  # one block of 2 items
        + b"\xe8\xbf\x02"
        + b"\x00"  # period_end
        + b"\x00"  # LOW
        + b"\x00"  # handling
    )
    assert encode(record, schema) == expected


# -- round trips of every version of every schema --------------------------------------


def _example(schema: Any, named: dict[str, Any], depth: int = 0) -> Any:
    """A value exercising every field: the non-null branch of each union, one
    item per array or map, the last enum symbol."""
    if isinstance(schema, str):
        for name in (schema, schema.rsplit(".", 1)[-1]):
            if name in named:
                return _example(named[name], named, depth)
        return {
            "null": None,
            "boolean": True,
            "int": -3,
            "long": 2**40,
            "float": 1.5,
            "double": -2.25,
            "bytes": b"\x00ab",  # valid UTF-8: bytes may be read as string
            "string": "ñandú ✓",
        }[schema]
    if isinstance(schema, list):
        non_null = [s for s in schema if s != "null"]
        return _example(non_null[-1] if non_null else "null", named, depth)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "date":
        return date(2024, 2, 29)
    if logical == "timestamp-millis":
        from datetime import UTC, datetime

        return datetime(2024, 2, 29, 12, 30, 15, 123000, tzinfo=UTC)
    if kind in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', 'org.rcm.corredor')}.{schema['name']}"] = schema
    if kind == "record":
        return {f["name"]: _example(f["type"], named, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "fixed":
        return b"\x01" * schema["size"]
    if kind == "array":
        return [_example(schema["items"], named, depth + 1)]
    if kind == "map":
        return {"k": _example(schema["values"], named, depth + 1)}
    return _example(kind, named, depth)


ALL_VERSIONS = [(n, v.version) for n in REGISTRY.names() for v in REGISTRY.history(n)]


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS, ids=lambda x: str(x))
def test_every_schema_version_round_trips(name: str, version: int) -> None:
    schema = next(v for v in REGISTRY.history(name) if v.version == version)
    record = _example(schema.raw, {})
    data = encode(record, schema)
    writer, decoded = decode(data, REGISTRY, schema)
    assert writer is schema
    assert decoded == record


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS, ids=lambda x: str(x))
def test_every_version_is_read_by_every_other_version_of_its_schema(
    name: str, version: int
) -> None:
    """FULL compatibility, exercised through fastavro's own resolution."""
    writer = next(v for v in REGISTRY.history(name) if v.version == version)
    data = encode(_example(writer.raw, {}), writer)
    for reader in REGISTRY.history(name):
        _, decoded = decode(data, REGISTRY, reader)
        assert set(decoded) == {f["name"] for f in reader.raw["fields"]}


def test_a_v2_mission_read_as_v1_drops_new_fields_and_v1_read_as_v2_gets_defaults() -> None:
    v1, v2 = REGISTRY.history("ConsularMission")
    _, as_v1 = decode(encode(_mission(languages=["fr"]), v2), REGISTRY, v1)
    assert "languages" not in as_v1 and as_v1["also_accredited_to"] == ["CRI"]
    _, as_v2 = decode(encode(_mission(), v1), REGISTRY, v2)
    assert as_v2["languages"] == [] and as_v2["emergency_phone"] is None


def test_pinned_codec_writes_the_older_version() -> None:
    old = EventCodec(REGISTRY, pins={"ConsularMission": 1})
    new = EventCodec(REGISTRY)
    body = old.encode_body("ConsularMission", _mission(languages=["fr"]))
    assert body[2:10] == REGISTRY.history("ConsularMission")[0].fingerprint
    assert (
        new.encode_body("ConsularMission", _mission())[2:10]
        == REGISTRY.latest("ConsularMission").fingerprint
    )
    with pytest.raises(CodecError, match="no version 7"):
        EventCodec(REGISTRY, pins={"ConsularMission": 7})


# -- compatibility checker --------------------------------------------------------------


def test_the_shipped_schemas_keep_their_declared_modes() -> None:
    checks = check_directory(schemas_dir())
    assert {c.name for c in checks} == set(REGISTRY.names())
    assert all(c.ok for c in checks), [i.describe() for c in checks for i in c.incompatibilities]
    modes = load_modes(schemas_dir())
    assert all(modes[n] == "FULL" for n in REGISTRY.names())


def _record(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields)}


def _field(name: str, type_: Any, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **kw}


BASE = _record(_field("a", "string"), _field("n", "int"))

# (reader, writer, readable?) pairs, each a rule of Avro schema resolution.
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("same", BASE, BASE, True),
    (
        "reader adds a field with default",
        _record(_field("a", "string"), _field("n", "int"), _field("x", "long", default=0)),
        BASE,
        True,
    ),
    (
        "reader adds a field without default",
        _record(_field("a", "string"), _field("n", "int"), _field("x", "long")),
        BASE,
        False,
    ),
    ("reader drops a field", _record(_field("a", "string")), BASE, True),
    ("int promoted to long", _record(_field("a", "string"), _field("n", "long")), BASE, True),
    (
        "long not demoted to int",
        BASE,
        _record(_field("a", "string"), _field("n", "long")),
        False,
    ),
    ("string read as bytes", _record(_field("a", "bytes"), _field("n", "int")), BASE, True),
    ("string not read as int", _record(_field("a", "int"), _field("n", "int")), BASE, False),
    (
        "writer enum grew a symbol",
        _record(_field("e", {"type": "enum", "name": "E", "symbols": ["A"]})),
        _record(_field("e", {"type": "enum", "name": "E", "symbols": ["A", "B"]})),
        False,
    ),
    (
        "reader enum has a default",
        _record(_field("e", {"type": "enum", "name": "E", "symbols": ["A"], "default": "A"})),
        _record(_field("e", {"type": "enum", "name": "E", "symbols": ["A", "B"]})),
        True,
    ),
    (
        "writer union has a branch the reader lacks",
        _record(_field("u", ["null", "string"])),
        _record(_field("u", ["null", "string", "int"])),
        False,
    ),
    (
        "reader union covers a plain writer",
        _record(_field("u", ["null", "long"])),
        _record(_field("u", "int")),
        True,
    ),
    (
        "renamed nested record",
        _record(_field("r", _record(_field("a", "string"), name="In"))),
        _record(_field("r", _record(_field("a", "string"), name="Other"))),
        False,
    ),
    (
        "field found by alias",
        _record(_field("b", "string", aliases=["a"]), _field("n", "int")),
        BASE,
        True,
    ),
    (
        "array items promoted",
        _record(_field("xs", {"type": "array", "items": "double"})),
        _record(_field("xs", {"type": "array", "items": "float"})),
        True,
    ),
    (
        "named type referenced after a skipped field",
        _record(_field("k", "t.E")),
        _record(
            _field("skip", {"type": "enum", "name": "E", "symbols": ["A"]}),
            _field("k", "t.E"),
        ),
        False,  # the reader's "t.E" is unknown to the reader: caught, not a crash
    ),
]


@pytest.mark.parametrize(("case", "reader", "writer", "ok"), CASES, ids=[c[0] for c in CASES])
def test_checker_follows_avro_resolution(
    case: str, reader: dict[str, Any], writer: dict[str, Any], ok: bool
) -> None:
    if case == "named type referenced after a skipped field":
        with pytest.raises(CodecError, match="unknown named type"):
            reader_problems(reader, writer)
        return
    problems = reader_problems(reader, writer)
    assert (not problems) is ok, problems


@pytest.mark.parametrize(
    ("case", "reader", "writer", "ok"),
    [c for c in CASES if c[0] != "named type referenced after a skipped field"],
    ids=[c[0] for c in CASES if c[0] != "named type referenced after a skipped field"],
)
def test_checker_agrees_with_fastavro(
    case: str, reader: dict[str, Any], writer: dict[str, Any], ok: bool, tmp_path: Path
) -> None:
    """What the checker predicts is what actually happens when decoding."""
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    w, r = parse_schema(writer), parse_schema(reader)
    buf = io.BytesIO()
    schemaless_writer(buf, w, _example(writer, {}))
    buf.seek(0)
    try:
        schemaless_reader(buf, w, r)
    except Exception:
        decoded = False
    else:
        decoded = True
    assert decoded is ok


def _write(directory: Path, name: str, version: int, schema: dict[str, Any]) -> None:
    import json

    (directory / f"{name}.v{version}.avsc").write_text(json.dumps(schema))


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), directory)
    return directory


def test_schema_check_refuses_a_deliberately_incompatible_change(schema_dir: Path) -> None:
    v2 = load_schema_version(schema_dir / "ConsularMission.v2.avsc").raw
    # v3 makes a new field required: v3 cannot read v1/v2 data (BACKWARD broken).
    v3 = {**v2, "fields": [*v2["fields"], {"name": "website", "type": "string"}]}
    _write(schema_dir, "ConsularMission", 3, v3)
    result = CliRunner().invoke(main, ["schema", "check", "--dir", str(schema_dir)])
    assert result.exit_code == 1
    assert "ConsularMission: FULL compatibility broken: v3 cannot read data written with v1" in (
        result.output
    )
    assert "website: the reader's field is missing from the writer and has no default" in (
        result.output
    )
    ok = CliRunner().invoke(main, ["schema", "check"])
    assert ok.exit_code == 0, ok.output


def test_schema_check_refuses_a_changed_type_in_forward_mode(schema_dir: Path) -> None:
    v1 = load_schema_version(schema_dir / "FocalPoint.v1.avsc").raw
    fields = [{**f, "type": "long"} if f["name"] == "focal_point_id" else f for f in v1["fields"]]
    _write(schema_dir, "FocalPoint", 2, {**v1, "fields": fields})
    result = CliRunner().invoke(
        main, ["schema", "check", "--dir", str(schema_dir), "--format", "json"]
    )
    assert result.exit_code == 1
    import json

    report = json.loads(result.output)
    focal = next(s for s in report["schemas"] if s["name"] == "FocalPoint")
    assert not report["ok"] and not focal["ok"]
    assert any("focal_point_id: the writer's" in p for p in focal["problems"])


def test_backward_mode_allows_what_forward_refuses(schema_dir: Path) -> None:
    v1 = load_schema_version(schema_dir / "FocalPoint.v1.avsc").raw
    # v2 adds a required field: old readers ignore it (FORWARD ok), v2 cannot
    # read v1 data (BACKWARD broken).
    _write(
        schema_dir,
        "FocalPoint",
        2,
        {**v1, "fields": [*v1["fields"], {"name": "unit", "type": "string"}]},
    )
    history = [load_schema_version(p) for p in sorted(schema_dir.glob("FocalPoint.v*.avsc"))]
    assert check_history("FocalPoint", "FORWARD", history).ok
    assert not check_history("FocalPoint", "BACKWARD", history).ok
    assert not check_history("FocalPoint", "FULL", history).ok
    assert check_history("FocalPoint", "NONE", history).ok


def test_transitive_checks_compare_with_every_earlier_version(schema_dir: Path) -> None:
    v1 = load_schema_version(schema_dir / "FocalPoint.v1.avsc").raw
    # v2 adds an optional field; v3 makes it required: v3 reads v2 data but not v1's.
    extra = {"name": "unit", "type": ["null", "string"], "default": None}
    _write(schema_dir, "FocalPoint", 2, {**v1, "fields": [*v1["fields"], extra]})
    _write(
        schema_dir,
        "FocalPoint",
        3,
        {**v1, "fields": [*v1["fields"], {"name": "unit", "type": ["null", "string"]}]},
    )
    history = [load_schema_version(p) for p in sorted(schema_dir.glob("FocalPoint.v*.avsc"))]
    result = check_history("FocalPoint", "BACKWARD", history)
    assert [(i.reader, i.writer) for i in result.incompatibilities] == [(3, 1)]


def test_a_schema_without_a_mode_is_an_error(schema_dir: Path) -> None:
    _write(
        schema_dir,
        "Unheard",
        1,
        _record(_field("a", "string"), name="Unheard") | {"namespace": "org.rcm.corredor"},
    )
    result = CliRunner().invoke(main, ["schema", "check", "--dir", str(schema_dir)])
    assert result.exit_code == 1
    assert "no compatibility mode for ['Unheard']" in result.output


def test_schema_list_shows_fingerprints() -> None:
    import json

    result = CliRunner().invoke(main, ["schema", "list", "--format", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    mission = [r for r in rows if r["name"] == "ConsularMission"]
    assert [r["version"] for r in mission] == [1, 2]
    assert mission[1]["fingerprint"] == REGISTRY.latest("ConsularMission").fingerprint.hex()


# -- property: the checker's verdict is what decoding does ---------------------------

_TYPES: list[Any] = [
    "int",
    "long",
    "float",
    "double",
    "string",
    "bytes",
    "boolean",
    ["null", "string"],
    ["null", "long"],
    {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]},
    {"type": "array", "items": "int"},
]


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One datum per union branch and enum symbol of each field, the other
    fields at their example: enough to hit any single incompatible branch."""
    base = _example(schema, {})
    out = [base]
    for field in schema["fields"]:
        t = field["type"]
        if isinstance(t, list):
            out += [{**base, field["name"]: _example(b, {})} for b in t]
        elif isinstance(t, dict) and t.get("type") == "enum":
            out += [{**base, field["name"]: s} for s in t["symbols"]]
    return out


def _decodes(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    w, r = parse_schema(writer, _write_hint=False), parse_schema(reader, _write_hint=False)
    for datum in _variants(writer):
        buf = io.BytesIO()
        schemaless_writer(buf, w, datum)
        buf.seek(0)
        try:
            schemaless_reader(buf, w, r)
        except Exception:
            return False
    return True


def _evolve(schema: dict[str, Any], op: str, index: int, new_type: Any) -> dict[str, Any]:
    fields = [dict(f) for f in schema["fields"]]
    i = index % len(fields)
    if op == "add-required":
        fields.append({"name": "added", "type": new_type})
    elif op == "add-optional":
        fields.append({"name": "added", "type": ["null", "string"], "default": None})
    elif op == "remove":
        del fields[i]
    elif op == "retype":
        fields[i]["type"] = new_type
    elif op == "grow-enum":
        for f in fields:
            if isinstance(f["type"], dict) and f["type"].get("type") == "enum":
                f["type"] = {**f["type"], "symbols": [*f["type"]["symbols"], "BLUE"]}
    elif op == "rename-with-alias":
        fields[i] = {**fields[i], "name": "renamed", "aliases": [fields[i]["name"]]}
    return {**schema, "fields": fields}


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
else:

    @settings(max_examples=300, deadline=None)
    @given(
        types=st.lists(st.sampled_from(range(len(_TYPES))), min_size=2, max_size=5),
        op=st.sampled_from(
            ["add-required", "add-optional", "remove", "retype", "grow-enum", "rename-with-alias"]
        ),
        index=st.integers(min_value=0, max_value=10),
        # Enums change only by growing: a second definition of a named type is invalid.
        new_type=st.sampled_from(
            [i for i, t in enumerate(_TYPES) if not isinstance(t, dict) or t.get("type") != "enum"]
        ),
    )
    def test_checker_verdict_matches_decoding_both_ways(
        types: list[int], op: str, index: int, new_type: int
    ) -> None:
        """Old reads new (FORWARD) and new reads old (BACKWARD): the checker
        finds a problem exactly when some datum fails to decode."""
        used_enum = False
        fields = []
        for n, t in enumerate(types):
            schema_type = _TYPES[t]
            if isinstance(schema_type, dict) and schema_type.get("type") == "enum":
                if used_enum:  # a named type is defined once per schema
                    schema_type = "Colour"
                used_enum = True
            fields.append({"name": f"f{n}", "type": schema_type})
        old = _record(*fields, name="Evolving")
        new = _evolve(old, op, index, _TYPES[new_type])
        if old == new:
            return
        if "Colour" in [f["type"] for f in new["fields"]] and not any(
            isinstance(f["type"], dict) and f["type"].get("type") == "enum" for f in new["fields"]
        ):
            return  # removing the enum's definition leaves a dangling reference
        backward = reader_problems(new, old)
        forward = reader_problems(old, new)
        assert (not backward) == _decodes(new, old), backward
        assert (not forward) == _decodes(old, new), forward


def test_every_kind_has_a_schema_an_exchange_and_a_compatibility_mode() -> None:
    from node.model.events import KINDS
    from node.policy.model import KIND_EXCHANGE

    assert set(KINDS) == set(KIND_EXCHANGE)
    assert set(REGISTRY.names()) == {*KINDS, "Envelope", "SignedEvent"}
    assert set(KINDS) <= set(load_modes(schemas_dir()))
