"""Flow statistics rules one by one: primary suppression, coarsen before
suppress, complementary suppression, rounding, the suppression ledger."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from node.policy.atoms import coarser_period, round_count
from node.policy.disclosure import determined
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.ledger import BlockLedger
from node.policy.release import FlowRelease, release_flows

MONDAY = date(2024, 1, 8)  # 2024-W02


def _rules(**kw: Any) -> FlowStatisticsRules:
    base: dict[str, Any] = {
        "shared": True,
        "audiences": ["TS"],
        "purposes": ["statistics"],
        "dimensions": ["nationality", "sex"],
        "min_cell_size": 5,
    }
    return FlowStatisticsRules(**(base | kw))


def _rows(spec: dict[tuple[str, str, int], int]) -> list[tuple[str, str, date, date, None]]:
    """(nationality, sex, week offset) -> n rows in that week."""
    rows = []
    for (nat, sex, week), n in spec.items():
        met = MONDAY + timedelta(weeks=week)
        rows += [(nat, sex, date(1990, 1, 1), met, None)] * n
    return rows


def _published(release: FlowRelease) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
    return {(c.period, c.dimensions): c.count for c in release.cells}


def test_determined_on_a_two_by_two_table() -> None:
    # rows a+b, c+d and columns a+c, b+d known: a cycle, nothing determined
    assert determined([{"a", "b"}, {"c", "d"}, {"a", "c"}, {"b", "d"}]) == set()
    # publishing d as well determines everything through the cycle
    assert determined([{"a", "b"}, {"c", "d"}, {"a", "c"}, {"b", "d"}, {"d"}]) == {
        "a",
        "b",
        "c",
        "d",
    }
    # a bridge: a is determined by a+b+c and b+c, not b or c
    assert determined([{"a", "b", "c"}, {"b", "c"}]) == {"a"}


def test_primary_suppression() -> None:
    release = release_flows(_rows({("CUB", "F", 0): 6, ("CUB", "M", 0): 4}), _rules())
    assert _published(release) == {("2024-W02", (("nationality", "CUB"), ("sex", "F"))): 6}
    assert release.primary == 1 and release.secondary == 0


def test_complementary_suppression_protects_against_a_public_total() -> None:
    # the weekly total (10) is public: publishing F=6 would give M=4 away
    rows = _rows({("CUB", "F", 0): 6, ("CUB", "M", 0): 4})
    release = release_flows(rows, _rules(margins=[[]]))
    assert release.cells == [] and release.secondary == 1
    # with a third cell big enough, the smallest other cell is hidden instead
    rows = _rows({("CUB", "F", 0): 6, ("CUB", "M", 0): 4, ("HTI", "F", 0): 9})
    release = release_flows(rows, _rules(margins=[[]]))
    assert list(_published(release).values()) == [9]


def test_coarsen_week_to_month_before_suppressing() -> None:
    # CUB,F has 3 in one week and 4 in the next: each is too small, the month is not
    rows = _rows({("CUB", "F", 0): 3, ("CUB", "F", 1): 4, ("HTI", "M", 0): 6, ("HTI", "M", 1): 7})
    release = release_flows(rows, _rules(coarsen=["period"]))
    assert _published(release) == {
        ("2024-01", (("nationality", "CUB"), ("sex", "F"))): 7,
        ("2024-W02", (("nationality", "HTI"), ("sex", "M"))): 6,
        ("2024-W03", (("nationality", "HTI"), ("sex", "M"))): 7,
    }
    month = next(c for c in release.cells if c.period == "2024-01")
    assert month.period_type == "month" and month.coarsened


def test_coarsen_nationality_to_region() -> None:
    rows = _rows({("CUB", "F", 0): 3, ("HTI", "F", 0): 2, ("CHN", "F", 0): 8})
    release = release_flows(rows, _rules(coarsen=["nationality"]))
    assert _published(release) == {
        ("2024-W02", (("nationality_region", "Caribbean"), ("sex", "F"))): 5,
        ("2024-W02", (("nationality", "CHN"), ("sex", "F"))): 8,
    }


def test_a_cell_still_too_small_after_coarsening_is_suppressed() -> None:
    rows = _rows({("CUB", "F", 0): 1, ("CUB", "F", 1): 1, ("CHN", "M", 0): 5})
    release = release_flows(rows, _rules(coarsen=["period", "nationality"]))
    assert list(_published(release).values()) == [5]
    assert release.primary == 2


def test_a_week_belongs_to_the_month_of_its_thursday() -> None:
    assert coarser_period("2024-W05", "iso_week") == "2024-02"  # Mon 29 Jan, Thu 1 Feb
    assert coarser_period("2024-W04", "iso_week") == "2024-01"
    assert coarser_period("2024-11", "month") == "2024-Q4"


@pytest.mark.parametrize(
    ("count", "base", "minimum", "expected"),
    [(7, 1, 5, 7), (7, 5, 5, 5), (8, 5, 5, 10), (12, 5, 5, 10), (5, 3, 5, 6), (11, 10, 10, 10)],
)
def test_rounding_to_base_never_below_the_minimum(
    count: int, base: int, minimum: int, expected: int
) -> None:
    assert round_count(count, base, minimum) == expected


def test_rounded_cells_are_marked_estimated() -> None:
    rows = _rows({("CUB", "F", 0): 8})
    (cell,) = release_flows(rows, _rules(rounding=5)).cells
    assert cell.count == 10 and cell.estimated


def test_the_ledger_keeps_a_coarsened_group_together_on_republishing() -> None:
    rules = _rules(coarsen=["period"])
    first = release_flows(_rows({("CUB", "F", 0): 3, ("CUB", "F", 1): 4}), rules)
    ledger = {b: r.ledger for b, r in first.blocks.items() if r.ledger}
    # more records: each week is now big enough alone, but publishing weeks
    # would let anyone subtract them from the month published before
    second = release_flows(_rows({("CUB", "F", 0): 5, ("CUB", "F", 1): 6}), rules, ledger)
    assert [c.period for c in second.cells] == ["2024-01"]
    fresh = release_flows(_rows({("CUB", "F", 0): 5, ("CUB", "F", 1): 6}), rules)
    assert sorted(c.period for c in fresh.cells) == ["2024-W02", "2024-W03"]


def test_republishing_does_not_reveal_a_hidden_cell_by_difference() -> None:
    rules = _rules(margins=[[]])
    first_rows = _rows({("CUB", "F", 0): 6, ("CUB", "M", 0): 3, ("HTI", "F", 0): 9})
    first = release_flows(first_rows, rules)
    # CUB,M (3) is suppressed and CUB,F (6) hidden with it against the public total
    assert [c.dimensions for c in first.cells] == [(("nationality", "HTI"), ("sex", "F"))]
    ledger = {b: r.ledger for b, r in first.blocks.items() if r.ledger}
    # a new HTI,M cell arrives and the second release publishes CUB,F = 6. An
    # outsider does not know CUB,F did not change, but counts only grow: CUB,M
    # of the first release is 9 - CUB,F(1st) in 3..9, and at most CUB,M(2nd),
    # which the second total bounds. The audit keeps that interval wide.
    second_rows = first_rows + _rows({("HTI", "M", 0): 5})
    second = release_flows(second_rows, rules, ledger)
    audit = second.blocks["2024-W02"].audit
    assert audit is not None and audit.passes
    assert audit.narrowest is not None and audit.narrowest[1].width >= 5


def test_an_unchanged_block_republishes_the_same_cells_from_its_ledger() -> None:
    rules = _rules(coarsen=["period", "nationality"], margins=[[], ["nationality"]])
    rows = _rows(
        {("CUB", "F", 0): 3, ("CUB", "F", 1): 4, ("HTI", "M", 0): 6, ("CHN", "F", 1): 2}
    ) + _rows({("HTI", "F", 1): 9, ("CUB", "M", 0): 7})
    first = release_flows(rows, rules)
    ledger = {
        b: BlockLedger.from_json(r.ledger.to_json()) for b, r in first.blocks.items() if r.ledger
    }
    again = release_flows(rows, rules, ledger)
    assert again.cells == first.cells and again.summary() == first.summary()


def test_a_higher_minimum_is_not_bypassed_by_an_unchanged_block() -> None:
    rows = _rows({("CUB", "F", 0): 6, ("HTI", "M", 0): 12})
    first = release_flows(rows, _rules())
    ledger = {b: r.ledger for b, r in first.blocks.items() if r.ledger}
    stricter = release_flows(rows, _rules(min_cell_size=10), ledger)
    assert [c.count for c in stricter.cells] == [12]
