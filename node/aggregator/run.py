"""THE place an aggregator is built, for every run mode.

``aggregate --once``, ``aggregate --follow`` and a member's copy of the picture
(``node.aggregator.picture_sync``) all verify and apply events through an ``Aggregator``
made here, so that no mode can leave out a check: the regional floor is a
required argument, and the trusted time of a message follows from the mode.

    mode             reads                 time judged against     publishes back
    secretariat      the shared topic      the broker's append     yes
                                           time (``append_time``)
    member-copy      the picture topic     the shared topic's      no
                                           append time, relayed
                                           (``relayed_time``)
"""

from __future__ import annotations

from typing import Literal

from node.aggregator.apply import Aggregator
from node.aggregator.checks import append_time, relayed_time
from node.codec.events import EventCodec
from node.config import Home
from node.federation import trust
from node.policy.floor import RegionalFloor
from node.store.picture import PictureStore

Mode = Literal["secretariat", "member-copy"]


def build_aggregator(
    home: Home,
    store: PictureStore,
    codec: EventCodec,
    *,
    floor: RegionalFloor,
    mode: Mode = "secretariat",
    workers: int | None = None,
) -> Aggregator:
    """An aggregator over ``store`` that trusts the keys of the home's current
    manifest and enforces ``floor`` on every event. Revocations in that
    manifest are carried out in the picture first (``node.aggregator.revocation``).

    ``workers``: check processes (``node.aggregator.parallel``); by default the
    home's ``aggregator_workers``. Close the aggregator to stop them."""
    member_copy = mode == "member-copy"
    aggregator = Aggregator(
        store,
        codec,
        trust.key_directory(home),
        floor=floor,
        publish_back=not member_copy,
        time_of=relayed_time if member_copy else append_time,
        workers=home.config.aggregator_workers if workers is None else workers,
    )
    aggregator.enforce_revocations()
    return aggregator
