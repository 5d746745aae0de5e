"""``corredor status``: what an operator checks first on a home, member's or
aggregator's: stored data, the outbox, what was set aside."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from node.config import Home
from node.member.member_home import home_policy, member_store
from node.model.reference import REFERENCE_MODELS
from node.store.picture import PictureStore
from node.store.reference import ReferenceStore


def home_status(home: Home) -> dict[str, object]:
    """What an operator checks first: stored data, outbox, what was set aside."""
    if home.is_aggregator:
        with PictureStore(home.store_path) as store:
            counts = store.counts()
            return {
                "role": "aggregator",
                "topic": home.config.kafka.topic,
                **counts,
                "dead_lettered": store.dead_letter_count(),
                "dead_lettered_by_reference": store.dead_letter_reference_count(),
                "revoked_events": store.revoked_count(),
                "revocations": store.revocations(),
                "restricted_relayed": store.restricted_count(),
                "reference": store.view_counts(),
                "rejected_by_reason": store.rejected_by_reason(),
                "rejected_messages": store.rejected(limit=50),
                # Per country and view: the share of its encounters in exact
                # numbers of the Secretariat's own picture (issue 16).
                "coverage": _coverage(store),
            }
    with member_store(home, staging=False) as store:
        outbox = store.outbox_status()
        identity = store.identity()
        return {
            "role": "member",
            "country": home.country,
            "store_id": identity.store_id if identity is not None else None,
            "schema_version": store.schema_version,
            "revisions_pending_recovery": identity.pending_recovery if identity else None,
            "topic": home.config.kafka.topic,
            "policy_version": home_policy(home).version,
            "records": store.count_encounters(),
            "outbox_pending": outbox.pending,
            "outbox_acknowledged": outbox.acked,
            "oldest_pending_at": _iso(outbox.oldest_pending_at),
            "last_acknowledged_at": _iso(outbox.last_acked_at),
            "reference_items": _reference_items(home),
        }


def _coverage(store: PictureStore) -> list[dict[str, Any]]:
    from node.report.audience import Scope
    from node.report.regional import admitted_cells, coverage

    return coverage(admitted_cells(store, Scope("TS")))


def _reference_items(home: Home) -> dict[str, int]:
    """Reference records held (not withdrawn), by kind."""
    with ReferenceStore(home.store_path) as references:
        return {model.KIND: references.count(model.KIND) for model in REFERENCE_MODELS}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
