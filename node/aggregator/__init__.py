"""The Secretariat's aggregator: consume, verify, apply, build the picture."""

from node.aggregator.apply import Aggregator, consume_until_caught_up
from node.aggregator.stats import ApplyStats

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
    "stats",
    "views",
]
