"""The observations of an SDMX export: each country's cells as observations of
the dataflow, with regional totals (``_T``) that sum exactly the country
observations with a value, and ``D`` observations for withdrawn keys. Their
text is written by ``node.report.sdmx``.

Every value is a sum of published cells the audience is admitted to
(``node.report.regional``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from node.model.codes import RCM_INVITED, RCM_MEMBERS, corridor_sort_key
from node.report.audience import Scope, admits
from node.report.regional import FlowCell
from node.report.sdmx_structure import STATUSES
from node.report.tables import containing_periods
from node.store.picture import PictureStore


def knows_cells_exist(audience: str) -> bool:
    """Whether an export's audience may learn that a protected cell exists (the
    Secretariat, and the members and invitees, who see the countries' own
    statements of what they protected); never the public or a partner."""
    return audience in ("TS", *RCM_MEMBERS, *RCM_INVITED)


@dataclass(frozen=True)
class Observation:
    """One SDMX observation: the key, the value and how exact it is."""

    area: str
    citizenship: str  # ISO3, ``_T``, ``_U``, or ``[Region name]``
    period: str
    value: int | None
    status: str = "exact"
    protected: int | None = None
    ci95: tuple[int, int] | None = None
    conf: str = "confidential"
    countries: tuple[str, ...] = ()
    action: str = "I"


def _status_of(cell: Any) -> str:
    """A cell's status (issue 16's ``status``, default exact); a cell the
    country rounded (``estimated``, OBS_STATUS E) is at least ``rounded``."""
    status = getattr(cell, "status", None)
    status = str(status) if status in STATUSES else "exact"
    if status == "exact" and getattr(cell, "estimated", False):
        return "rounded"
    return status


def _combined(statuses: Iterable[str]) -> str:
    """The status of a sum: as imprecise as its least precise part."""
    return max(statuses, key=STATUSES.index, default="exact")


def _label(cell: Any) -> str:
    """ISO3, ``_T`` for a total over nationalities (or over regions), else
    ``[region]`` for a cell whose country published only the region."""
    if cell.nationality:
        return str(cell.nationality)
    return "_T" if cell.region == "_T" else f"[{cell.region}]"


def _finer(cell: Any) -> int:
    """How many dimensions below nationality a cell breaks down (0: a
    nationality total, every finer dimension ``_T`` or not published)."""
    dims = (getattr(cell, d, None) for d in ("sex", "age_band", "previous_country"))
    return sum(1 for v in dims if v not in (None, "_T"))


def observations(
    cells: Sequence[FlowCell], totals: bool = True, knows: bool = True
) -> list[Observation]:
    """Per period × reporting country × nationality, the observation the most
    precise published table gives: the nationality total when the country
    published one, else the sum of its finest table's cells (never both, so no
    encounter counts twice); then, with ``totals``, the regional ``_T`` sum of
    exactly the country observations shown. Without ``knows`` (an audience
    that may not learn a protected cell exists) suppressed cells are left out
    before anything is summed, so no total's status hints at them."""
    if not knows:
        cells = [c for c in cells if _status_of(c) != "suppressed" and c.count is not None]
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for c in cells:
        groups[(c.period, c.country, _label(c))].append(c)
    # (period, country) pairs where the country published a nationality table:
    # there, a nationality with only finer cells had its total protected (a
    # lower bound); a region with only finer cells ([Caribbean], detail
    # coarsened to its region) is not added beside the table: it holds
    # encounters the table's HTI and CUB cells count already. (The
    # invariant: tests/test_picture_views.py, rows within national totals.)
    # (A national total, CITIZENSHIP _T, is not a nationality table.)
    with_totals = {
        (p, c)
        for (p, c, label), ms in groups.items()
        if label != "_T" and min(map(_finer, ms)) == 0
    }
    # Where that table gives regions (GTM's [Eastern Asia]), a nationality of
    # the detail is inside one of them: not added beside it either.
    region_tables = {
        (p, c)
        for (p, c, label), ms in groups.items()
        if label.startswith("[") and min(map(_finer, ms)) == 0
    }
    per_country: list[Observation] = []
    from_table: set[tuple[str, str, str]] = set()
    for (period, country, label), members in groups.items():
        depth = min(_finer(c) for c in members)
        if (
            depth > 0
            and (period, country) in with_totals
            and (label.startswith("[") or (period, country) in region_tables)
        ):
            continue
        finest = max(_finer(c) for c in members)
        chosen = [c for c in members if _finer(c) == (0 if depth == 0 else finest)]
        status = _combined(_status_of(c) for c in chosen)
        if depth > 0 and (period, country) in with_totals:
            status = _combined((status, "lower-bound"))
        shown = [c for c in chosen if c.count is not None and _status_of(c) != "suppressed"]
        value = sum(int(c.count) for c in shown) if shown else None
        protected = [getattr(c, "protected", None) for c in chosen]
        intervals = [getattr(c, "ci95", None) for c in chosen if _status_of(c) == "noisy"]
        ci: tuple[int, int] | None = None
        if status == "noisy" and intervals and all(intervals):
            # Conservative: the sum of the intervals contains the sum's interval.
            ci = (sum(int(i[0]) for i in intervals if i), sum(int(i[1]) for i in intervals if i))
        per_country.append(
            Observation(
                country,
                label,
                period,
                value,
                status,
                sum(p for p in protected if p) or None,
                ci,
                str(getattr(chosen[0], "conf", None) or "confidential"),
            )
        )
        if depth == 0:
            from_table.add((country, period, label))
    # A month a country's detail was coarsened to overlaps the weeks inside it
    # where the same nationality has a cell of the week x nationality table
    # (which holds that week's share of the month cell): left out there, as in
    # the views (node.report.tables), so no encounter counts twice.
    covered = {(a, coarse, lab) for a, p, lab in from_table for coarse in containing_periods(p)}
    per_country = [
        o
        for o in per_country
        if (o.area, o.period, o.citizenship) not in covered
        or (o.area, o.period, o.citizenship) in from_table
    ]
    # A country's total over nationalities, beside its nationality observations:
    # what they do not account for is in protected cells (both numbers are in
    # the file, so the difference tells its audience nothing new).
    # Only exact numbers: a rounded or noisy part would make the gap a
    # rounding or noise difference, not encounters.
    accounted: dict[tuple[str, str], int] = defaultdict(int)
    inexact: set[tuple[str, str]] = set()
    for o in per_country:
        if o.citizenship != "_T" and o.value is not None:
            accounted[(o.period, o.area)] += o.value
            if o.status not in ("exact", "lower-bound"):
                inexact.add((o.period, o.area))
    out = []
    for o in per_country:
        key = (o.period, o.area)
        if (
            o.citizenship == "_T"
            and o.value is not None
            and o.protected is None
            and o.status == "exact"
            and key not in inexact
            and 0 < accounted[key] < o.value
        ):
            o = replace(o, protected=o.value - accounted[key])
        out.append(o)
    per_country = list(out)
    if totals:
        by_key: dict[tuple[str, str], list[Observation]] = defaultdict(list)
        for o in per_country:
            by_key[(o.period, o.citizenship)].append(o)
        for (period, label), obs in by_key.items():
            valued = [o for o in obs if o.value is not None]
            if not valued:
                continue
            status = _combined(
                ["lower-bound" if o.status == "suppressed" else o.status for o in obs]
            )
            cis = [o.ci95 for o in valued if o.status == "noisy"]
            ci = None
            if status == "noisy" and cis and all(cis):
                ci = (sum(c[0] for c in cis if c), sum(c[1] for c in cis if c))
            prot = sum(o.protected or 0 for o in obs) or None
            out.append(
                Observation(
                    "_T",
                    label,
                    period,
                    sum(int(o.value or 0) for o in valued),
                    status,
                    prot,
                    ci,
                    countries=tuple(sorted({o.area for o in valued}, key=corridor_sort_key)),
                )
            )
    return out


def admitted_withdrawn(store: PictureStore, scope: Scope, view: str = "flows") -> list[FlowCell]:
    """The withdrawn cells whose last publication admitted the scope's audience
    and purpose: that audience saw them, so naming their keys tells it nothing new."""
    uses = store.uses()
    purpose = scope.purpose_for(view)
    return [
        FlowCell(
            r.get("period", ""),
            r.get("period_type", ""),
            r.get("reporting_country", ""),
            r.get("nationality"),
            r.get("nationality_region"),
            r.get("previous_country"),
            int(r.get("count") or 0),
            r.get("obs_status") == "E",
        )
        for r in store.withdrawn_flow_cells()
        if admits(uses.get(r["event_id"]), scope.audience, purpose, scope.now)
    ]


def withdrawals(cells: Sequence[FlowCell], current: Sequence[Observation]) -> list[Observation]:
    """``D`` observations for the keys of withdrawn cells (the audience saw them
    published) that no current cell gives a value any more."""
    live = {(o.area, o.citizenship, o.period) for o in current}
    keys = sorted({(c.country, _label(c), c.period) for c in cells} - live)
    return [Observation(a, n, p, None, action="D") for a, n, p in keys]
