"""A block with no new records is not audited again; one with a late record is.

``release_block`` sends a block's last release again as it was when its atoms
and the other exchanges' sums are those of that release and its policy shape
is the same. Under USA's shipped policy (a week belongs to the month of its
Thursday; the national total and the week x nationality table are counted at
the week, inside the month) nothing of one block is in another block's
attacker model, so a late record in January leaves February's model as it
was. Checked here against the exact audit of February's releases with the
repeated one included, and against February audited afresh.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

from node.policy.atoms import FlowInput
from node.policy.block import release_block
from node.policy.knowledge import audit_releases
from node.policy.ledger import PastRelease
from node.policy.loader import load_policy
from node.policy.release import release_flows

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NATIONALITIES = ["MEX", "GTM", "HND", "VEN", "CUB", "COL", "HTI", "IND"]


def _rows(rng: random.Random, n: int, first: date, days: int) -> list[FlowInput]:
    rows: list[FlowInput] = []
    for _ in range(n):
        met = first + timedelta(days=rng.randrange(days))
        born = met - timedelta(days=rng.randrange(1, 60 * 365))
        previous = rng.choice(["MEX", None])
        rows.append((rng.choice(NATIONALITIES), rng.choice("FM"), born, met, previous))
    return rows


def test_a_block_with_no_new_record_is_sent_again_and_one_with_a_late_record_is_audited() -> None:
    rules = load_policy(POLICIES / "USA.yaml").exchanges.flow_statistics
    rng = random.Random(15)
    # weeks 2021-W01..W04 are January's, W05..W08 February's (by their Thursday)
    rows = _rows(rng, 120, date(2021, 1, 4), 28) + _rows(rng, 120, date(2021, 2, 1), 28)
    first = release_flows(rows, rules)
    assert sorted(first.blocks) == ["2021-01", "2021-02"]
    ledger = {b: r.ledger for b, r in first.blocks.items() if r.ledger is not None}

    late = (*rows[0][:3], date(2021, 1, 12), rows[0][4])  # one record of January, late
    second = release_flows([*rows, late], rules, ledger)

    january = second.blocks["2021-01"]
    assert january.audit is not None and january.audit.passes  # audited again
    assert january.ledger is not None and len(january.ledger.releases()) == 2

    february = second.blocks["2021-02"]
    assert february.audit is None  # not audited: its last release sent again
    assert february.ledger is ledger["2021-02"]
    assert february.cells == first.blocks["2021-02"].cells

    # The repeated release passes the exact audit of every release of the
    # block, as the first one did, with the same narrowest interval.
    once = ledger["2021-02"].releases()
    again = (*once, PastRelease(dict(february.atoms), tuple(february.cells)))
    audited_once = audit_releases(once, rules)
    audited_again = audit_releases(again, rules)
    assert audited_again.passes and audited_once.passes
    assert audited_again.narrowest is not None and audited_once.narrowest is not None
    assert audited_again.narrowest[1] == audited_once.narrowest[1]

    # February released afresh from its atoms, as its first release was: the
    # same cells.
    afresh = release_block("2021-02", dict(february.atoms), rules)
    assert sorted(afresh.cells) == sorted(february.cells)
