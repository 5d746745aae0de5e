"""``corredor policy diff``: this home's data under two policy files, side by
side, and what the new policy's release would expose of releases made under
another flow shape. Nothing is written or signed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.config import Home, regional_policy_path
from node.errors import ConfigError
from node.member import encounters
from node.member.flow_release import plan_flow_release
from node.member.preview import preview_policy
from node.policy.loader import load_floor, load_policy
from node.policy.model import Policy
from node.store.node_store import NodeStore

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
        when = "now" if e["release"] == "now" else f"release {e['release']} of block {e['block']}"
        high = "inf" if e["high"] is None else e["high"]
        what = (
            "DETERMINABLE" if e["determinable"] else f"narrower than protection {e['protection']}"
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
