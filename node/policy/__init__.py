"""National policies as code: model, loader and the transforms they order."""

from node.policy.atoms import FlowCell, count_cells, period_label, suppress_small_cells
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.loader import load_policy, parse_policy
from node.policy.model import Policy

__all__ = [
    "FlowCell",
    "FlowStatisticsRules",
    "Policy",
    # submodules
    "atoms",
    "attacker",
    "audit",
    "block",
    "count_cells",
    "disclosure",
    "dp_budget",
    "dp_domain",
    "dp_noise",
    "floor",
    "flow_rules",
    "foreign",
    "guard",
    "intervals",
    "joint",
    "knowledge",
    "ledger",
    "load_policy",
    "loader",
    "model",
    "parse_policy",
    "period_label",
    "places",
    "privacy",
    "protect",
    "record_rules",
    "records",
    "relaxation",
    "release",
    "shapes",
    "solver_highs",
    "solver_plain",
    "suppress_small_cells",
    "use_rules",
]
