"""The optional confluent-kafka (librdkafka) client, behind ``EventSink`` and
``EventSource``.

``kafka.client: confluent`` in a home's config makes ``node.member.publish.open_sink``
return a :class:`ConfluentSink` instead of ``kafka_producer.KafkaSink``. It keeps the
same delivery guarantees (idempotent, acks=all, at most five requests in
flight) under librdkafka's names, takes the same kafka-python style security
dict, and gives the same acknowledgements and errors.

It also makes the aggregator's consumer (``node.aggregator.run.open_source``) a
:class:`ConfluentSource` instead of ``kafka_consumer.KafkaSource``, with the same group
semantics: a partition starts at the committed offset (the beginning if none),
and offsets are committed only by ``commit``, only for what was returned.
:func:`confluent_read_all` and :class:`ConfluentReplay` read a topic without a
group (a member's picture copy and inbox, ``aggregate --rebuild``).
kafka-python stays the default, and is still used for the control topic, the
aggregator's side-topic producers and every admin client.

confluent-kafka is an optional extra (``pip install 'corredor[confluent]'``),
imported only when one of these clients is made.

This module holds the configuration (librdkafka's names, the security
settings, ``load_confluent``); the clients are in ``confluent_producer``,
``confluent_consumer`` (what the consumers share), ``confluent_source`` and
``confluent_replay``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from node.errors import ConfigError

if TYPE_CHECKING:
    pass

#: librdkafka's names for the settings Corredor's delivery guarantees rest on
#: (node.transport.kafka_producer.PRODUCER_GUARANTEES); extras may not override them.
CONFLUENT_GUARANTEES: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "max.in.flight.requests.per.connection": 5,
}

INSTALL_HINT = "pip install 'corredor[confluent]'"

#: kafka-python security keyword -> librdkafka property.
_SECURITY_NAMES = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanisms",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
}


def load_confluent() -> ModuleType:
    """The confluent_kafka module, or a ConfigError saying how to install it."""
    try:
        return importlib.import_module("confluent_kafka")
    except ImportError as exc:
        raise ConfigError(
            f"kafka.client is 'confluent' but confluent-kafka is not installed ({exc}): "
            f"{INSTALL_HINT}, or set kafka.client: kafka-python"
        ) from exc


def confluent_security(security: dict[str, Any] | None) -> dict[str, Any]:
    """librdkafka properties for a kafka-python style security dict
    (``node.transport.credentials.security_settings``). The password stays a
    ``Redacted`` here; it is revealed only when the producer is created."""
    out: dict[str, Any] = {}
    for key, value in (security or {}).items():
        if key == "ssl_check_hostname":
            out["ssl.endpoint.identification.algorithm"] = "https" if value else "none"
        elif key in _SECURITY_NAMES:
            out[_SECURITY_NAMES[key]] = value
        else:
            raise ConfigError(f"kafka security setting {key!r} has no confluent-kafka equivalent")
    return out


def confluent_config(
    bootstrap: str, client_id: str, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The producer's librdkafka configuration: node.transport.kafka_producer.producer_config
    under librdkafka's names."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "linger.ms": 5,
        "retries": 2**31 - 1,
        "delivery.timeout.ms": 120_000,
        "request.timeout.ms": 30_000,
        # A key's partition as kafka-python (and Java) choose it: murmur2 of
        # the key. librdkafka's own default (CRC32) would put a member's events
        # in another partition once it changed clients, and Kafka orders a
        # key's records only within one partition.
        "partitioner": "murmur2_random",
        **confluent_security(security),
    }
    config.update(CONFLUENT_GUARANTEES)
    return config


def confluent_hint(config: dict[str, Any]) -> str:
    """What to check, appended to a connection error of a client made with ``config``."""
    if "sasl.username" in config:
        return " (is the broker up, and are the password and CA right?)"
    return ""


# -- consumers ------------------------------------------------------------------


def consumer_config(
    bootstrap: str,
    group_id: str | None,
    client_id: str,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A consumer's librdkafka configuration: ``kafka_consumer.KafkaSource``'s settings
    under librdkafka's names. Offsets are never committed or stored behind the
    caller's back: ``ConfluentSource.commit`` names each one."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        # As kafka_consumer.KafkaSource: a crashed member leaves the group after the
        # session timeout; one batch applies well within the poll interval.
        "session.timeout.ms": 10_000,
        "max.poll.interval.ms": 60_000,
        **confluent_security(security),
    }
    if group_id is not None:
        config["group.id"] = group_id
    else:
        # librdkafka wants a group id even for a consumer that only assigns;
        # nothing is ever committed under it.
        config["group.id"] = f"{client_id}-no-group"
    return config
