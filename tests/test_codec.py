"""Single-object encoding against exact bytes, and fingerprints against an
independent CRC-64-AVRO written from the Avro specification."""

from __future__ import annotations

import pytest

from node.codec import MAGIC, SchemaRegistry, crc64_avro_fingerprint, decode, encode, writer_of
from node.config import schemas_dir
from node.errors import CodecError

EMPTY = 0xC15D213AA4D7A795


def _reference_crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint as the Avro specification defines it."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.from_directory(schemas_dir())


def test_fingerprint_of_int_matches_the_published_vector() -> None:
    # The Avro specification's single-object example: "int" -> 8F 5C 39 3F 1A D5 75 72
    assert crc64_avro_fingerprint('"int"') == bytes.fromhex("8f5c393f1ad57572")


def test_every_schema_fingerprint_matches_the_reference(registry: SchemaRegistry) -> None:
    for name in registry.names():
        for version in registry.history(name):
            expected = _reference_crc64_avro(version.canonical.encode()).to_bytes(8, "little")
            assert version.fingerprint == expected, version.path


def test_flow_statistic_encodes_to_exact_bytes(registry: SchemaRegistry) -> None:
    schema = registry.history("FlowStatistic")[0]  # v1
    record = {
        "reporting_country": "PAN",
        "period": "2024-W01",
        "period_type": "ISO_WEEK",
        "nationality": "CUB",
        "count": 7,
    }
    expected = (
        b"\xc3\x01"
        + schema.fingerprint
        + b"\x06PAN"  # string: zigzag length 3, bytes
        + b"\x102024-W01"
        + b"\x00"  # enum ISO_WEEK
        + b"\x02\x06CUB"  # union branch 1 (string)
        + b"\x00\x00\x00\x00"  # four null branches
        + b"\x0e"  # long 7
        + b"\x02A"  # obs_status default "A"
    )
    assert encode(record, schema) == expected
    # v2 appends five null branches (the interval and noise of a noisy count)
    v2 = registry.history("FlowStatistic")[1]
    assert encode(record, v2) == expected.replace(schema.fingerprint, v2.fingerprint) + b"\x00" * 5


def test_round_trip_and_writer_lookup(registry: SchemaRegistry) -> None:
    schema = registry.history("FlowStatistic")[0]  # v1: every field named below
    record = {
        "reporting_country": "GTM",
        "period": "2024-Q2",
        "period_type": "QUARTER",
        "nationality_region": "Southern Asia",
        "sex": "F",
        "age_band": "18-29",
        "previous_country": "HND",
        "count": 123456,
        "nationality": None,
        "obs_status": "A",
    }
    data = encode(record, schema)
    assert data.startswith(MAGIC)
    assert writer_of(data, registry) is schema
    writer, decoded = decode(data, registry, schema)
    assert writer is schema
    assert decoded == record


def test_unknown_fingerprint_and_bad_marker_are_codec_errors(registry: SchemaRegistry) -> None:
    with pytest.raises(CodecError, match="bad marker"):
        decode(b"\x00\x01" + b"\x00" * 12, registry)
    with pytest.raises(CodecError, match="unknown schema fingerprint"):
        decode(MAGIC + b"\xff" * 8 + b"\x00", registry)


def test_truncated_and_trailing_bytes_are_refused(registry: SchemaRegistry) -> None:
    schema = registry.latest("FlowStatistic")
    data = encode(
        {"reporting_country": "PAN", "period": "2024-W01", "period_type": "MONTH", "count": 1},
        schema,
    )
    with pytest.raises(CodecError):
        decode(data[:-3], registry)
    with pytest.raises(CodecError, match="trailing"):
        decode(data + b"\x00", registry)
