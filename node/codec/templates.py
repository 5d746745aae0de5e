"""Encoding many events of one batch without re-encoding what they share.

Avro's binary encoding of a record is the concatenation of its fields'
encodings, in schema order. The events of one batch share most of their
envelope: producer, kind, time, policy, audiences, purposes, retention,
embargo and key id. Only the event id, subject, revision and body differ, and
those are strings, a long and a nullable bytes field, whose encodings are a
zig-zag varint length and the bytes. So ``EnvelopeTemplate`` has fastavro
encode the envelope once, keeps the shared runs of bytes, and builds each
event's envelope around them; ``sealed_wrapper`` writes the SignedEvent v2
record (bytes, a nullable signature and the seal's two longs and array).

Measured on the node benchmark's machine: ~7 us for fastavro to encode one
envelope and ~5 us for the sealed wrapper, against ~1 us each here. Both are
built from, and checked against, fastavro: the template verifies itself on
the record it was built from, and tests hold both byte-equal to fastavro's
encoding over generated values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from node.codec.single_object import MAGIC


def zigzag_varint(n: int) -> bytes:
    """Avro's ``long``: zig-zag, then 7 bits a byte, low bits first."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return bytes((z,))
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def avro_bytes(data: bytes) -> bytes:
    """Avro ``bytes``: the length as a long, then the bytes."""
    return zigzag_varint(len(data)) + data


def avro_string(text: str) -> bytes:
    return avro_bytes(text.encode("utf-8"))


#: Union branch 1 (the non-null one) of a ["null", X] union.
_SECOND_BRANCH = zigzag_varint(1)
_NULL_BRANCH = zigzag_varint(0)


class EnvelopeTemplate:
    """Builds single-object envelopes that share every field but the event id,
    subject, revision and body with the envelope it was made from."""

    def __init__(
        self,
        encode_full: Callable[[str, str, int, bytes | None], bytes],
        header: bytes,
        producer: str,
        kind: str,
    ) -> None:
        """``encode_full(event_id, subject, revision, body)`` is fastavro's
        single-object encoding of the shared envelope with those four fields;
        ``header`` its C3 01 + fingerprint prefix."""
        probe = ("event-id", "subject", 1, b"body")
        reference = encode_full(*probe)
        if not reference.startswith(header) or header[:2] != MAGIC:
            raise ValueError("envelope encoding does not start with its single-object header")
        self._header = header
        self._middle = avro_string(producer) + avro_string(kind)
        head = len(header) + len(avro_string(probe[0])) + len(self._middle)
        head += len(avro_string(probe[1])) + len(zigzag_varint(probe[2]))
        tail = len(self._body(probe[3]))
        self._shared = reference[head : len(reference) - tail]
        if self(*probe) != reference or self("e", "s", 2, None) != encode_full("e", "s", 2, None):
            raise ValueError("its field order is not the one this template expects")

    @staticmethod
    def _body(body: bytes | None) -> bytes:
        return _NULL_BRANCH if body is None else _SECOND_BRANCH + avro_bytes(body)

    def __call__(self, event_id: str, subject: str, revision: int, body: bytes | None) -> bytes:
        return b"".join(
            (
                self._header,
                avro_string(event_id),
                self._middle,
                avro_string(subject),
                zigzag_varint(revision),
                self._shared,
                self._body(body),
            )
        )


def sealed_wrapper(
    header: bytes,
    envelope: bytes,
    signature: bytes,
    tree_size: int,
    leaf_index: int,
    path: Sequence[bytes],
) -> bytes:
    """Single-object SignedEvent v2 with a signature and a batch seal."""
    parts = [
        header,
        avro_bytes(envelope),
        _SECOND_BRANCH,
        avro_bytes(signature),
        _SECOND_BRANCH,
        zigzag_varint(tree_size),
        zigzag_varint(leaf_index),
    ]
    if path:
        parts.append(zigzag_varint(len(path)))
        parts.extend(avro_bytes(p) for p in path)
    parts.append(_NULL_BRANCH)  # the array's end block
    return b"".join(parts)
