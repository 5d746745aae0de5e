"""Differential privacy for flow statistics: noisy counts instead of suppression.

A policy whose ``flow_statistics.method`` is ``differential_privacy`` publishes
every cell of a public key domain (the product of each dimension's public
values, ``privacy.domain``; a value outside them counts as ``_O``) with
calibrated integer noise from OpenDP's discrete Laplace mechanism, and no
cell is hidden. Who may learn what is then bounded by the privacy loss
(epsilon) each audience accumulates, not by a minimum cell size.

Accounting (the neighbouring data sets differ by one encounter record):

- a record counts in one period, and in one cell of each released table of
  it (``flow_statistics.tables``, read as suppression reads them: the detail
  and each table it lists, ``_T`` where a table sums): periods are disjoint,
  so they compose in parallel, and an audience's loss is the largest sum of
  the measurements of any one period it received;
- one *measurement* of a period is a binary-tree counter (Chan, Shi and Song
  2011; Dwork, Naor, Pitassi and Rothblum 2010) over its releases: release
  ``t`` (1, 2, ... ``revisions``) adds a leaf, the records that arrived since
  the previous release; each node of the tree (a dyadic range of leaves) is
  noised once, when it is complete, and release ``t`` publishes the sum of
  the nodes that make up leaves 1..t. A record is in one leaf, so in one node
  per level: ``levels = revisions.bit_length()`` nodes per table. The scale
  ``levels * tables / epsilon`` makes the whole tree, every revision
  included, cost ``epsilon_per_release`` (OpenDP's privacy map says so).
  A revision therefore spends nothing more, whatever changed, and publishing
  again a release already made repeats the same noisy values (no new noise);
- releases follow the calendar, not the data: a period gets a new leaf only
  when it has grown a period older (at most one per week of age for weekly
  statistics), so that whether a revision happens says nothing of late records;
- after ``revisions`` releases the period is frozen: its last noisy values
  are sent again, later records are not counted. A measurement is charged
  again only when the policy changes what is measured (dimensions, domain,
  epsilon, revisions): then the new tree is refused if an audience's budget
  would be exceeded.

Post-processing (free under DP): a noisy sum ``S`` is published as ``max(0, S)``
with the interval ``[max(0, S - h), max(0, S + h)]`` (the true count, never
negative, is in it whenever it is in ``[S - h, S + h]``). A cell is first
published when its value is above 0 and stays published after that; an
unpublished cell of the domain is a noisy 0. ``h`` comes from the exact
distribution of the sum of the noise draws, wide enough to hold 95% also for
a cell published only because its noise came out above 0
(``published_half_width``).

The state of each period's tree (the true counts at each leaf and the noisy
nodes) is derived from raw data and stays on the node (``privacy_state``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from node.errors import PolicyError
from node.policy.atoms import period_label
from node.policy.dp_budget import PERIOD_TYPE, Spend, period_type
from node.policy.dp_domain import (
    REGION_PREFIX,
    TOTAL,
    Row,
    cell_keys,
    domain_of,
    is_region_table,
    is_table_key,
    key_dimensions,
    label_of,
    period_index,
    privacy_rules,
    public_value,
    tables_of,
)
from node.policy.dp_noise import (
    NoiseSource,
    epsilon_of,
    levels,
    opendp_noise,
    prefix_nodes,
    published_half_width,
    scale_for,
)
from node.policy.flow_rules import FlowStatisticsRules

# -- the state of one period -------------------------------------------------------------


@dataclass
class PeriodState:
    """One period's tree, kept on the node (counts derived from raw data)."""

    shape: str
    measurement: str
    epsilon: float
    scale: float
    revisions: int
    #: the period's age (in periods) at each release made, oldest first
    ages: list[int] = field(default_factory=list)
    #: cell -> its true count at each release (cumulative)
    counts: dict[str, list[int]] = field(default_factory=dict)
    #: cell -> "level:index" -> the noisy value of that node
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: cells published once (they stay published)
    shown: set[str] = field(default_factory=set)
    serial: int = 1

    def to_json(self) -> str:
        return json.dumps(
            {
                "shape": self.shape,
                "measurement": self.measurement,
                "epsilon": self.epsilon,
                "scale": self.scale,
                "revisions": self.revisions,
                "ages": self.ages,
                "counts": {k: v for k, v in sorted(self.counts.items()) if any(v)},
                "nodes": dict(sorted(self.nodes.items())),
                "shown": sorted(self.shown),
                "serial": self.serial,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> PeriodState:
        d = json.loads(text)
        return cls(
            d["shape"],
            d["measurement"],
            float(d["epsilon"]),
            float(d["scale"]),
            int(d["revisions"]),
            [int(a) for a in d["ages"]],
            {k: [int(n) for n in v] for k, v in d["counts"].items()},
            {k: {n: int(x) for n, x in v.items()} for k, v in d["nodes"].items()},
            set(d["shown"]),
            int(d.get("serial", 1)),
        )


def shape_of(rules: FlowStatisticsRules) -> str:
    """What a measurement depends on besides the data: changed = measured afresh."""
    privacy = privacy_rules(rules)
    text = json.dumps(
        [
            rules.period,
            list(rules.dimensions),
            [list(t) for t in tables_of(rules)],
            {k: list(v) for k, v in sorted(privacy.domain.items())},
            privacy.mechanism,
            privacy.epsilon_per_release,
            privacy.revisions,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- a release ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoisyCell:
    """One published noisy cell."""

    period: str
    dimensions: tuple[tuple[str, str], ...]
    count: int
    ci95: tuple[int, int]
    scale: float
    epsilon: float
    true_count: int  # stays home: for tests and the bench, never published
    #: A cell of a table other than the detail (it carries _T where it sums).
    table: bool = False


@dataclass
class PrivateRelease:
    cells: list[NoisyCell] = field(default_factory=list)
    #: period -> its state after this release (only those that changed)
    states: dict[str, str] = field(default_factory=dict)
    #: every measurement the audiences receive in this release
    spends: list[Spend] = field(default_factory=list)
    #: cells of the domain released, every table's, and the detail's alone
    domain_cells: int = 0
    detail_cells: int = 0
    frozen: int = 0
    #: The records counted (stays home: whether there was anything to count).
    records: int = 0

    def summary(self) -> dict[str, Any]:
        """The counts a suppression release's summary has (``cells`` the detail's
        cells of the domain; nothing is hidden: every cell is published or a
        noisy 0), and noisy_cells (every published cell, table cells included)."""
        return {
            "cells": self.detail_cells,
            "published_cells": len(self.cells),
            "suppressed_cells": 0,
            "primary_suppressed": 0,
            "secondary_suppressed": 0,
            "coarsened_cells": 0,
            "table_cells": sum(c.table for c in self.cells),
            "table_suppressed": 0,
            "noisy_cells": len(self.cells),
        }


def count_cells(rows: Iterable[Row], rules: FlowStatisticsRules) -> dict[str, Counter[str]]:
    """period -> cell key -> true count, in every table."""
    names = tuple(rules.dimensions)
    domains = {n: frozenset(domain_of(rules, n)) for n in names}
    nat = names.index("nationality") if "nationality" in names else -1
    regions = frozenset(domain_of(rules, "nationality_region")) if nat >= 0 else frozenset()
    tables = [([n in t for n in names], is_region_table(rules, t)) for t in tables_of(rules)]
    out: dict[str, Counter[str]] = {}
    for row in rows:
        values = [public_value(n, row, domains[n]) for n in names]
        region = public_value("nationality_region", row, regions) if nat >= 0 else ""
        counter = out.setdefault(period_label(row[3], rules.period), Counter())
        for keep, by_region in tables:
            key = [v if k else TOTAL for v, k in zip(values, keep, strict=True)]
            if by_region:
                key[nat] = REGION_PREFIX + region
            counter["|".join(key)] += 1
    return out


def release_private(
    rows: Iterable[Row],
    rules: FlowStatisticsRules,
    states: Mapping[str, str],
    today: date,
    noise: NoiseSource | None = None,
) -> PrivateRelease:
    """Release every period from the first with data to the last (a period
    with no record is released as well, as noisy zeros); see the module doc."""
    privacy = privacy_rules(rules)
    noise = noise or opendp_noise
    counted = count_cells(rows, rules)
    shape = shape_of(rules)
    scale = scale_for(rules)
    epsilon = epsilon_of(rules)
    if epsilon > privacy.epsilon_per_release * (1 + 1e-9):
        raise PolicyError(
            f"flow_statistics.privacy: the tree would cost epsilon {epsilon}, more than "
            f"epsilon_per_release {privacy.epsilon_per_release}"
        )
    keys = cell_keys(rules)
    detail_keys = sum(not is_table_key(k) for k in keys)
    # a state of another period type (the policy changed it) is not read: its
    # periods are measured afresh, and the budget counts both (check_budget)
    states = {p: st for p, st in states.items() if period_type(p) == PERIOD_TYPE[rules.period]}
    indices = [period_index(p, rules.period) for p in (*counted, *states)]
    today_index = period_index(period_label(today, rules.period), rules.period)
    out = PrivateRelease()
    out.records = sum(
        n for counter in counted.values() for k, n in counter.items() if not is_table_key(k)
    )
    if not indices:
        return out
    for index in range(min(indices), max(indices) + 1):
        period = label_of(index, rules.period)
        old = PeriodState.from_json(states[period]) if period in states else None
        state = old
        if state is None or state.shape != shape:
            serial = state.serial + 1 if state is not None else 1
            state = PeriodState(
                shape,
                f"{shape}:{period}:{serial}",
                epsilon,
                scale,
                privacy.revisions,
                serial=serial,
            )
        age = max(0, today_index - index)
        grows = not state.ages or (len(state.ages) < state.revisions and age > state.ages[-1])
        dirty = grows
        if grows:
            _add_leaf(state, counted.get(period, Counter()), keys, age, noise)
        elif len(state.ages) >= state.revisions:
            out.frozen += 1
        for audience in rules.audiences:
            out.spends.append(Spend(audience, period, state.measurement, state.epsilon))
        out.domain_cells += len(keys)
        out.detail_cells += detail_keys
        t = len(state.ages)
        nodes = prefix_nodes(t)
        h = published_half_width(len(nodes), state.scale)
        for key in keys:
            noisy = sum(state.nodes.get(key, {}).get(f"{j}:{i}", 0) for j, i in nodes)
            value = max(0, noisy)
            if value <= 0 and key not in state.shown:
                continue
            if key not in state.shown:
                state.shown.add(key)
                dirty = True
            counts = state.counts.get(key)
            out.cells.append(
                NoisyCell(
                    period,
                    key_dimensions(rules, key),
                    value,
                    (max(0, noisy - h), max(0, noisy + h)),
                    state.scale,
                    state.epsilon,
                    counts[-1] if counts else 0,
                    table=is_table_key(key),
                )
            )
        if dirty:
            out.states[period] = state.to_json()
    return out


def _add_leaf(
    state: PeriodState,
    now: Mapping[str, int],
    keys: Sequence[str],
    age: int,
    noise: NoiseSource,
) -> None:
    """Release ``t`` = one more leaf: record every cell's count, then noise every
    node the leaf completes (one vector, one OpenDP call)."""
    state.ages.append(age)
    t = len(state.ages)
    for key in keys:
        history = state.counts.setdefault(key, [0] * (t - 1))
        history.extend([history[-1] if history else 0] * (t - 1 - len(history)))
        history.append(int(now.get(key, 0)))
    complete = [(j, t >> j) for j in range(levels(state.revisions)) if t % (1 << j) == 0]
    wanted: list[tuple[str, str]] = []
    true: list[int] = []
    for key in keys:
        history = state.counts[key]
        for j, i in complete:
            end = i << j
            start = end - (1 << j)
            before = history[start - 1] if start > 0 else 0
            wanted.append((key, f"{j}:{i}"))
            true.append(history[end - 1] - before)
    for (key, node), value in zip(wanted, noise(true, state.scale), strict=True):
        state.nodes.setdefault(key, {})[node] = value
    # counts of cells never seen stay implicit (zeros) in the stored state
    for key in keys:
        if not any(state.counts[key]):
            del state.counts[key]
