"""A member's copy of the regional picture, read from the picture topic.

The Secretariat publishes back, unchanged, the signed events every member may
see (``node.aggregator.relay.publish_picture``). A member's node reads the topic,
verifies every signature against its own manifest with the same checks the
aggregator makes (``node.aggregator.apply``), and applies the events to its
own picture store, ``DIR/picture.db``. So a member's ``corredor report`` shows
numbers signed by the countries that produced them: the Secretariat relays
them and cannot alter them. Restricted events on the same topic are the
inbox's (``corredor inbox``) and are skipped here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

from node.aggregator.run import build_aggregator
from node.aggregator.stats import ApplyStats
from node.config import Home
from node.errors import CodecError
from node.home import event_codec, picture_topic, read_home_topic, regional_floor
from node.model.events import RESTRICTED_KINDS
from node.store.picture import PictureStore
from node.transport.base import Message


def picture_path(home: Home) -> Path:
    """Where a home's picture is: the aggregator's store, or a member's copy."""
    return home.store_path if home.is_aggregator else home.path / "picture.db"


def purge_picture(home: Home, today: date) -> dict[str, int]:
    """Remove from a home's picture every event past its retain_until as of
    ``today``; how many of each kind went (``corredor purge``)."""
    with PictureStore(picture_path(home)) as store:
        return store.purge_expired(today)


def apply_picture(home: Home, messages: Iterable[Message]) -> ApplyStats:
    """Verify and apply picture-topic messages to the member's own picture."""
    codec = event_codec()
    wanted: list[Message] = []
    for msg in messages:
        if msg.value is None:
            continue  # a tombstone: the Secretariat purged that subject
        try:
            kind = codec.decode_envelope(codec.split_signed(msg.value)[0]).kind
        except CodecError:
            kind = None  # the aggregator's checks set it aside with its reason
        if kind not in RESTRICTED_KINDS:
            wanted.append(msg)
    with PictureStore(picture_path(home)) as store:
        aggregator = build_aggregator(
            home, store, codec, floor=regional_floor(), mode="member-copy"
        )
        try:
            return aggregator.apply_batch(wanted)
        finally:
            aggregator.close()


def sync_picture(home: Home, *, bootstrap: str | None = None) -> ApplyStats:
    """Read the whole picture topic and apply what is new to the member's copy."""
    if home.is_aggregator:
        return ApplyStats()
    topic = picture_topic(home)
    messages = read_home_topic(home, topic, bootstrap)
    return apply_picture(home, messages)
