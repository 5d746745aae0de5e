"""The privacy-loss ledger of differentially private flow statistics
(``node.policy.privacy``): what one release charges each audience, the check
that no audience goes past its budget, and what each has spent.

An audience's loss on one period is the sum of the measurements it received
of that period (they compose sequentially); periods of one type are disjoint
(parallel composition), so its loss is the largest over them; periods of
different types (a policy that moved from weeks to months) overlap, so the
worst of each type adds up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.errors import PolicyError
from node.policy.dp_domain import privacy_rules
from node.policy.flow_rules import FlowStatisticsRules

#: The exchange the ledger keys its rows by.
EXCHANGE = "flow_statistics"


class PrivacyBudgetExceeded(PolicyError):
    """A release would take an audience past its privacy-loss budget."""


@dataclass(frozen=True)
class Spend:
    """One measurement charged to one audience on one period."""

    audience: str
    period: str
    measurement: str
    epsilon: float


# -- the budget --------------------------------------------------------------------------


def check_budget(
    rules: FlowStatisticsRules,
    spends: Iterable[Spend],
    charged: Mapping[tuple[str, str], Mapping[str, float]],
) -> list[Spend]:
    """The spends not yet in the ledger, after checking that no audience goes
    past its budget on any period with them (``charged``: (audience, period) ->
    measurement -> epsilon, from the ledger). Raises ``PrivacyBudgetExceeded``,
    naming the exchange, audience, period, spent and remaining budget."""
    privacy = privacy_rules(rules)
    new: list[Spend] = []
    totals: dict[tuple[str, str], dict[str, float]] = {k: dict(v) for k, v in charged.items()}
    for spend in spends:
        have = totals.setdefault((spend.audience, spend.period), {})
        if spend.measurement in have:
            continue
        spent = sum(have.values()) + _other_types(totals, spend.audience, spend.period)
        budget = float(privacy.budget[spend.audience])
        if spent + spend.epsilon > budget * (1 + 1e-9):
            raise PrivacyBudgetExceeded(
                f"{EXCHANGE} to audience {spend.audience!r}, period {spend.period}: a new "
                f"measurement (epsilon {spend.epsilon:g}) would overspend the privacy budget: "
                f"spent {spent:g} of {budget:g}, remaining {max(0.0, budget - spent):g}. "
                "Refused; nothing was staged. A policy change re-measures periods already "
                "released: keep their settings, or raise the budget within the regional floor."
            )
        have[spend.measurement] = spend.epsilon
        new.append(spend)
    return new


PERIOD_TYPE = {"iso_week": "week", "month": "month", "quarter": "quarter"}


def period_type(label: str) -> str:
    """week, month or quarter: the type of a period label."""
    return "week" if "-W" in label else "quarter" if "-Q" in label else "month"


def _other_types(
    charged: Mapping[tuple[str, str], Mapping[str, float]], audience: str, period: str
) -> float:
    """What measurements under another period type (a policy that moved from
    weeks to months) cost the audience: a week overlaps a month, so their
    losses add. Counted conservatively: the largest over each other type."""
    mine = period_type(period)
    worst: dict[str, float] = {}
    for (who, label), measurements in charged.items():
        kind = period_type(label)
        if who == audience and kind != mine:
            worst[kind] = max(worst.get(kind, 0.0), sum(measurements.values()))
    return sum(worst.values())


def spent_by_audience(
    charged: Mapping[tuple[str, str], Mapping[str, float]],
) -> dict[str, float]:
    """audience -> its privacy loss: the largest sum over any one period
    (periods of one type are disjoint), added up over period types (which
    overlap), an upper bound."""
    per_type: dict[tuple[str, str], float] = {}
    for (audience, period), measurements in charged.items():
        key = (audience, period_type(period))
        per_type[key] = max(per_type.get(key, 0.0), sum(measurements.values()))
    out: dict[str, float] = {}
    for (audience, _kind), spent in per_type.items():
        out[audience] = out.get(audience, 0.0) + spent
    return out
