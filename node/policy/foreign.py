"""Blocks released under an older policy shape: the rules a ledger entry was
made under (``rules_of_shape``) and the blocks of other shapes a ledger holds
(``foreign_blocks``), which ``node.policy.shapes`` checks the current release
against."""

from __future__ import annotations

import json
from collections.abc import Mapping

from node.policy.attacker import protection_level
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.ledger import BlockLedger, ForeignBlock, Margins, shape_of


def rules_of_shape(
    rules: FlowStatisticsRules,
    shape: tuple[str, ...],
    rounding: int | None = None,
    margins: Margins | None = None,
) -> FlowStatisticsRules:
    """The flow rules a ledger entry was made under (its shape), the rest
    current; ``margins``: the shape's margins exactly, when the entry kept them."""
    if tuple(shape) == shape_of(rules) and rounding in (None, rules.rounding):
        return rules
    minimum, period, dimensions, coarsen, listed_margins, *rest = shape
    names = dimensions.split(",") if dimensions else []
    # the sixth element, "tables:...", lists the tables beside the detail (see
    # ``shape_of``); a shape without it published the detail only
    tables: list[list[str]] | None = None
    if rest:
        listed = rest[0].removeprefix("tables:")
        tables = [names, *([t.split(",") if t else [] for t in listed.split(";")])]
    return rules.model_copy(
        update={
            "min_cell_size": int(minimum),
            "period": period,
            "dimensions": names,
            "coarsen": coarsen.split(",") if coarsen else [],
            # "" is both [] and [[]]: unless the entry kept them exactly, the
            # stricter reading (a public total)
            "margins": [m.split(",") if m else [] for m in listed_margins.split(";")]
            if margins is None or ";".join(",".join(m) for m in margins) != listed_margins
            else [list(m) for m in margins],
            "rounding": rules.rounding if rounding is None else rounding,
            "tables": tables,
        }
    )


def foreign_blocks(
    rules: FlowStatisticsRules, ledger: Mapping[str, BlockLedger]
) -> list[ForeignBlock]:
    """Every block of the ledger released under another shape than ``rules'``,
    and every block of an older shape the entries carry (of any shape: after
    a change and back, the first era's releases are foreign to the second's
    history), once each."""
    shape = shape_of(rules)
    out: dict[str, ForeignBlock] = {}

    def keep(fb: ForeignBlock) -> None:
        out.setdefault(json.dumps(fb.to_data(), sort_keys=True), fb)

    for block, entry in sorted(ledger.items()):
        for fb in entry.foreign:
            keep(fb)
        if entry.shape != shape:
            old = rules_of_shape(rules, entry.shape, margins=entry.margins)
            era = 1 + max((fb.era for fb in entry.foreign), default=0)
            keep(
                ForeignBlock(
                    entry.shape,
                    old.rounding,
                    protection_level(old),
                    block,
                    entry.releases(),
                    era,
                    entry.margins,
                )
            )
    return list(out.values())
