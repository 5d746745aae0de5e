"""Interval protection over every release of a block, checked by an attacker
written in the test (tests/sdc_attacker.py: its own label decoding and its own
MILP), never by the engine's audit."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node.model.codes import age_at, age_band, iso_week, region_of
from node.policy.audit import LinearModel
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.ledger import BlockLedger
from node.policy.loader import load_policy
from node.policy.release import release_flows
from tests.sdc_attacker import Atom, Seen, attack, narrow

POLICIES = Path(__file__).resolve().parents[1] / "policies"
Row = tuple[str, str, date, date, str | None]


def _rules(**kw: Any) -> FlowStatisticsRules:
    base: dict[str, Any] = {
        "shared": True,
        "audiences": ["TS"],
        "purposes": ["statistics"],
        "dimensions": ["nationality", "sex"],
        "min_cell_size": 5,
    }
    return FlowStatisticsRules(**(base | kw))


def _label(day: date, period: str) -> str:
    if period == "iso_week":
        return iso_week(day)
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _atoms(rows: list[Row], rules: FlowStatisticsRules) -> dict[Atom, int]:
    """The test's own count of the fine cells."""
    out: Counter[Atom] = Counter()
    for nat, sex, born, met, prev in rows:
        values = {
            "nationality": nat,
            "nationality_region": region_of(nat),
            "sex": sex,
            "age_band": age_band(age_at(born, met)),
            "previous_country": prev or "_U",
        }
        out[(_label(met, rules.period), tuple(values[d] for d in rules.dimensions))] += 1
    return dict(out)


def _margins(
    atoms: dict[Atom, int], rules: FlowStatisticsRules
) -> list[tuple[frozenset[Atom], int]]:
    out = []
    for margin in rules.margins:
        pos = [list(rules.dimensions).index(d) for d in margin]
        groups: dict[Any, set[Atom]] = {}
        for atom in atoms:
            groups.setdefault((atom[0], tuple(atom[1][p] for p in pos)), set()).add(atom)
        out += [(frozenset(g), sum(atoms[a] for a in g)) for g in groups.values()]
    return out


def run_releases(
    batches: list[list[Row]], rules: FlowStatisticsRules
) -> tuple[list[Seen], list[Seen]]:
    """Publish after each batch of new records; what the audience saw each time,
    and the same without any flow cell (margins only)."""
    rows: list[Row] = []
    ledger: dict[str, BlockLedger] = {}
    seen: list[Seen] = []
    bare: list[Seen] = []
    for batch in batches:
        rows = rows + batch
        release = release_flows(rows, rules, ledger)
        ledger = {b: r.ledger for b, r in release.blocks.items() if r.ledger is not None}
        atoms = _atoms(rows, rules)
        cells = [(c.period, dict(c.dimensions), c.count) for c in release.cells]
        for _, _, count in cells:
            assert count >= rules.min_cell_size
        seen.append(Seen(atoms, cells, _margins(atoms, rules)))
        bare.append(Seen(atoms, [], _margins(atoms, rules)))
    return seen, bare


def assert_resists(batches: list[list[Row]], rules: FlowStatisticsRules) -> None:
    seen, bare = run_releases(batches, rules)
    level = rules.protection or rules.min_cell_size
    names = list(rules.dimensions)
    tables = rules.tables or ()
    found = attack(seen, names, rounding=rules.rounding, minimum=rules.min_cell_size, tables=tables)
    baseline = attack(
        bare, names, rounding=rules.rounding, minimum=rules.min_cell_size, tables=tables
    )
    assert narrow(found, level, baseline) == []


def _rows(spec: dict[tuple[str, str, date], int]) -> list[Row]:
    out: list[Row] = []
    for (nat, sex, day), n in spec.items():
        out += [(nat, sex, date(1990, 1, 1), day, None)] * n
    return out


JAN = date(2024, 1, 10)
FEB = date(2024, 2, 14)


def test_three_release_differencing_under_hnd_policy() -> None:
    """Issue 15, case 1: a hidden 4 and its complement, late records twice; the
    third release must not pin the first release's 4 (nor narrow it below 5)."""
    rules = load_policy(POLICIES / "HND.yaml").exchanges.flow_statistics
    first = _rows(
        {("CUB", "F", JAN): 4, ("VEN", "M", JAN): 9, ("GTM", "F", JAN): 30, ("GTM", "F", FEB): 25}
    )
    late1 = _rows({("VEN", "M", JAN): 2, ("GTM", "F", FEB): 3})
    late2 = _rows({("CUB", "M", JAN): 1, ("VEN", "F", JAN): 1, ("GTM", "M", FEB): 2})
    late3 = _rows({("GTM", "M", JAN): 2})
    assert_resists([first, late1, late2, late3], rules)


def test_an_interval_of_width_three_is_refused() -> None:
    """Issue 15, case 6: a hidden 1 and a hidden 2 beside published cells and a
    public total: exactness alone let both out within 0..3."""
    rules = _rules(margins=[[]], min_cell_size=5)
    rows = _rows(
        {("CUB", "F", JAN): 1, ("CUB", "M", JAN): 2, ("HTI", "F", JAN): 9, ("HTI", "M", JAN): 8}
    )
    seen, bare = run_releases([rows], rules)
    found = attack(seen, ["nationality", "sex"], minimum=5)
    assert found and all(b.width >= 5 for b in found.values()), found
    assert narrow(found, 5, attack(bare, ["nationality", "sex"], minimum=5)) == []


def test_an_interval_over_three_releases_is_refused() -> None:
    """Issue 15, case 6, over time: a hidden 1 that later releases would narrow."""
    rules = _rules(margins=[[]], min_cell_size=5)
    first = _rows({("CUB", "F", JAN): 1, ("CUB", "M", JAN): 6, ("HTI", "F", JAN): 9})
    second = _rows({("HTI", "M", JAN): 6, ("CUB", "M", JAN): 1})
    third = _rows({("HTI", "F", JAN): 1})
    seen, bare = run_releases([first, second, third], rules)
    found = attack(seen, ["nationality", "sex"], minimum=5)
    for (t, atom), b in found.items():
        if seen[t].atoms[atom] < 5:
            assert b.width >= 5, (t, atom, b)
    assert narrow(found, 5, attack(bare, ["nationality", "sex"], minimum=5)) == []


def test_the_ledger_keeps_every_release_and_freezes_a_block() -> None:
    rules = _rules(margins=[[]])
    rows: list[Row] = []
    ledger: dict[str, BlockLedger] = {}
    counts = []
    for i in range(10):
        rows = rows + _rows({("CUB", "F", JAN): 1 + i % 2, ("HTI", "F", JAN): 6})
        release = release_flows(rows, rules, ledger)
        ledger = {
            b: BlockLedger.from_json(r.ledger.to_json())
            for b, r in release.blocks.items()
            if r.ledger is not None
        }
        counts.append(len(ledger["2024-W02"].releases()))
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8]
    # frozen: the last release's cells go out again, whatever arrived since
    assert ledger["2024-W02"].frozen


def test_the_linear_model_audit_on_a_two_by_two_table() -> None:
    # a b | 5      a=1 b=4 c=3 d=2, rows and columns published: each cell's
    # c d | 5      interval is [max(0,..), ..] of width 3 (a in 0..3? no: 1..4)
    model: LinearModel[str] = LinearModel()
    model.add_sum("ab", 5)
    model.add_sum("cd", 5)
    model.add_sum("ac", 4)
    model.add_sum("bd", 6)
    got = {v: (model.interval(v).low, model.interval(v).high) for v in "abcd"}
    assert got == {"a": (0, 4), "b": (1, 5), "c": (0, 4), "d": (1, 5)}
    model.add_order("a", "c")  # a <= c
    model.add_sum("d", 2)
    assert model.interval("a").exact and model.interval("c").low == 3


_NATS = ["CUB", "HTI", "VEN"]


@st.composite
def _batches(draw: st.DrawFn) -> list[list[Row]]:
    n = draw(st.integers(4, 5))
    out = []
    for i in range(n):
        spec: dict[tuple[str, str, date], int] = {}
        cells = draw(
            st.dictionaries(
                st.tuples(st.sampled_from(_NATS), st.sampled_from("FM"), st.integers(0, 1)),
                st.integers(1, 9 if i == 0 else 3),
                min_size=1 if i else 2,
                max_size=5,
            )
        )
        for (nat, sex, week), k in cells.items():
            spec[(nat, sex, JAN + timedelta(weeks=week))] = k
        out.append(_rows(spec))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=_batches(),
    margins=st.sampled_from([[], [[]], [["nationality"]], [[], ["nationality"]]]),
    coarsen=st.sampled_from([[], ["period"]]),
    minimum=st.integers(3, 5),
    protection=st.sampled_from([None, 2, 6]),
)
def test_no_sequence_of_releases_narrows_a_hidden_cell(
    batches: list[list[Row]],
    margins: list[list[str]],
    coarsen: list[str],
    minimum: int,
    protection: int | None,
) -> None:
    rules = _rules(margins=margins, coarsen=coarsen, min_cell_size=minimum, protection=protection)
    assert_resists(batches, rules)


# -- linked tables (issue 16) ----------------------------------------------------


def test_a_small_nationality_total_is_not_the_national_total_minus_the_others() -> None:
    """Week x nationality published beside the national total: HTI's total of 2
    is hidden, and so is a complement (else the total minus the others gives
    it); the test's attacker finds no narrow interval."""
    rules = _rules(tables=[[], ["nationality"], ["nationality", "sex"]], min_cell_size=3)
    spec = {("CUB", "F", JAN): 9, ("CUB", "M", JAN): 7, ("VEN", "F", JAN): 6}
    spec |= {("VEN", "M", JAN): 8, ("HTI", "F", JAN): 1, ("HTI", "M", JAN): 1}
    rows = _rows(spec)
    release = release_flows(rows, rules)
    week = iso_week(JAN)
    labels = {(c.period, tuple(sorted(c.dimensions))): c.count for c in release.cells}
    totals = {(week, (("nationality", n), ("sex", "_T"))) for n in ("CUB", "VEN", "_T")}
    assert (week, (("nationality", "HTI"), ("sex", "_T"))) not in labels
    assert not totals <= set(labels)  # a complement is hidden
    assert all(labels[k] == 16 for k in labels if k[1] == (("nationality", "CUB"), ("sex", "_T")))
    assert_resists([rows], rules)


def test_tables_need_the_detail_and_known_dimensions() -> None:
    with pytest.raises(ValidationError, match="list the detail"):
        _rules(tables=[[], ["nationality"]])
    with pytest.raises(ValidationError, match=r"tables\[1\]: \['age_band'\] not among"):
        _rules(tables=[[], ["age_band"], ["nationality", "sex"]])
    with pytest.raises(ValidationError, match=r"tables\[2\]: the same table as tables\[0\]"):
        _rules(tables=[["sex"], ["nationality", "sex"], ["sex"]])
    with pytest.raises(ValidationError, match="coarsen: \\[nationality\\] instead"):
        _rules(tables=[["nationality_region", "sex"], ["nationality", "sex"]])
    ok = _rules(tables=[[], ["nationality_region"], ["sex", "nationality"]])
    assert ok.table_list() == [(), ("nationality_region",)]


_TABLES = [
    [[], ["nationality"], ["nationality", "sex"]],
    [[], ["nationality", "sex"]],
    [["sex"], ["nationality"], ["nationality", "sex"]],
    [[], ["nationality_region"], ["nationality", "sex"]],
]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=_batches(),
    tables=st.sampled_from(_TABLES),
    margins=st.sampled_from([[], [[]]]),
    coarsen=st.sampled_from([[], ["period"], ["nationality"]]),
    minimum=st.integers(3, 5),
    protection=st.sampled_from([None, 2, 6]),
)
def test_no_sequence_of_releases_with_tables_narrows_a_hidden_cell(
    batches: list[list[Row]],
    tables: list[list[str]],
    margins: list[list[str]],
    coarsen: list[str],
    minimum: int,
    protection: int | None,
) -> None:
    """Four or five releases with late records, the detail published beside
    its tables (national total, week x nationality, by sex, by region): the
    test's own MILP, decoding the _T labels itself, finds no hidden atom and no
    hidden table cell below the minimum narrower than the protection level."""
    rules = _rules(
        tables=tables,
        margins=margins,
        coarsen=coarsen,
        min_cell_size=minimum,
        protection=protection,
    )
    assert_resists(batches, rules)
