"""Every reason the aggregator sets a message aside for (``MessageRejected``).

Listed in one place so that the metrics can show each reason at zero before
its first message (an alert on ``corredor_rejected_total{reason=...}`` then
reads 0, not "no data"), and so that docs/cli.md can be checked against it.
A test scans ``node/`` for every reason raised and asserts it is listed here.
"""

from __future__ import annotations

#: In the order a message meets the checks (docs/cli.md lists them alike).
REJECTION_REASONS: tuple[str, ...] = (
    "undecodable",
    "unsigned",
    "unknown-key",
    "producer-mismatch",
    "untrusted-time",
    "revoked-key",
    "expired-key",
    "bad-signature",
    "clock-skew",
    "unknown-kind",
    "undecodable-body",
    "subject-mismatch",
    "invalid-body",
    "below-regional-floor",
    "replay-conflict",
)
