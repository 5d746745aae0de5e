"""What would leave a node, shown before it does: ``corredor preview``, as a
library call the CLI renders. ``policy diff`` (``node.member.policy_diff``)
runs it under two policies; ``policy check``, ``explain`` and ``audit`` are
``node.member.policy_audit``.

Nothing here writes to the node's store or signs anything: the same release
engine and egress guard as ``publish`` run on the node's raw data, and the
result is described instead of staged.
"""

from __future__ import annotations

from typing import Any

from node.config import Home
from node.member import encounters
from node.member.event_factory import ENCOUNTER_KIND, FLOW_KIND
from node.member.flow_release import flow_body, plan_flow_release
from node.member.ledger_diff import egress_guard
from node.member.member_home import home_policy
from node.member.record_release import encounter_candidates, held_back_records, k_anonymity
from node.policy.guard import EgressGuard
from node.policy.model import KIND_EXCHANGE, Policy
from node.policy.places import unknown_places
from node.policy.records import Linker
from node.policy.release import FlowRelease, coverage, release_flows
from node.store.node_store import NodeStore

SAMPLES = 3


def policy_ref(policy: Policy) -> dict[str, str]:
    return {"id": policy.policy_id, "version": policy.version, "sha256": policy.sha256}


def _use(policy: Policy, kind: str) -> dict[str, Any]:
    rules = policy.exchange(kind)
    return {
        "exchange": KIND_EXCHANGE[kind],
        "kind": kind,
        "shared": rules.shared,
        "legal_basis": policy.legal_basis_for(kind),
        "audiences": list(rules.audiences) if rules.shared else [],
        "purposes": list(rules.purposes) if rules.shared else [],
        "retention_days": rules.retention_days if rules.shared else None,
        "embargo_days": rules.embargo_days if rules.shared else None,
    }


def _flows(
    policy: Policy, country: str, release: FlowRelease, guard: EgressGuard
) -> dict[str, Any]:
    rules = policy.exchanges.flow_statistics
    out = _use(policy, FLOW_KIND)
    if not rules.shared:
        return out | {"fields": [], "events": 0}
    admitted: list[dict[str, Any]] = []
    refused = 0
    detail_total = 0
    for cell in release.cells:
        body = flow_body(cell, country, policy)
        if guard.problem(FLOW_KIND, cell.subject(country), body) is None:
            admitted.append({k: v for k, v in body.items() if v is not None})
            detail_total += 0 if cell.table else cell.count
        else:
            refused += 1
    summary = release.summary()
    return out | {
        "fields": sorted(rules.output_fields()),
        "period": rules.period,
        "dimensions": list(rules.dimensions),
        "tables": [list(t) for t in rules.tables] if rules.tables else [list(rules.dimensions)],
        "min_cell_size": rules.min_cell_size,
        "events": len(admitted),
        "cells": summary["cells"],
        "published_cells": summary["published_cells"],
        "suppressed_cells": summary["suppressed_cells"],
        "primary_suppressed": summary["primary_suppressed"],
        "secondary_suppressed": summary["secondary_suppressed"],
        "coarsened_cells": summary["coarsened_cells"],
        "table_cells": summary["table_cells"],
        "table_suppressed": summary["table_suppressed"],
        "coverage": coverage(release, rules),
        "refused": refused,
        # noisy counts (max(0, noise) included) do not add up to encounters
        "published_total": None if release.private is not None else detail_total,
        "samples": admitted[:SAMPLES],
    }


def _records(
    policy: Policy,
    country: str,
    store: NodeStore,
    guard: EgressGuard,
    *,
    pseudonym_key: bytes,
    has_linkage_key: bool,
    linker: Linker | None,
    flows: FlowRelease | None = None,
) -> dict[str, Any]:
    rules = policy.exchanges.encounter_records
    out = _use(policy, ENCOUNTER_KIND)
    if not rules.linkage_tokens:
        linkage = "not allowed"
    elif has_linkage_key:
        linkage = "added"
    else:
        linkage = "allowed, but this home holds no regional linkage key: sent without tokens"
    if not rules.shared:
        return out | {"fields": [], "events": 0, "linkage_tokens": linkage}
    held = held_back_records(store, policy, encounters.gazetteer(country), flows)
    candidates = list(
        encounter_candidates(
            store,
            policy,
            country,
            pseudonym_key=pseudonym_key,
            linker=linker,
            gazetteer=encounters.gazetteer(country),
            held=held,
        )
    )
    admitted = [b for s, b in candidates if guard.problem(ENCOUNTER_KIND, s, b) is None]
    fields = sorted(
        {k for b in admitted for k, v in b.items() if v is not None}
        | set(guard_fields(guard, ENCOUNTER_KIND))
    )
    return out | {
        "fields": fields,
        "field_rules": {
            name: rule.action + (f" to {rule.to}" if rule.to else "")
            for name, rule in sorted(rules.fields.items())
        },
        "records": len(candidates) + len(held),
        "k_anonymity": k_anonymity(policy),
        "held_back": len(held),
        "events": len(admitted),
        "refused": len(candidates) - len(admitted),
        "linkage_tokens": linkage,
        "samples": [{k: v for k, v in b.items() if v is not None} for b in admitted[:SAMPLES]],
    }


def guard_fields(guard: EgressGuard, kind: str) -> frozenset[str]:
    return guard.allowed_fields(kind)


def preview_policy(
    home: Home,
    policy: Policy,
    *,
    use_ledger: bool = True,
    inputs: encounters.EncounterKeys | None = None,
) -> dict[str, Any]:
    """Exactly what a publish under ``policy`` would let out of this home now."""
    inputs = inputs or encounters.EncounterKeys.load(home)
    with NodeStore(home.store_path) as store:
        linking = policy.exchanges.encounter_records.linkage_tokens and inputs.linker is not None
        guard = egress_guard(store, policy, linkage=linking)
        rules = policy.exchanges.flow_statistics
        release = (
            plan_flow_release(store, policy)
            if use_ledger
            else release_flows(store.iter_flow_inputs(), rules)
        )
        exchanges = [
            _flows(policy, home.country, release, guard),
            _records(
                policy,
                home.country,
                store,
                guard,
                pseudonym_key=inputs.pseudonym_key,
                has_linkage_key=inputs.linker is not None,
                linker=inputs.linker if linking else None,
                flows=release,
            ),
        ]
        for kind in KIND_EXCHANGE:
            if kind not in (FLOW_KIND, ENCOUNTER_KIND):
                exchanges.append(
                    _use(policy, kind) | {"note": "reference data: see `corredor reference`"}
                )
        places = encounters.gazetteer(home.country)
        return {
            "country": home.country,
            "policy": policy_ref(policy),
            "records": store.count_encounters(),
            # Records whose place generalises to _U (node.policy.places).
            "unknown_places": unknown_places(places, store.encounter_places()),
            "places_file": encounters.gazetteer_file(home.country),
            "exchanges": exchanges,
        }


def preview(home: Home) -> dict[str, Any]:
    return preview_policy(home, home_policy(home))
