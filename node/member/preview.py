"""What would leave a node, shown before it does: preview, policy diff,
policy explain and policy check, as library calls the CLI renders.

Nothing here writes to the node's store or signs anything: the same release
engine and egress guard as ``publish`` run on the node's raw data, and the
result is described instead of staged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.config import Home, policies_dir, regional_policy_path
from node.errors import CodecError, ConfigError, CorredorError
from node.home import event_codec
from node.member import encounters
from node.member.event_factory import ENCOUNTER_KIND, FLOW_KIND
from node.member.flow_release import flow_body, plan_flow_release
from node.member.ledger_diff import egress_guard
from node.member.member_home import home_policy
from node.member.record_release import encounter_candidates, held_back_records, k_anonymity
from node.model.events import RESTRICTED_KINDS
from node.policy.atoms import cell_dimensions
from node.policy.attacker import protection_level
from node.policy.foreign import foreign_blocks, rules_of_shape
from node.policy.guard import EgressGuard
from node.policy.knowledge import audit_releases
from node.policy.ledger import BlockLedger
from node.policy.loader import load_floor, load_policy
from node.policy.model import KIND_EXCHANGE, Policy
from node.policy.places import unknown_places
from node.policy.records import Linker
from node.policy.release import FlowRelease, coverage, release_flows
from node.policy.shapes import audit_across_shapes
from node.store.node_store import NodeStore

SAMPLES = 3


def _policy_ref(policy: Policy) -> dict[str, str]:
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
            "policy": _policy_ref(policy),
            "records": store.count_encounters(),
            # Records whose place generalises to _U (node.policy.places).
            "unknown_places": unknown_places(places, store.encounter_places()),
            "places_file": encounters.gazetteer_file(home.country),
            "exchanges": exchanges,
        }


def preview(home: Home) -> dict[str, Any]:
    return preview_policy(home, home_policy(home))


# -- diff -------------------------------------------------------------------------------

_METRICS = (
    "shared",
    "events",
    "cells",
    "published_cells",
    "suppressed_cells",
    "primary_suppressed",
    "secondary_suppressed",
    "coarsened_cells",
    "table_cells",
    "table_suppressed",
    "tables",
    "coverage",
    "refused",
    "published_total",
    "records",
    "linkage_tokens",
    "period",
    "min_cell_size",
    "retention_days",
)


def policy_diff(home: Home, old_file: Path, new_file: Path) -> dict[str, Any]:
    """This home's data under two policy files, side by side. Both releases are
    computed afresh (without the suppression ledger) so that they compare."""
    floor = load_floor(regional_policy_path())
    old, new = load_policy(old_file, floor), load_policy(new_file, floor)
    for policy, file in ((old, old_file), (new, new_file)):
        if policy.country != home.country:
            raise ConfigError(f"{file} is {policy.country}'s policy; this home is {home.country}")
    inputs = encounters.EncounterKeys.load(home)
    warnings, shape_check = _shape_check(home, old, new)
    before = preview_policy(home, old, use_ledger=False, inputs=inputs)
    after = preview_policy(home, new, use_ledger=False, inputs=inputs)
    exchanges = []
    for a, b in zip(before["exchanges"], after["exchanges"], strict=True):
        metrics = {
            m: {"old": a.get(m), "new": b.get(m)}
            for m in _METRICS
            if (a.get(m) is not None or b.get(m) is not None)
        }
        changed = {m: v for m, v in metrics.items() if v["old"] != v["new"]}
        exchanges.append(
            {
                "exchange": a["exchange"],
                "kind": a["kind"],
                "metrics": metrics,
                "changed": sorted(changed),
                "fields_added": sorted(set(b.get("fields", [])) - set(a.get("fields", []))),
                "fields_removed": sorted(set(a.get("fields", [])) - set(b.get("fields", []))),
                "audiences_added": sorted(set(b["audiences"]) - set(a["audiences"])),
                "audiences_removed": sorted(set(a["audiences"]) - set(b["audiences"])),
                "purposes_added": sorted(set(b["purposes"]) - set(a["purposes"])),
                "purposes_removed": sorted(set(a["purposes"]) - set(b["purposes"])),
            }
        )
    return {
        "country": home.country,
        "records": before["records"],
        "old": {**before["policy"], "file": str(old_file)},
        "new": {**after["policy"], "file": str(new_file)},
        "exchanges": exchanges,
        "warnings": warnings,
        "shape_check": shape_check,
    }


def _shape_check(home: Home, old: Policy, new: Policy) -> tuple[list[str], dict[str, Any] | None]:
    """The release ``publish`` would make under the new policy, with the
    suppression ledger, checked against every release made under another flow
    shape (``node.policy.shapes``): the hidden counts it would have made
    determinable or narrower than their protection level, named, and the cells
    ``publish`` holds back for them."""
    rules = new.exchanges.flow_statistics
    if not rules.shared:
        return [], None
    with NodeStore(home.store_path) as store:
        release = plan_flow_release(store, new)
    check = release.shapes
    if check is None or not check.foreign_blocks:
        return [], None
    data = {
        "foreign_blocks": check.foreign_blocks,
        "exposed": check.exposed,
        "held_back": [
            {"period": c.period, "dimensions": dict(c.dimensions), "count": c.count}
            for c in check.held_back
        ],
    }
    if not check.exposed:
        return [], data
    lines = [
        f"WARNING: {check.foreign_blocks} block(s) were published under another "
        "flow_statistics shape; read with those releases (still on the topics), the new "
        f"policy's release would expose {len(check.exposed)} hidden count(s):"
    ]
    for e in check.exposed:
        dims = ", ".join(f"{k}={v}" for k, v in e["dimensions"].items())
        when = (
            "now" if e["release"] == "now" else f"release {e['release']} of block {e['block']}"
        )
        high = "inf" if e["high"] is None else e["high"]
        what = (
            "DETERMINABLE"
            if e["determinable"]
            else f"narrower than protection {e['protection']}"
        )
        lines.append(
            f"  - {e['period']} {dims} ({e['shape']} shape, {when}): {what}, "
            f"interval [{e['low']}, {high}]"
        )
    held = ", ".join(
        f"{c.period} " + ",".join(f"{k}={v}" for k, v in c.dimensions) for c in check.held_back
    )
    lines.append(
        f"  publish holds back {len(check.held_back)} cell(s) of the new shape for them"
        + (f": {held}" if held else "")
    )
    return lines, data


# -- explain ----------------------------------------------------------------------------


def explain(home: Home, event_id: str) -> dict[str, Any]:
    """The policy version and the rules that produced an event this node staged."""
    with NodeStore(home.store_path) as store:
        row = store.event_record(event_id)
        value = store.outbox_value(event_id)
        if row is None or value is None:
            raise ConfigError(f"no event {event_id} in {home.store_path}'s outbox")
        codec = event_codec()
        try:
            envelope = codec.decode_envelope(codec.split_signed(value)[0])
            body = None if envelope.kind in RESTRICTED_KINDS else codec.decode_event(envelope).body
        except CodecError as exc:
            raise ConfigError(f"event {event_id}: cannot decode: {exc}") from exc
        archived = store.archived_policy(envelope.policy.sha256)
    current = home_policy(home)
    if archived is not None:
        policy = Policy.model_validate(json.loads(archived))
        source = "archived at publish"
    elif current.sha256 == envelope.policy.sha256:
        policy, source = current, "the home's current policy"
    else:
        raise ConfigError(
            f"event {event_id} was let out by {envelope.policy.id} {envelope.policy.version} "
            f"(sha256 {envelope.policy.sha256}), which this home no longer holds"
        )
    out: dict[str, Any] = {
        "event_id": event_id,
        "kind": envelope.kind,
        "subject": envelope.subject,
        "revision": envelope.revision,
        "withdrawal": envelope.is_withdrawal,
        "produced_at": envelope.produced_at.isoformat(),
        "policy": {
            "id": envelope.policy.id,
            "version": envelope.policy.version,
            "sha256": envelope.policy.sha256,
            "source": source,
            "current": current.sha256 == envelope.policy.sha256,
        },
        "legal_basis": policy.legal_basis_for(envelope.kind),
        "audiences": list(envelope.audiences),
        "purposes": list(envelope.purposes),
        "retain_until": envelope.retain_until.isoformat() if envelope.retain_until else None,
        "sent": {
            "topic": row["topic"],
            "partition": row["partition"],
            "offset": row["offset"],
        },
        "rules": _rules_for(policy, envelope.kind, body),
    }
    return out


def _rules_for(policy: Policy, kind: str, body: dict[str, Any] | None) -> list[str]:
    rules: list[str] = []
    if kind == FLOW_KIND:
        flow = policy.exchanges.flow_statistics
        rules.append(f"flow_statistics: counts by {flow.period} and {', '.join(flow.dimensions)}")
        rules.append(f"min_cell_size {flow.min_cell_size}: smaller cells are never sent")
        if body is not None:
            coarse = []
            if body.get("period_type") != {"iso_week": "ISO_WEEK", "month": "MONTH"}.get(
                flow.period, "QUARTER"
            ):
                coarse.append(f"period coarsened to {body.get('period_type')}")
            if body.get("nationality_region") and "nationality" in flow.dimensions:
                coarse.append("nationality coarsened to its region")
            if coarse:
                rules.append("coarsen before suppress: " + "; ".join(coarse))
            if body.get("obs_status") == "E":
                rules.append(f"rounding: count rounded to base {flow.rounding}")
        else:
            rules.append("withdrawal: the cell can no longer be published under the rules")
        if flow.margins:
            margins = ", ".join("[" + ", ".join(m) + "]" for m in flow.margins)
            rules.append(f"secondary suppression against public margins {margins}")
        rules.append("secondary suppression against the previous release (suppression ledger)")
    elif kind == ENCOUNTER_KIND:
        rec = policy.exchanges.encounter_records
        for name, rule in sorted(rec.fields.items()):
            rules.append(f"{name}: {rule.action}" + (f" to {rule.to}" if rule.to else ""))
        rules.append(f"linkage_tokens: {'allowed' if rec.linkage_tokens else 'not allowed'}")
    else:
        rules.append(f"{KIND_EXCHANGE.get(kind, kind)}: shared whole (reference data)")
    rules.append("egress guard: no raw identifying value, no field the policy does not allow")
    return rules


# -- check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    file: Path
    ok: bool
    detail: str  # "CRI 2024.1 sha256 …" or the located errors


def check_policies(files: Iterable[Path] | None = None) -> list[CheckResult]:
    """Validate policy files (default: every policies/*.yaml) against the model
    and the regional floor."""
    floor_path = regional_policy_path()
    results: list[CheckResult] = []
    try:
        floor = load_floor(floor_path)
    except CorredorError as exc:
        return [CheckResult(floor_path, False, str(exc))]
    chosen = sorted(files) if files else sorted(p for p in policies_dir().glob("*.yaml"))
    for file in chosen:
        try:
            if file.resolve() == floor_path.resolve():
                results.append(CheckResult(file, True, f"regional floor {floor.version}"))
                continue
            policy = load_policy(file, floor)
        except CorredorError as exc:
            results.append(CheckResult(file, False, str(exc)))
            continue
        results.append(
            CheckResult(
                file, True, f"{policy.country} {policy.version} sha256 {policy.sha256[:16]}"
            )
        )
    return results


# -- audit ------------------------------------------------------------------------------


def audit(home: Home) -> dict[str, Any]:
    """The attacker's model run on everything this node already published: per
    exchange and audience, the narrowest interval of a hidden count and the cell
    it belongs to, how many hidden counts keep the protection level, and
    whether the published state passes. Reads the suppression ledger (every
    release of every block, with the counts behind it); sends nothing."""
    policy = home_policy(home)
    rules = policy.exchanges.flow_statistics
    with NodeStore(home.store_path) as store:
        entries = store.suppression_ledger(FLOW_KIND)
        ledgers = {block: BlockLedger.from_json(text) for block, text in entries.items()}
        # releases of an older policy shape: read with the current shape's, on
        # the records now (the joint counts every shape is a sum of)
        across = (
            audit_across_shapes(store.iter_flow_inputs(), rules, ledgers)
            if foreign_blocks(rules, ledgers)
            else None
        )
    blocks = []
    narrowest: dict[str, Any] | None = None
    hidden = protected = 0
    failing: list[str] = []
    for block, ledger in sorted(ledgers.items()):
        block_rules = rules_of_shape(rules, ledger.shape, margins=ledger.margins)
        result = audit_releases(ledger.releases(), block_rules)
        hidden += result.hidden
        protected += result.protected
        if not result.passes:
            failing.append(block)
        entry: dict[str, Any] = {
            "block": block,
            "releases": len(ledger.releases()),
            "hidden": result.hidden,
            "protected": result.protected,
            "passes": result.passes,
            "frozen": ledger.frozen,
        }
        if result.narrowest is not None:
            (t, (period, values)), interval = result.narrowest
            cell = {
                "block": block,
                "release": t + 1,
                "period": period,
                "dimensions": cell_dimensions(block_rules.dimensions, values),
                "low": int(interval.low),
                "high": None if interval.high == float("inf") else int(interval.high),
                "width": None if interval.high == float("inf") else int(interval.width),
            }
            entry["narrowest"] = cell
            if narrowest is None or (
                cell["width"] is not None
                and (narrowest["width"] is None or cell["width"] < narrowest["width"])
            ):
                narrowest = cell
        blocks.append(entry)
    flows = {
        "exchange": KIND_EXCHANGE[FLOW_KIND],
        "kind": FLOW_KIND,
        "shared": rules.shared,
        "audiences": list(rules.audiences),
        "protection": protection_level(rules),
        "blocks": len(blocks),
        "hidden": hidden,
        "protected": protected,
        "narrowest": narrowest,
        "passes": not failing and (across is None or across.passes),
        "failing_blocks": failing,
        "per_block": blocks,
        "across_shapes": None
        if across is None
        else {
            "foreign_blocks": across.foreign_blocks,
            "hidden": across.hidden,
            "protected": across.protected,
            "narrowest": across.narrowest,
            "consistent": across.consistent,
            "passes": across.passes,
            "failing": across.failing,
        },
    }
    return {
        "country": home.country,
        "policy": _policy_ref(policy),
        "exchanges": [flows],
        "passes": flows["passes"],
    }
