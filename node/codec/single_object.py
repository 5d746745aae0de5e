"""Avro single-object encoding: C3 01, the writer schema's fingerprint, the body.

fastavro gives the canonical form and the fingerprint; this module writes and
reads the header, and resolves the writer schema against the reader's.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from node.codec.registry import SchemaRegistry, SchemaVersion
from node.errors import CodecError

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


def encode(record: dict[str, Any], schema: SchemaVersion) -> bytes:
    """Encode ``record`` with ``schema`` as a single-object message."""
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(schema.fingerprint)
    try:
        schemaless_writer(buf, schema.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CodecError(f"cannot encode {schema.name} v{schema.version}: {exc}") from exc
    return buf.getvalue()


def writer_of(data: bytes, registry: SchemaRegistry) -> SchemaVersion:
    """The writer schema a single-object message names."""
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise CodecError("not Avro single-object encoding (bad marker)")
    return registry.by_fingerprint(bytes(data[2:HEADER_LEN]))


def decode(
    data: bytes, registry: SchemaRegistry, reader: SchemaVersion | None = None
) -> tuple[SchemaVersion, dict[str, Any]]:
    """Decode a single-object message, resolving it to ``reader`` when given.

    Returns the writer schema and the record. Trailing bytes are an error: a
    message is exactly one datum.
    """
    writer = writer_of(data, registry)
    if reader is not None and reader.name != writer.name:
        raise CodecError(f"expected {reader.name}, message is {writer.name}")
    buf = io.BytesIO(data)
    buf.seek(HEADER_LEN)
    try:
        record = schemaless_reader(
            buf, writer.parsed, reader.parsed if reader is not None else None
        )
    except Exception as exc:  # fastavro raises many types on corrupt input
        raise CodecError(f"cannot decode {writer.name} v{writer.version}: {exc}") from exc
    if buf.tell() != len(data):
        raise CodecError(f"{len(data) - buf.tell()} trailing bytes after {writer.name}")
    if not isinstance(record, dict):
        raise CodecError(f"{writer.name} did not decode to a record")
    return writer, record
