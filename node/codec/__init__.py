"""Avro schemas, fingerprints and single-object encoding."""

from node.codec.registry import SchemaRegistry, SchemaVersion, crc64_avro_fingerprint
from node.codec.single_object import MAGIC, decode, encode, writer_of

__all__ = [
    "MAGIC",
    "SchemaRegistry",
    "SchemaVersion",
    "crc64_avro_fingerprint",
    "decode",
    "encode",
    "writer_of",
]
