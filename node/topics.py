"""Every Kafka topic and consumer-group name the federation uses, in one place.

A home's configuration (``kafka.topic``, ``kafka.control_topic``,
``kafka.group_id``) and the signed manifest (``topics``) may name others; these
are their defaults, and the names the local broker, the deployment files and
the ACLs are made with. Nothing else in ``node/`` writes a topic or a group
name as a literal (``tests/test_import_rules.py`` checks it).
"""

from __future__ import annotations

__all__ = [
    "AGGREGATOR_GROUP",
    "CONTROL_TOPIC",
    "DEAD_LETTER_SUFFIX",
    "DEMO_TOPIC_PREFIX",
    "EVENTS_TOPIC",
    "PICTURE_TOPIC",
    "dead_letter_topic_for",
    "group_prefix",
]

#: The shared topic: every member's signed events, keyed by country.
EVENTS_TOPIC = "corredor.events"
#: Compacted: the signed manifest, members' signed statements, linkage bundles.
CONTROL_TOPIC = "corredor.control"
#: Compacted: the picture the Secretariat publishes back, and relayed sealed events.
PICTURE_TOPIC = "corredor.picture"
#: The Secretariat aggregator's consumer group.
AGGREGATOR_GROUP = "corredor-aggregator"
#: What the shared topic's dead-letter topic adds to its name.
DEAD_LETTER_SUFFIX = ".dlq"
#: The demo federation's shared topics: one per run, ``corredor.demo.<unix time>``.
DEMO_TOPIC_PREFIX = "corredor.demo."


def dead_letter_topic_for(topic: str) -> str:
    """The Secretariat's dead-letter topic for the shared topic ``topic``."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


def group_prefix(principal: str) -> str:
    """Consumer groups a Kafka principal may use start with this (the ACLs
    grant each principal the groups under its own name)."""
    return f"{principal}."
