"""What a home's policy let out, and whether it holds: ``policy check`` (the
policy files against the model and the regional floor), ``explain`` (the
policy version and rules behind an event this node staged) and ``policy
audit`` (the attacker's model on everything published). Nothing is written
or signed.
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
from node.member.event_factory import ENCOUNTER_KIND, FLOW_KIND
from node.member.member_home import home_policy
from node.member.preview import policy_ref
from node.model.events import RESTRICTED_KINDS
from node.policy.atoms import cell_dimensions
from node.policy.attacker import protection_level
from node.policy.foreign import rules_of_shape
from node.policy.knowledge import audit_releases
from node.policy.ledger import BlockLedger
from node.policy.loader import load_floor, load_policy
from node.policy.model import KIND_EXCHANGE, Policy
from node.policy.shapes import audit_across_shapes
from node.store.node_store import NodeStore

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
        across = audit_across_shapes(store.iter_flow_inputs(), rules, ledgers)
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
        "policy": policy_ref(policy),
        "exchanges": [flows],
        "passes": flows["passes"],
    }
