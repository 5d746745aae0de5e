"""The Secretariat's aggregator: consume, verify, apply, build the picture."""

from node.aggregator.apply import Aggregator, ApplyStats, consume_until_caught_up

__all__ = [
    "Aggregator",
    "ApplyStats",
    "apply",
    "checks",
    "consume_until_caught_up",
    "dead_letters",
    "parallel",
    "picture_sync",
    "reasons",
    "rebuild",
    "relay",
    "revocation",
    "run",
    "setup",
    "views",
]
