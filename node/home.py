"""What every role reads from a home before it does anything: that the home
is of the right kind, the event codec, the picture topic's name.

Roles (``node.member.operations``, ``node.member.revisions``, the aggregator's rebuild and
picture copy) take these from here rather than from each other, so none of
them imports another's private helpers or imports in a circle.
"""

from __future__ import annotations

from functools import lru_cache

from node.codec.events import EventCodec
from node.codec.registry import SchemaRegistry
from node.config import Home, schemas_dir
from node.errors import ConfigError
from node.federation import trust
from node.topics import PICTURE_TOPIC

__all__ = ["event_codec", "picture_topic", "require_aggregator", "require_member"]


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
