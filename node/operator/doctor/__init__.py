"""``corredor doctor``: is this node fit to run, and how far behind is it?

Checks, each passing or failing with a message that says what to do:

    broker       a bootstrap address accepts TCP connections
    credentials  TLS and SASL accept this home's identity (topics are visible)
    topic        the shared topic exists
    retention    the shared topic keeps messages as long as the regional floor
                 lets a policy retain them, and none is deleted yet: a rebuild
                 of the picture from its beginning misses nothing
    manifest     a manifest is present, verifies against the pinned Secretariat
                 key, is the newest on the control topic, lists this member's
                 current signing key (members) and names this regional floor
    policy       the national policy loads and passes the regional floor
                 (members); the regional floor itself loads (aggregator)
    outbox       (members) the oldest unacknowledged row is younger than the limit
    store        (members) the store is this home's, with its history: not emptied
                 or replaced, its audit log as long as the head file says, not
                 waiting for recover-revisions after a restore, and (online) no
                 revision of this country on the picture topic above its ledger
    signing_key  (members) the newest manifest (the control topic's when online,
                 else the home's) does not revoke this node's key nor has it
                 expired: publish refuses to sign with such a key
    files        the home is 0700 and its stores, their -wal/-shm files, audit
                 head and rejects files are not readable by group or others
    lag          (aggregator) the consumer group is within the limit of the
                 shared topic's end

It also reports figures an operator watches: outbox depth and age, consumer
lag, quarantine counts by reason and dead-letter counts. Checks that need the
broker are skipped (and say so) when an earlier one failed.

This module runs the checks in order; they are grouped by what they look at:
``broker`` (broker, credentials, topic, retention, lag), ``federation``
(manifest, membership, signing_key, policy) and ``home_state`` (outbox, store,
files). ``report`` holds what they report.
"""

from __future__ import annotations

from node.config import Home
from node.operator.doctor.broker import aggregator_figures, broker_checks
from node.operator.doctor.federation import (
    manifest_check,
    membership_check,
    policy_check,
    signing_key_check,
)
from node.operator.doctor.home_state import files_check, outbox_check, store_check
from node.operator.doctor.report import Check, DoctorReport

DEFAULT_MAX_OUTBOX_AGE_S = 3600.0
DEFAULT_MAX_LAG = 10_000

__all__ = [
    "DEFAULT_MAX_LAG",
    "DEFAULT_MAX_OUTBOX_AGE_S",
    "Check",
    "DoctorReport",
    "broker",
    "diagnose",
    "federation",
    "home_state",
    "report",
]


def diagnose(
    home: Home,
    *,
    bootstrap: str | None = None,
    max_outbox_age_s: float = DEFAULT_MAX_OUTBOX_AGE_S,
    max_lag: int = DEFAULT_MAX_LAG,
    timeout_ms: int = 10_000,
) -> DoctorReport:
    """Run every check on ``home``; never raises for a problem it can name."""
    report = DoctorReport("aggregator" if home.is_aggregator else "member")
    address = bootstrap or home.bootstrap
    settings = home.config.kafka
    online = broker_checks(report, home, address, timeout_ms)
    manifest_check(report, home, address, online)
    membership_check(report, home)
    policy_check(report, home)
    if home.is_aggregator:
        aggregator_figures(report, home, address, online, max_lag, timeout_ms)
    else:
        outbox_check(report, home, max_outbox_age_s)
        store_check(report, home, address, online)
        signing_key_check(report, home, address, online)
    files_check(report, home)
    report.figures["topic"] = settings.topic
    return report
