"""Issue 15, case 3: a policy shape change must not undo what earlier releases
hid. Checked with the attacker written in the test (tests/sdc_attacker.py,
``attack_shapes``: its own decoding of every shape's labels over the joint
counts, its own MILP), never with the engine's audit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypedDict

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from node.model.codes import age_at, age_band, iso_week
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.foreign import foreign_blocks, rules_of_shape
from node.policy.ledger import MAX_RELEASES, BlockLedger, shape_of
from node.policy.loader import load_policy
from node.policy.release import release_flows
from node.policy.shapes import audit_across_shapes
from tests.sdc_attacker import Bounds_, Joint, ShapeSeen, attack_shapes, own_atom

POLICIES = Path(__file__).resolve().parents[1] / "policies"
Row = tuple[str, str, date, date, str | None]


class _Shape(TypedDict):
    """What a ShapeSeen takes from the policy, beside the truth and the cells."""

    period: str
    names: Sequence[str]
    margins: Sequence[Sequence[str]]
    minimum: int
    rounding: int
    tables: Sequence[Sequence[str]]


def _joint(rows: list[Row]) -> dict[Joint, int]:
    """The test's own count of the finest keys every shape is a sum of."""
    out: Counter[Joint] = Counter()
    for nat, sex, born, met, prev in rows:
        week = iso_week(met)
        out[
            (
                week,
                f"{met.year}-{met.month:02d}",
                nat,
                sex,
                age_band(age_at(born, met)),
                prev or "_U",
            )
        ] += 1
    return dict(out)


def _rows(spec: dict[tuple[str, str, date], int]) -> list[Row]:
    out: list[Row] = []
    for (nat, sex, day), n in spec.items():
        out += [(nat, sex, date(1990, 1, 1), day, None)] * n
    return out


def run(
    steps: list[tuple[FlowStatisticsRules, list[Row]]],
) -> tuple[list[ShapeSeen], list[ShapeSeen], list[Any]]:
    """Publish after each (rules, new records) step with the ledger carried over;
    what the audience saw, the same with no flow cell, and each release."""
    rows: list[Row] = []
    ledger: dict[str, BlockLedger] = {}
    seen: list[ShapeSeen] = []
    bare: list[ShapeSeen] = []
    releases = []
    for rules, batch in steps:
        rows = rows + batch
        release = release_flows(rows, rules, ledger)
        # the ledger goes through its stored form, as between two publishes
        ledger = {
            b: BlockLedger.from_json(r.ledger.to_json())
            for b, r in release.blocks.items()
            if r.ledger is not None
        }
        cells = [(c.period, dict(c.dimensions), c.count) for c in release.cells]
        for _, _, count in cells:
            assert count >= rules.min_cell_size
        common: _Shape = {
            "period": rules.period,
            "names": list(rules.dimensions),
            "margins": rules.margins,
            "minimum": rules.min_cell_size,
            "rounding": rules.rounding,
            "tables": rules.tables or (),
        }
        seen.append(ShapeSeen(_joint(rows), cells=cells, **common))
        bare.append(ShapeSeen(_joint(rows), cells=[], **common))
        releases.append(release)
    return seen, bare, releases


def narrow_across(
    steps: list[tuple[FlowStatisticsRules, list[Row]]],
) -> list[tuple[Any, Bounds_]]:
    seen, bare, _ = run(steps)
    found = attack_shapes(seen)
    baseline = attack_shapes(bare)
    out = []
    for (t, atom), b in sorted(found.items()):
        rules = steps[t][0]
        level = rules.protection or rules.min_cell_size
        narrower = b.width < level and baseline[(t, atom)].width > b.width
        if narrower and not new_and_pinned_before(seen, t, atom, b):
            out.append(((t, atom), b))
    return out


def new_and_pinned_before(seen: list[ShapeSeen], t: int, atom: Any, bounds: Bounds_) -> bool:
    """The limit docs/policies.md names ("no release can hide what does not
    exist yet"): a count with no record at any release before ``t``, which
    the cells published before ``t``, with the margins and counts that only
    grow, already pin as tightly as everything does. No release from ``t`` on
    can widen it (the margins are the country's own publication), and no
    release before ``t`` had the count to protect. Read by the test's own
    attacker, with every cell from ``t`` on taken out."""
    if any(n for s in range(t) for j, n in seen[s].joint.items() if own_atom(j, seen[t]) == atom):
        return False
    before = [x if s < t else replace(x, cells=[]) for s, x in enumerate(seen)]
    return attack_shapes(before)[(t, atom)].width <= bounds.width


W2, W3, W4 = date(2024, 1, 10), date(2024, 1, 17), date(2024, 1, 24)


def _dom(tables: bool = False) -> tuple[FlowStatisticsRules, FlowStatisticsRules]:
    """DOM's rules, and a version that drops ``sex`` and publishes its national
    total beside the nationalities (tables ``[[], [nationality]]``): the weekly
    national total is a table cell over every nationality.

    ``tables``: the old version as shipped, its tables (the national total, by
    nationality, by sex, the detail) protected with it; else the old version
    publishes the detail only, as DOM did before it declared tables (then the
    coarsened month below is published and the change must not undo it)."""
    shipped = load_policy(POLICIES / "DOM.yaml").exchanges.flow_statistics
    data = shipped.model_dump()
    if not tables:
        data["tables"] = None
    old = FlowStatisticsRules.model_validate(data)
    data["dimensions"] = ["nationality"]
    # a policy naming a table by sex without the dimension does not load
    data["tables"] = [[], ["nationality"]]
    return old, FlowStatisticsRules.model_validate(data)


DOM_ROWS = _rows(
    {
        ("HTI", "F", W2): 2,
        ("HTI", "F", W3): 4,
        ("HTI", "F", W4): 5,
        ("HTI", "M", W2): 6,
        ("HTI", "M", W3): 6,
        ("HTI", "M", W4): 6,
        ("VEN", "F", W2): 7,
        ("VEN", "M", W2): 8,
    }
)


def test_dropping_sex_does_not_reveal_a_week_coarsening_hid() -> None:
    """Issue 15, case 3: DOM publishes by week and sex, and coarsens HTI women's
    January into one month cell (11) because week 2 holds 2. A version that
    drops ``sex`` would publish HTI's week totals; with the weekly HTI men
    still on the topic, week 2's women are 8 - 6 = 2, W3's and W4's follow
    from theirs. The engine holds back what would pin it."""
    old, new = _dom()
    steps = [(old, DOM_ROWS), (new, [])]
    seen, _, releases = run(steps)
    month = [c for c in seen[0].cells if c[0] == "2024-01"]
    assert month == [("2024-01", {"nationality": "HTI", "sex": "F"}, 11)], seen[0].cells
    assert narrow_across(steps) == []
    week2 = attack_shapes(seen)[(0, ("2024-W02", ("HTI", "F")))]
    assert week2.width >= old.min_cell_size, week2
    check = releases[1].shapes
    assert check is not None and check.held_back
    assert any(
        e["period"] == "2024-W02"
        and e["dimensions"] == {"nationality": "HTI", "sex": "F"}
        and e["determinable"]
        for e in check.exposed
    ), check.exposed


def test_dropping_sex_with_the_shipped_tables_reveals_nothing() -> None:
    """The same change from DOM as shipped: its weekly tables (total, by
    nationality, by sex) already make the first release hide more, and the
    release after the change is checked against every table cell of the old
    one (a cell of a table below the minimum is a sensitive count too)."""
    old, new = _dom(tables=True)
    steps = [(old, DOM_ROWS), (new, [])]
    seen, _, releases = run(steps)
    assert any("_T" in dims.values() for _, dims, _ in seen[0].cells), seen[0].cells
    assert any("_T" in dims.values() for _, dims, _ in seen[1].cells), seen[1].cells
    assert narrow_across(steps) == []
    check = releases[1].shapes
    assert check is not None and check.foreign_blocks >= 1
    late = _rows({("HTI", "F", W3): 1, ("VEN", "M", W3): 1})
    assert narrow_across([*steps, (new, late), (old, [])]) == []


def test_a_shape_with_tables_reads_back_from_its_ledger_entry() -> None:
    """A ledger entry's shape names the tables beside the detail; the rules
    read back from it publish the same tables (an older shape with tables is
    modelled with them, not refused)."""
    old, new = _dom(tables=True)
    back = rules_of_shape(new, shape_of(old))
    assert shape_of(back) == shape_of(old)
    assert back.table_list() == old.table_list()
    assert rules_of_shape(old, shape_of(new)).table_list() == new.table_list()
    bare, _ = _dom()
    assert rules_of_shape(old, shape_of(bare)).table_list() == []


def test_late_records_after_the_change_are_checked_against_the_old_shape() -> None:
    """The old shape's releases stay in the model of every later release, not
    only the first one after the change (they travel in the ledger)."""
    old, new = _dom()
    late = _rows({("HTI", "M", W3): 1, ("VEN", "F", W3): 6, ("VEN", "M", W3): 6})
    steps = [(old, DOM_ROWS), (new, []), (new, late), (new, _rows({("VEN", "M", W4): 4}))]
    assert narrow_across(steps) == []
    _, _, releases = run(steps)
    for release in releases[1:]:
        assert release.shapes is not None and release.shapes.foreign_blocks >= 1
    ledger = releases[-1].blocks["2024-01"].ledger
    assert ledger is not None and ledger.foreign and len(ledger.releases()) <= MAX_RELEASES


def test_back_to_the_old_shape_keeps_both() -> None:
    """Old -> new -> old again: each shape's releases stay in the model."""
    old, new = _dom()
    more = _rows({("HTI", "F", W3): 1, ("VEN", "M", W3): 9})
    assert narrow_across([(old, DOM_ROWS), (new, []), (old, more), (new, [])]) == []


def _seen(rules: FlowStatisticsRules, rows: list[Row], release: Any, bare: bool) -> ShapeSeen:
    cells = [] if bare else [(c.period, dict(c.dimensions), c.count) for c in release.cells]
    common: _Shape = {
        "period": rules.period,
        "names": list(rules.dimensions),
        "margins": rules.margins,
        "minimum": rules.min_cell_size,
        "rounding": rules.rounding,
        "tables": rules.tables or (),
    }
    return ShapeSeen(_joint(rows), cells=cells, **common)


def test_policy_audit_across_shapes_finds_a_change_published_unchecked() -> None:
    """``policy audit`` on a home whose policy changed shape reads every shape's
    releases together. DOM's second version published as if the first had
    never been (the check across shapes skipped, as before issue 15): the
    test's own attacker pins HTI women's week 2, and the audit must fail and
    name it. The same change published by the engine passes."""
    old, new = _dom()
    first = release_flows(DOM_ROWS, old, {})
    ledger_old = {b: r.ledger for b, r in first.blocks.items() if r.ledger is not None}
    unchecked = release_flows(DOM_ROWS, new, {})
    older = tuple(foreign_blocks(new, ledger_old))
    assert older
    ledger = {
        b: BlockLedger.from_json(replace(r.ledger, foreign=older).to_json())
        for b, r in unchecked.blocks.items()
        if r.ledger is not None
    }
    # the attacker's own reading of the two releases
    seen = [_seen(old, DOM_ROWS, first, False), _seen(new, DOM_ROWS, unchecked, False)]
    bare = [_seen(old, DOM_ROWS, first, True), _seen(new, DOM_ROWS, unchecked, True)]
    found, baseline = attack_shapes(seen), attack_shapes(bare)
    week2 = (0, ("2024-W02", ("HTI", "F")))
    assert found[week2].width < old.min_cell_size < baseline[week2].width + 1, found[week2]

    audit = audit_across_shapes(DOM_ROWS, new, ledger)
    assert audit is not None and not audit.passes and audit.foreign_blocks >= 1
    named = {
        (c["shape"], c["period"], tuple(sorted(c["dimensions"].items()))) for c in audit.failing
    }
    assert ("old", "2024-W02", (("nationality", "HTI"), ("sex", "F"))) in named, audit.failing
    for cell in audit.failing:
        assert cell["high"] is not None and cell["high"] - cell["low"] < cell["protection"]

    _, _, releases = run([(old, DOM_ROWS), (new, [])])
    safe = {b: r.ledger for b, r in releases[1].blocks.items() if r.ledger is not None}
    checked = audit_across_shapes(DOM_ROWS, new, safe)
    assert audit_across_shapes(DOM_ROWS, old, ledger_old) is None  # one shape only
    assert checked is not None and checked.foreign_blocks >= 1 and checked.hidden > 0
    assert checked.passes, checked.failing


def _weekly(margins: list[list[str]]) -> FlowStatisticsRules:
    return FlowStatisticsRules(
        shared=True,
        audiences=["TS"],
        purposes=["statistics"],
        dimensions=["nationality", "sex"],
        min_cell_size=5,
        margins=margins,
        tables=[["nationality", "sex"], []],
    )


def test_a_return_to_a_shape_with_margins_does_not_pin_what_came_between() -> None:
    """Weekly totals by nationality are public under the first shape; the
    second drops them and publishes week 3's national total (5: HTI women 2,
    VEN men 3, a week first released after the change); the third returns to
    the first, whose margins now give HTI 2 and VEN 3 in week 3: with counts
    that only grow, the second release's hidden cells are pinned. The engine
    checks the second release with the first shape's margins as facts an
    audience may learn later."""
    with_margins, without = _weekly([["nationality"]]), _weekly([])
    first = _rows({("CUB", "F", W2): 5, ("CUB", "M", W2): 6})
    between = _rows({("HTI", "F", W3): 2, ("VEN", "M", W3): 3})
    steps = [(with_margins, first), (without, between), (with_margins, [])]
    assert narrow_across(steps) == []
    seen, _, _ = run(steps[:2])
    week3 = [c for c in seen[1].cells if c[0] == "2024-W03"]
    assert week3 == [], week3


_NATS = ["CUB", "HTI", "VEN"]
JAN = date(2024, 1, 10)


@st.composite
def _batches(draw: st.DrawFn) -> list[list[Row]]:
    n = draw(st.integers(4, 5))
    out = []
    for i in range(n):
        spec: dict[tuple[str, str, date], int] = {}
        cells = draw(
            st.dictionaries(
                st.tuples(st.sampled_from(_NATS), st.sampled_from("FM"), st.integers(0, 2)),
                st.integers(1, 9 if i == 0 else 3),
                min_size=1 if i else 3,
                max_size=6,
            )
        )
        for (nat, sex, week), k in cells.items():
            spec[(nat, sex, JAN + timedelta(weeks=week))] = k
        out.append(_rows(spec))
    return out


def _shape(kind: str, base: dict[str, Any]) -> FlowStatisticsRules:
    kw = dict(base)
    if kind == "no-sex":
        kw["dimensions"] = ["nationality"]
        kw["margins"] = [[d for d in m if d != "sex"] for m in kw["margins"]]
    elif kind == "region":
        kw["dimensions"] = ["nationality_region", "sex"]
        kw["coarsen"] = [c for c in kw["coarsen"] if c != "nationality"]
        kw["margins"] = [
            ["nationality_region" if d == "nationality" else d for d in m] for m in kw["margins"]
        ]
    elif kind == "monthly":
        kw["period"] = "month"
        kw["coarsen"] = []
    elif kind == "smaller-minimum":
        kw["min_cell_size"] = max(2, kw["min_cell_size"] - 2)
    if kind in ("no-sex", "region") and kw.get("tables") is not None:
        # the tables follow the dimensions (a policy naming a dropped one does not load)
        tables: list[list[str]] = []
        for t in kw["tables"]:
            if kind == "no-sex":
                kept = [d for d in t if d != "sex"]
            else:
                kept = ["nationality_region" if d == "nationality" else d for d in t]
            if set(kept) not in [set(u) for u in tables]:
                tables.append(kept)
        kw["tables"] = tables
    if kind == "no-margin":
        # (adding a public margin is the statistics office's act, not the
        # node's: with earlier cells it can pin what they left open, and no
        # later suppression undoes that)
        kw["margins"] = []
    return FlowStatisticsRules(**kw)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # no shrinking: each example solves dozens of MILPs, and shrinking one ran
    # past five minutes; a failure is reported as generated (and replayed from
    # the example database on the next run)
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    batches=_batches(),
    change_at=st.integers(1, 3),
    kind=st.sampled_from(["no-sex", "region", "monthly", "smaller-minimum", "no-margin"]),
    coarsen=st.sampled_from([[], ["period"]]),
    margins=st.sampled_from([[], [["nationality"]]]),
    minimum=st.integers(3, 5),
    back=st.booleans(),
    tables=st.sampled_from(
        [None, [["nationality", "sex"], []], [["nationality", "sex"], ["nationality"], []]]
    ),
)
def test_no_sequence_with_a_shape_change_narrows_a_hidden_cell(
    batches: list[list[Row]],
    change_at: int,
    kind: str,
    coarsen: list[str],
    margins: list[list[str]],
    minimum: int,
    back: bool,
    tables: list[list[str]] | None,
) -> None:
    """At least four releases with late records and margins; the shape changes
    at one of them (and, with ``back``, returns at the last). No hidden count of
    any release, read under its own shape, is narrower than its protection
    level unless the margins alone pin it; with ``tables``, the cells of its
    tables below the minimum count as hidden too."""
    base: dict[str, Any] = {
        "shared": True,
        "audiences": ["TS"],
        "purposes": ["statistics"],
        "dimensions": ["nationality", "sex"],
        "min_cell_size": minimum,
        "coarsen": coarsen,
        "margins": margins,
        "tables": tables,
    }
    first = FlowStatisticsRules(**base)
    second = _shape(kind, base)
    steps = []
    for i, batch in enumerate(batches):
        rules = first if i < change_at else second
        if back and i == len(batches) - 1:
            rules = first
        steps.append((rules, batch))
    assert narrow_across(steps) == []


def test_a_late_record_beside_a_cell_of_a_shape_without_margins_is_the_known_limit() -> None:
    """The sequence hypothesis found (first shape with weekly nationality
    totals public, then one without margins, then back): the second shape
    publishes W02's 3 VEN women exactly, when W02 has no VEN man. A late record
    brings one; the return to the first shape publishes W02's VEN total (4),
    the country's own margin, and with counts that only grow it leaves the man
    at 0..1. Nothing released from then on can widen that, and no release
    before had a man to protect: the limit docs/policies.md names. The test
    holds that it is that limit and nothing more."""
    base: dict[str, Any] = {
        "shared": True,
        "audiences": ["TS"],
        "purposes": ["statistics"],
        "dimensions": ["nationality", "sex"],
        "min_cell_size": 3,
        "coarsen": ["period"],
        "margins": [["nationality"]],
        "tables": [["nationality", "sex"], []],
    }
    first = FlowStatisticsRules.model_validate(base)
    second = FlowStatisticsRules.model_validate(base | {"margins": []})
    steps = [
        (first, _rows({("CUB", "F", W2): 8, ("CUB", "M", W3): 3, ("VEN", "M", W4): 4})),
        (second, _rows({("VEN", "F", W2): 3, ("CUB", "F", W3): 2})),
        (second, _rows({("HTI", "M", W2): 1, ("HTI", "M", W3): 3, ("VEN", "F", W4): 1})),
        (first, _rows({("CUB", "F", W2): 1, ("VEN", "M", W2): 1, ("HTI", "M", W3): 3})),
    ]
    seen, bare, _ = run(steps)
    man = (3, ("2024-W02", ("VEN", "M")))
    found = attack_shapes(seen)[man]
    assert found.width < 3 < attack_shapes(bare)[man].width, found
    assert new_and_pinned_before(seen, 3, man[1], found)
    # the same count had it existed at the second release is not excused
    assert not new_and_pinned_before(seen, 3, ("2024-W02", ("VEN", "F")), found)
    assert narrow_across(steps) == []
