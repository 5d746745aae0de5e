"""Property: the regional picture never reveals a cell a country hid.

Each country releases, for one period, some of its atoms (nationality × sex
cells): published ones, suppressed ones (never sent), and published ones whose
events do not admit the export's audience (for other audiences, embargoed or
expired). An outsider in audience A knows every cell published to A and each
country's public margins. The aggregator's export for A (per-country counts,
regional totals, the trend totals, the SDMX observations) adds equations; the
property is that they determine no hidden atom the outsider could not already
determine, using the same linear-algebra test the countries' own suppression
uses (``node.policy.disclosure.determined``).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from node.policy.disclosure import determined
from node.report.audience import Scope
from node.report.regional import admitted_cells, regional_rows
from node.report.sdmx import flows_sdmx_csv
from node.report.trends import trends
from node.store.picture import PictureStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)
COUNTRIES = ("PAN", "CRI", "GTM", "MEX")
NATIONALITIES = ("CHN", "HTI", "CUB", "IND")
SEXES = ("F", "M")
PERIOD = "2024-W05"

#: An atom's fate: published to A, suppressed by its country, or published for
#: another audience only (so hidden from A).
FATES = st.sampled_from(("published", "suppressed", "other-audience", "embargoed"))

Atom = tuple[str, str, str]  # country, nationality, sex


def _use(fate: str) -> dict[str, object]:
    return {
        "audiences": ("TS", "IOM") if fate == "other-audience" else ("TS", "public"),
        "purposes": ("statistics",),
        "retain_until": date(2030, 1, 1),
        "embargo_until": datetime(2027, 1, 1, tzinfo=UTC) if fate == "embargoed" else None,
        "purged": False,
    }


@st.composite
def releases(draw: st.DrawFn) -> tuple[dict[Atom, tuple[str, int]], list[tuple[str, str]]]:
    atoms = {}
    for country in draw(st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=4, unique=True)):
        for nat in draw(st.lists(st.sampled_from(NATIONALITIES), min_size=1, unique=True)):
            for sex in SEXES:
                atoms[(country, nat, sex)] = (draw(FATES), draw(st.integers(5, 200)))
    # Public margins a country publishes elsewhere: its total by nationality.
    margins = draw(
        st.lists(st.tuples(st.sampled_from(COUNTRIES), st.sampled_from(NATIONALITIES)), max_size=3)
    )
    return atoms, margins


def _picture(path: Path, atoms: dict[Atom, tuple[str, int]]) -> PictureStore:
    """An aggregator store holding every atom a country sent (not the suppressed
    ones), each with its event's usage rules."""
    store = PictureStore(path)
    with store.transaction() as conn:
        for i, ((country, nat, sex), (fate, n)) in enumerate(atoms.items()):
            if fate == "suppressed":
                continue
            event = f"ev{i}"
            use = _use(fate)
            conn.execute(
                "INSERT INTO flow_cell (subject, reporting_country, period, period_type, "
                "nationality, sex, count, obs_status, revision, event_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    f"FlowStatistic|{country}|{PERIOD}|{nat}|{sex}",
                    country,
                    PERIOD,
                    "ISO_WEEK",
                    nat,
                    sex,
                    n,
                    "A",
                    1,
                    event,
                ),
            )
            embargo = use["embargo_until"]
            conn.execute(
                "INSERT INTO event_use (event_id, audiences, purposes, retain_until, "
                "embargo_until) VALUES (?,?,?,?,?)",
                (
                    event,
                    json.dumps(use["audiences"]),
                    json.dumps(use["purposes"]),
                    str(use["retain_until"]),
                    None if embargo is None else str(embargo),
                ),
            )
    return store


def _equation(
    value: int, group: set[Atom], visible: set[Atom], values: dict[Atom, int]
) -> set[Atom]:
    """The atoms an exported number sums. It must be the sum of the group's
    atoms published to the audience (counts are at least 5, so a number that
    also counted a hidden atom would differ); that set is its equation."""
    shown = group & visible
    assert value == sum(values[a] for a in shown), (value, sorted(group))
    return shown


@settings(max_examples=100, deadline=None)
@given(releases())
def test_the_export_for_an_audience_reveals_no_hidden_cell(
    release: tuple[dict[Atom, tuple[str, int]], list[tuple[str, str]]],
) -> None:
    atoms, margins = release
    values = {a: n for a, (_, n) in atoms.items()}
    visible = {a for a, (fate, _) in atoms.items() if fate == "published"}
    with tempfile.TemporaryDirectory() as tmp, _picture(Path(tmp) / "a.db", atoms) as store:
        cells = admitted_cells(store, Scope("public", None, NOW))
    # Every number the export for the public states, as the atoms it sums.
    stated: list[set[Atom]] = []
    _, rows = regional_rows(cells)
    for row in rows:
        group = {a for a in atoms if a[1] == row.nationality}
        stated.append(_equation(row.total, group, visible, values))
        for country, n in row.by_country.items():
            stated.append(_equation(n, {a for a in group if a[0] == country}, visible, values))
    for r in trends(cells)["totals"]:
        group = {a for a in atoms if r["reporting_country"] in ("_T", a[0])}
        stated.append(_equation(r["count"], group, visible, values))
    for obs in csv.DictReader(io.StringIO(flows_sdmx_csv(cells, "public"))):
        group = {a for a in atoms if a[1] == obs["CITIZENSHIP"] and obs["REF_AREA"] in ("_T", a[0])}
        stated.append(_equation(int(obs["OBS_VALUE"]), group, visible, values))
    assert len(stated) >= 2 * len({a[1] for a in visible})

    # The outsider: the cells published to it, and the countries' public margins.
    known: list[set[Atom]] = [{a} for a in visible]
    for country, nat in margins:
        group = {a for a in atoms if a[0] == country and a[1] == nat}
        if group:
            known.append(group)
    hidden = set(atoms) - visible
    assert determined(known + stated) & hidden == determined(known) & hidden


def test_a_total_over_everything_held_would_be_caught() -> None:
    """The check above is not vacuous: a regional total that also counted a
    cell withheld from the audience reveals it next to the breakdown."""
    a, b = ("PAN", "CHN", "F"), ("CRI", "CHN", "F")
    known = [{a}]  # PAN's cell is public; CRI's is for IOM only
    leaky_total = {a, b}
    assert b in determined([*known, leaky_total])


# -- with table totals (issue 16) ------------------------------------------------------

#: A nationality total's fate: published to A, or for another audience only.
TOTAL_FATES = st.sampled_from(("published", "other-audience"))


@st.composite
def releases_with_totals(
    draw: st.DrawFn,
) -> tuple[dict[Atom, tuple[str, int]], dict[tuple[str, str], str]]:
    atoms, _ = draw(releases())
    totals = {}
    for country, nat in sorted({(a[0], a[1]) for a in atoms}):
        if draw(st.booleans()):
            totals[(country, nat)] = draw(TOTAL_FATES)
    return atoms, totals


def _picture_with_totals(
    path: Path, atoms: dict[Atom, tuple[str, int]], totals: dict[tuple[str, str], str]
) -> PictureStore:
    """``_picture`` plus each country's week x nationality totals (sex ``_T``):
    the sum of all its atoms of that nationality, hidden ones included."""
    store = _picture(path, atoms)
    with store.transaction() as conn:
        for i, ((country, nat), fate) in enumerate(sorted(totals.items())):
            event = f"tot{i}"
            n = sum(v for (c, a, _), (_, v) in atoms.items() if (c, a) == (country, nat))
            conn.execute(
                "INSERT INTO flow_cell (subject, reporting_country, period, period_type, "
                "nationality, sex, count, obs_status, revision, event_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    f"FlowStatistic|{country}|{PERIOD}|{nat}|_T",
                    country,
                    PERIOD,
                    "ISO_WEEK",
                    nat,
                    "_T",
                    n,
                    "A",
                    1,
                    event,
                ),
            )
            use = _use(fate)
            conn.execute(
                "INSERT INTO event_use (event_id, audiences, purposes, retain_until) "
                "VALUES (?,?,?,?)",
                (
                    event,
                    json.dumps(use["audiences"]),
                    json.dumps(use["purposes"]),
                    str(use["retain_until"]),
                ),
            )
    return store


def _match(value: int, candidates: list[tuple[int, set[Atom]]]) -> set[Atom]:
    """The equation an exported number states: one of the sums of cells
    published to the audience that could make it (its total, or its visible
    atoms); a number that is neither would be a leak or a double count."""
    for n, group in candidates:
        if n == value:
            return group
    raise AssertionError(f"{value} is no sum of published cells: {candidates}")


@settings(max_examples=100, deadline=None)
@given(releases_with_totals())
def test_exports_from_tables_with_totals_reveal_no_hidden_cell(
    release: tuple[dict[Atom, tuple[str, int]], dict[tuple[str, str], str]],
) -> None:
    atoms, totals = release
    values = {a: n for a, (_, n) in atoms.items()}
    visible = {a for a, (fate, _) in atoms.items() if fate == "published"}
    shown_totals = {k for k, fate in totals.items() if fate == "published"}

    def of(country: str, nat: str | None = None) -> set[Atom]:
        return {a for a in atoms if a[0] == country and (nat is None or a[1] == nat)}

    def candidates(country: str, nat: str | None = None) -> list[tuple[int, set[Atom]]]:
        out = []
        tot = [k for k in shown_totals if k[0] == country and (nat is None or k[1] == nat)]
        if tot:
            group = set().union(*(of(*k) for k in tot))
            out.append((sum(values[a] for a in group), group))
        seen = of(country, nat) & visible
        out.append((sum(values[a] for a in seen), seen))
        return out

    with (
        tempfile.TemporaryDirectory() as tmp,
        _picture_with_totals(Path(tmp) / "a.db", atoms, totals) as store,
    ):
        cells = admitted_cells(store, Scope("public", None, NOW))
    stated: list[set[Atom]] = []
    _, rows = regional_rows(cells)
    for row in rows:
        parts = []
        for country, n in row.by_country.items():
            group = _match(n, candidates(country, row.nationality))
            stated.append(group)
            parts.append(group)
        union = set().union(*parts)
        assert row.total == sum(values[a] for a in union)  # each cell once
        stated.append(union)
    for r in trends(cells)["totals"]:
        if r["reporting_country"] != "_T":
            stated.append(_match(r["count"], candidates(r["reporting_country"])))

    known: list[set[Atom]] = [{a} for a in visible] + [of(*k) for k in shown_totals]
    hidden = set(atoms) - visible
    assert determined(known + stated) & hidden == determined(known) & hidden
