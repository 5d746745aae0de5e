"""Kafka behind small interfaces (``base``): producers, consumers, admin and
provisioning on kafka-python or confluent-kafka, and an in-memory double.

Import the module you need (``from node.transport import base``): this file
imports none of them.
"""

__all__ = [
    "base",
    "clients",
    "confluent",
    "confluent_consumer",
    "confluent_producer",
    "confluent_replay",
    "confluent_source",
    "credentials",
    "health",
    "kafka_admin",
    "kafka_consumer",
    "kafka_producer",
    "memory",
    "provision",
    "topic_config",
]
