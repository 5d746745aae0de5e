"""Avro schemas, fingerprints, single-object encoding and schema compatibility."""

from node.codec.compat import (
    Incompatibility,
    SchemaCheck,
    check_directory,
    check_history,
    reader_problems,
)
from node.codec.registry import SchemaRegistry, SchemaVersion, crc64_avro_fingerprint
from node.codec.single_object import MAGIC, decode, encode, writer_of

__all__ = [
    "MAGIC",
    "Incompatibility",
    "SchemaCheck",
    "SchemaRegistry",
    "SchemaVersion",
    "check_directory",
    "check_history",
    "compat",
    "crc64_avro_fingerprint",
    "decode",
    "encode",
    "events",
    "reader_problems",
    "registry",
    "single_object",
    "templates",
    "writer_of",
]
