"""Both clients put a key in the same partition, Kafka's murmur2 one.

A member's events carry a key, and Kafka keeps a key's records in order only
within one partition: a member that changed ``kafka.client`` must go on
writing each key where it wrote it before. The expected partition is worked
out here with Kafka's murmur2, written from its definition (the Java
client's ``Utils.murmur2``, seed 0x9747b28c), not asked of either client.
"""

from __future__ import annotations

import pytest

from node.transport.confluent_producer import ConfluentSink
from node.transport.kafka_producer import KafkaSink

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as an unsigned int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_published_values() -> None:
    # Values the Java client's own test (UtilsTest.testMurmur2) asserts, as
    # signed ints: "21" -> -973932308, "foobar" -> -790332482, "" -> 275646681.
    assert murmur2(b"21") == -973932308 & _MASK
    assert murmur2(b"foobar") == -790332482 & _MASK
    assert murmur2(b"") == 275646681


KEYS = [c.encode() for c in ("USA", "PAN", "HND", "MEX", "CRI", "GTM", "SLV", "DOM", "CAN")]
KEYS += [f"subject-{i}".encode() for i in range(40)]


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_each_client_puts_a_key_in_kafkas_partition(
    kafka_bootstrap: str, topic: str, client: str
) -> None:
    sink: KafkaSink | ConfluentSink = (
        ConfluentSink(kafka_bootstrap, topic)
        if client == "confluent"
        else KafkaSink(kafka_bootstrap, topic)
    )
    sink.open()
    try:
        acks = sink.send_batch([(key, b"value") for key in KEYS])
    finally:
        sink.close()
    got = {key: ack.partition for key, ack in zip(KEYS, acks, strict=True)}
    assert got == {key: kafka_partition(key, 3) for key in KEYS}
    assert len(set(got.values())) == 3  # the keys do reach every partition
