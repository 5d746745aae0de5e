"""What every role reads from a home before it does anything: the home itself
(made, opened), that it is of the right kind, the event codec, the regional
floor, the picture topic's name, and the shared topic every role creates if
missing and reads.

Roles (the member's publish and inbox, ``node.member.revisions``, the
aggregator's runs, rebuild and picture copy, the federation's control verbs)
take these from here rather than from each other, so none of them imports
another's private helpers or imports in a circle.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from node.codec.events import EventCodec
from node.codec.registry import SchemaRegistry
from node.config import Home, load_home, regional_policy_path, schemas_dir
from node.errors import ConfigError
from node.federation import trust
from node.files import private_dir
from node.policy.floor import RegionalFloor
from node.policy.loader import load_floor
from node.topics import PICTURE_TOPIC
from node.transport.base import Message
from node.transport.clients import read_topic
from node.transport.kafka_admin import ensure_topic
from node.transport.topic_config import shared_topic_configs

__all__ = [
    "create_home_dir",
    "ensure_shared_topic",
    "event_codec",
    "open_home",
    "picture_topic",
    "read_home_topic",
    "regional_floor",
    "remove_home",
    "require_aggregator",
    "require_member",
]


def require_member(home: Home) -> Home:
    """``home``, refused (``ConfigError``) if it is the aggregator's."""
    if home.is_aggregator:
        raise ConfigError(f"{home.path} is the aggregator's home; this needs a member node")
    return home


def require_aggregator(home: Home) -> Home:
    """``home``, refused (``ConfigError``) if it is a member's."""
    if not home.is_aggregator:
        raise ConfigError(f"{home.path} is a member node; this needs the aggregator's home")
    return home


@lru_cache(maxsize=1)
def event_codec() -> EventCodec:
    """The codec of every schema version in the checkout's ``schemas/``."""
    return EventCodec(SchemaRegistry.from_directory(schemas_dir()))


def picture_topic(home: Home) -> str:
    """Where the Secretariat publishes the picture back: the manifest's name
    for it, or the default before the home holds a manifest."""
    if home.manifest_path.exists():
        return trust.current_manifest(home).topics.picture
    return PICTURE_TOPIC


def create_home_dir(path: Path) -> None:
    """Make ``path`` a new home's directory, private; refused if it is a home already."""
    if (path / "corredor.yaml").exists():
        raise ConfigError(f"{path} is already a Corredor home")
    private_dir(path)  # raw data and keys live here: 0700 whatever the umask


def open_home(path: Path | None) -> Home:
    """The home at ``path``, refused (``ConfigError``) when none is given."""
    if path is None:
        raise ConfigError("no home given: pass --home DIR or set CORREDOR_HOME")
    return load_home(path)


def remove_home(path: Path) -> None:
    """Delete a home created by the demo (only if it is one)."""
    if (path / "corredor.yaml").is_file():
        shutil.rmtree(path)


def regional_floor() -> RegionalFloor:
    """The regional floor every policy keeps to and every aggregator enforces."""
    return load_floor(regional_policy_path())


def ensure_shared_topic(home: Home, address: str, security: dict[str, Any] | None) -> None:
    """Create the shared topic with the home's partitions and replication if missing,
    stamped with the broker's append time and keeping messages as long as the
    regional floor lets any policy retain them (``shared_topic_configs``)."""
    settings = home.config.kafka
    ensure_topic(
        address,
        settings.topic,
        partitions=settings.partitions,
        replication=settings.replication,
        configs=shared_topic_configs(regional_floor().max_retention_days),
        security=security,
    )


def read_home_topic(home: Home, topic: str, bootstrap: str | None = None) -> list[Message]:
    """Every record on ``topic`` (no group), read with the home's ``kafka.client``."""
    return read_topic(
        home.config.kafka.client,
        bootstrap or home.bootstrap,
        topic,
        security=home.kafka_security(),
    )
