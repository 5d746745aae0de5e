"""The online folder's test federation and a served folder on a free loopback port.

The picture is ``tests.picture_data``'s fixed federation, with usage rules
changed in the store so that every case of the admission rule is present:

- PAN's cells of its most frequent nationality: public (statistics);
- of the second: public but embargoed for a week;
- of the third: public, but only for research (not statistics);
- every MEX cell: for the Secretariat only;

plus two sealed intelligence reports (one addressed to GTM, one to PAN) and a
message from PAN that the Secretariat set aside. ``expected_public`` works out
what the public may see from the raw tables with its own reading of the rules.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from node.config import Home
from node.folder.accounts import FolderDB
from node.folder.session import Throttle
from node.operator.serve import make_server
from tests.picture_data import build_picture

PASSWORD = "correct horse battery staple"
USERS = {"ana": "TS", "pan-stats": "PAN", "gtm-stats": "GTM", "iom-desk": "IOM"}
GTM_REPORT = "IntelligenceReport:MEX:route-alert-7"
PAN_REPORT = "IntelligenceReport:CRI:document-fraud-2"


@dataclass(frozen=True)
class Federation:
    home: Home
    folder_db: Path
    public_nat: str
    embargoed_nat: str
    research_nat: str


def build_federation(base: Path) -> Federation:
    agg = build_picture(base)
    conn = sqlite3.connect(agg.store_path)
    try:
        with conn:
            nats = [
                n
                for (n,) in conn.execute(
                    "SELECT nationality FROM flow_cell WHERE reporting_country = 'PAN' AND "
                    "nationality IS NOT NULL AND nationality != '_T' GROUP BY nationality "
                    "ORDER BY sum(count) DESC, nationality"
                )
            ]
            public, embargoed, research = nats[0], nats[1], nats[2]

            def set_use(
                where: str,
                args: tuple[str, ...],
                audiences: list[str],
                purposes: list[str],
                embargo: str | None = None,
            ) -> None:
                conn.execute(
                    "UPDATE event_use SET audiences = ?, purposes = ?, embargo_until = ? "
                    f"WHERE event_id IN (SELECT event_id FROM flow_cell WHERE {where})",
                    (json.dumps(audiences), json.dumps(purposes), embargo, *args),
                )

            pan_nat = "reporting_country = 'PAN' AND nationality = ?"
            set_use(pan_nat, (public,), ["TS", "members", "public"], ["statistics"])
            set_use(
                pan_nat,
                (embargoed,),
                ["TS", "members", "public"],
                ["statistics"],
                (datetime.now(UTC) + timedelta(days=7)).isoformat(),
            )
            set_use(pan_nat, (research,), ["TS", "members", "public"], ["research"])
            set_use("reporting_country = 'MEX'", (), ["TS"], ["statistics"])
            now = time.time()
            for event_id, producer, subject, recipients in (
                (
                    "0b5e1a7e-0000-4000-8000-000000000001",
                    "MEX",
                    GTM_REPORT,
                    "GTM:x:00112233445566aa",
                ),
                (
                    "0b5e1a7e-0000-4000-8000-000000000002",
                    "CRI",
                    PAN_REPORT,
                    "PAN:x:00112233445566bb",
                ),
            ):
                conn.execute(
                    "INSERT INTO relay_outbox (event_id, producer, subject, revision, "
                    "recipients, msg_key, msg_value, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    (event_id, producer, subject, 1, recipients, None, b"sealed", now),
                )
            conn.execute(
                "INSERT INTO rejected_message (reason, detail, event_id, producer, "
                "received_at) VALUES (?,?,?,?,?)",
                (
                    "bad-signature",
                    "the signature does not verify with key PAN:3f2a",
                    "0b5e1a7e-0000-4000-8000-0000000000ff",
                    "PAN",
                    now,
                ),
            )
    finally:
        conn.close()
    folder_db = base / "folder-state" / "folder.db"
    with FolderDB(folder_db) as db:
        for name, audience in USERS.items():
            db.add_user(name, audience, PASSWORD)
    return Federation(agg, folder_db, public, embargoed, research)


def expected_public(store: Path, now: datetime | None = None) -> Counter[tuple[str, str, str]]:
    """(period, reporting country, nationality) -> count of what the public may see
    for statistics, read from the raw tables with this test's own rule: of the
    cells the public may see, per period and country, the week x nationality
    table's where there are any (a cell with ``_T`` or nothing in every other
    dimension), else the sum of the detail cells."""
    now = now or datetime.now(UTC)
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute(
            "SELECT c.period, c.reporting_country, coalesce(c.nationality, "
            "'[' || c.nationality_region || ']'), c.sex, c.age_band, c.previous_country, "
            "c.count, u.audiences, u.purposes, u.retain_until, u.embargo_until, u.purged_at "
            "FROM flow_cell c JOIN event_use u ON u.event_id = c.event_id "
            "WHERE c.count IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    seen: dict[tuple[str, str], dict[bool, Counter[str]]] = {}
    for period, country, nat, sex, age, prev, count, aud, pur, retain, embargo, purged in rows:
        if purged is not None or "public" not in json.loads(aud):
            continue
        if "statistics" not in json.loads(pur):
            continue
        if retain is not None and retain < now.date().isoformat():
            continue
        if embargo is not None and datetime.fromisoformat(embargo) > now:
            continue
        if nat in ("_T", "[_T]"):
            continue  # a national total keeps no nationality
        in_table = all(v in (None, "_T") for v in (sex, age, prev))
        seen.setdefault((period, country), {}).setdefault(in_table, Counter())[nat] += count
    out: Counter[tuple[str, str, str]] = Counter()
    for (period, country), tables in seen.items():
        for nat, n in tables.get(True, tables.get(False, Counter())).items():
            out[(period, country, nat)] += n
    return out


def national_totals(store: Path, periods: set[str] | None = None) -> Counter[str]:
    """Country -> the sum of its national weekly totals (the cells with ``_T`` in
    every dimension the country publishes) in ``periods`` (all), as stored."""
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute(
            "SELECT reporting_country, period, count, nationality, nationality_region, sex, "
            "age_band, previous_country FROM flow_cell WHERE count IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    out: Counter[str] = Counter()
    for country, period, count, *dims in rows:
        if periods is not None and period not in periods:
            continue
        if "_T" in dims and all(v in (None, "_T") for v in dims):
            out[country] += count
    return out


@contextmanager
def served(
    fed: Federation, throttle: Throttle | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """The folder on 127.0.0.1 at a free port; yields its base URL once
    /healthz answers 200."""
    server = make_server(
        fed.home,
        "127.0.0.1",
        0,
        refresh_s=3600,
        folder_db=fed.folder_db,
        throttle=throttle,
        tls_cert=tls[0] if tls else None,
        tls_key=tls[1] if tls else None,
    )
    server.start()
    base = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", verify=False, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the folder never became healthy"
            time.sleep(0.05)
        yield base
    finally:
        server.stop()


_CLIENTS: list[httpx.Client] = []


def client(base: str, **kw: Any) -> httpx.Client:
    """An HTTP client closed by ``close_clients`` (an autouse fixture calls it)."""
    made = httpx.Client(base_url=base, **kw)
    _CLIENTS.append(made)
    return made


def close_clients() -> None:
    while _CLIENTS:
        _CLIENTS.pop().close()


def sign_in(base: str, name: str, password: str = PASSWORD, **kw: object) -> httpx.Client:
    """A client with a session: reads the sign-in form's CSRF token and posts it."""
    import re

    client_ = client(base, **kw)
    form = client_.get("/signin")
    token = re.search(r"name='csrf' value='([^']+)'", form.text)
    assert token, form.text
    resp = client_.post(
        "/signin", data={"csrf": token.group(1), "username": name, "password": password}
    )
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    return client_
