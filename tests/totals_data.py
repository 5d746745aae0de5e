"""A small regional picture whose countries publish tables with totals (``_T``),
as issue 16's policies do: signed FlowStatistic events made by the members'
own keys, applied by the real aggregator. Every status a number can have
appears in it:

- PAN, 2024-W10: national total, week x nationality and the detail, all exact;
  two nationalities' totals are published (180 of 200), the rest protected;
- CRI, 2024-W10 and W11: the same tables, rounded by the country (obs_status E);
- MEX, 2024-W10: the detail only (the old policies' shape): lower bounds;
- MEX, 2024-W11: national total and detail, the detail adding up to the total,
  so the sums are exact;
- PAN, 2024-W11: national total and week x nationality, noisy (obs_status N).

The same person is also linked across PAN and MEX by encounter records in
``tests/test_picture_totals.py`` where it needs them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.aggregator.apply import Aggregator
from node.config import Home
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.keys import event_factory
from node.member.member_home import home_policy, init_member
from node.store.picture import PictureStore
from node.transport.memory import MemorySource, MemoryTopic
from tests.factories import aggregator_for

T = "_T"
DIMS = ("nationality", "sex", "age_band", "previous_country")

#: (country, period, nationality, sex, age_band, previous_country, count, obs_status)
CELLS: tuple[tuple[str, str, str, str, str, str, int, str], ...] = (
    # PAN W10: exact tables; nationality totals 120 + 60 of the national 200.
    ("PAN", "2024-W10", T, T, T, T, 200, "A"),
    ("PAN", "2024-W10", "CHN", T, T, T, 120, "A"),
    ("PAN", "2024-W10", "HTI", T, T, T, 60, "A"),
    ("PAN", "2024-W10", "CHN", "F", "18-29", "COL", 40, "A"),
    ("PAN", "2024-W10", "CHN", "M", "18-29", "COL", 50, "A"),
    ("PAN", "2024-W10", "HTI", "M", "30-44", "COL", 30, "A"),
    # CRI W10: rounded by the country.
    ("CRI", "2024-W10", T, T, T, T, 150, "E"),
    ("CRI", "2024-W10", "CHN", T, T, T, 100, "E"),
    ("CRI", "2024-W10", "HTI", T, T, T, 45, "E"),
    ("CRI", "2024-W10", "CHN", "M", "18-29", "PAN", 60, "E"),
    # CRI W11: rounded; HTI's week total suppressed.
    ("CRI", "2024-W11", T, T, T, T, 90, "E"),
    ("CRI", "2024-W11", "CHN", T, T, T, 70, "E"),
    # MEX W10: only the finest cells, no total: every sum is a lower bound.
    ("MEX", "2024-W10", "CHN", "F", "18-29", "GTM", 12, "A"),
    ("MEX", "2024-W10", "CHN", "M", "18-29", "GTM", 15, "A"),
    ("MEX", "2024-W10", "HTI", "M", "30-44", "GTM", 9, "A"),
    # MEX W11: the detail adds up to the exact national total: nothing is missing.
    ("MEX", "2024-W11", T, T, T, T, 40, "A"),
    ("MEX", "2024-W11", "CHN", "F", "18-29", "GTM", 12, "A"),
    ("MEX", "2024-W11", "CHN", "M", "18-29", "GTM", 15, "A"),
    ("MEX", "2024-W11", "HTI", "M", "30-44", "GTM", 13, "A"),
    # PAN W11: noisy (differential privacy).
    ("PAN", "2024-W11", T, T, T, T, 210, "N"),
    ("PAN", "2024-W11", "CHN", T, T, T, 130, "N"),
    ("PAN", "2024-W11", "HTI", T, T, T, 70, "N"),
)
COUNTRIES = ("PAN", "CRI", "MEX")


def body(cell: tuple[str, str, str, str, str, str, int, str]) -> dict[str, Any]:
    country, period, nat, sex, age, prev, count, status = cell
    return {
        "reporting_country": country,
        "period": period,
        "period_type": "ISO_WEEK",
        "nationality": nat,
        "nationality_region": None,
        "sex": sex,
        "age_band": age,
        "previous_country": prev,
        "count": count,
        "obs_status": status,
        # A noisy cell carries what the floor judges it on (FlowStatistic v2):
        # its 95% interval, the mechanism, its scale and epsilon.
        **(
            {
                "ci95_low": count - 9,
                "ci95_high": count + 9,
                "noise_mechanism": "discrete_laplace",
                "noise_scale": 3.0,
                "epsilon": 0.5,
            }
            if status == "N"
            else {}
        ),
    }


def subject(b: dict[str, Any]) -> str:
    dims = ",".join(f"{d}={b[d]}" for d in DIMS)
    return f"FlowStatistic|{b['reporting_country']}|{b['period']}|{dims}"


def build_totals_picture(base: Path) -> Home:
    """The aggregator home holding ``CELLS``, each a signed event of its country."""
    homes = {c: init_member(base / c.lower(), c, topic="t") for c in COUNTRIES}
    agg = aggregator_for(base, list(homes.values()))
    topic = MemoryTopic()
    now = datetime.now(UTC)
    for country, home in homes.items():
        factory = event_factory(home, home_policy(home))
        for cell in CELLS:
            if cell[0] != country:
                continue
            b = body(cell)
            staged = factory.build("FlowStatistic", subject(b), 1, b, None, now)
            topic.append(staged.key, staged.value)
    with PictureStore(agg.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg), floor=regional_floor()
        )
        stats = aggregator.apply_batch(MemorySource(topic).poll_batch(0, 10**6))
    assert stats.rejected_total == 0, stats.as_dict()
    assert stats.applied == len(CELLS), stats.as_dict()
    return agg
