"""The online folder in a real browser: Debian's Chromium driven by Playwright
for Python (launched by executable path; no browser is downloaded).

Signing in, filtering flows, a chart drawn with the table's numbers, an SDMX
download, a member seeing its own releases and not a report addressed to
another, a public visitor seeing no embargoed, TS-only or purpose-restricted
number, and signing out. Screenshots go to ``tests/artifacts/folder`` (or
``$CORREDOR_TEST_ARTIFACTS``), which git ignores."""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from node.folder.accounts import FolderDB
from node.report.sdmx import COLUMNS
from tests.browser import chromium
from tests.folder_support import (
    GTM_REPORT,
    PAN_REPORT,
    PASSWORD,
    Federation,
    build_federation,
    close_clients,
    expected_public,
    national_totals,
    served,
    sign_in,
)

if TYPE_CHECKING:  # playwright is imported where a browser starts
    from playwright.sync_api import Browser, Page

ARTIFACTS = (
    Path(os.environ.get("CORREDOR_TEST_ARTIFACTS", Path(__file__).parent / "artifacts")) / "folder"
)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return build_federation(tmp_path_factory.mktemp("folder-browser"))


@pytest.fixture(scope="module")
def base(fed: Federation) -> Iterator[str]:
    with served(fed) as url:
        yield url
    close_clients()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    exe = chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, base: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base, accept_downloads=True)
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    # The page made no request anywhere but the folder, and nothing broke the CSP
    # or failed to load (the 403s are the refusals the tests ask for).
    assert all(u.startswith(base) for u in requests), [
        u for u in requests if not u.startswith(base)
    ]
    assert not [m for m in errors if "status of 403" not in m], errors


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 5_000


def _sign_in(page: Page, name: str) -> None:
    page.goto("/flows")
    assert page.url.endswith("/signin")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    assert page.inner_text("#audience")


def _table(page: Page, selector: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))",
    )
    return rows


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _labels(page: Page, selector: str) -> list[dict[str, str]]:
    """The ARIA labels Vega gives each drawn mark ("Week: 2024-W03; Encounters: 45;
    ..."), for marks with a size on the page."""
    marks = page.eval_on_selector_all(
        selector,
        "ms => ms.map(m => [m.getAttribute('aria-label'), "
        "m.getBoundingClientRect().width + m.getBoundingClientRect().height])",
    )
    out = []
    for label, size in marks:
        assert size > 0, label  # drawn, not just present
        out.append(dict(part.split(": ", 1) for part in label.split("; ")))
    return out


def _bars(page: Page) -> dict[str, int]:
    """The bar chart (Vega-Lite, drawn in the browser): country -> value."""
    page.wait_for_selector("#chart-by-country[data-rendered=true]")
    return {
        m["country"]: _count(m["Encounters"])
        for m in _labels(page, "#chart-by-country svg .mark-rect path")
    }


def test_sign_in_filter_chart_download_and_sign_out(page: Page, base: str, fed: Federation) -> None:
    _sign_in(page, "ana")
    assert page.inner_text("#audience") == "TS"
    _shot(page, "01-signed-in-overview")

    page.goto("/flows")
    every = _table(page, "#flows-table")
    totals: Counter[str] = Counter()
    for _period, country, _nat, _region, count, status, _number in every:
        totals[country] += _count(count)
        assert status in ("A", "E")
    assert set(totals) == {"PAN", "CRI", "GTM", "MEX"}
    # The chart shows each country's national totals (every member publishes
    # them), which hold the suppressed cells the rows miss.
    national = national_totals(fed.home.store_path)
    assert _bars(page) == dict(national)
    assert all(totals[c] <= national[c] for c in national)
    # The weekly chart: each point is a week's sum of the table's rows for a nationality.
    page.wait_for_selector("#chart-by-nationality[data-rendered=true]")
    points = _labels(page, "#chart-by-nationality svg .mark-symbol.role-mark path")
    weekly: Counter[tuple[str, str]] = Counter()
    for period, _c, nat, region, count, _s, _n in every:
        weekly[(period, nat or f"[{region}]")] += _count(count)
    assert len(points) >= 20
    for p in points:
        assert weekly[(p["Week"], p["Nationality"])] == _count(p["Encounters"]), p
    # Interactive: a click on a legend entry picks its line out, the others fade.
    lines = "#chart-by-nationality svg .mark-line path"
    page.locator("#chart-by-nationality svg .role-legend-symbol path").nth(0).click()
    page.wait_for_function(f"document.querySelectorAll(\"{lines}[opacity='0.15']\").length > 0")
    opacity = page.eval_on_selector_all(lines, "ps => ps.map(p => p.getAttribute('opacity'))")
    assert opacity.count("1") == 1 and opacity.count("0.15") == len(opacity) - 1
    page.hover("#chart-by-country svg .mark-rect path >> nth=0")
    page.wait_for_selector("#vg-tooltip-element.visible")
    assert "Panama" in page.inner_text("#vg-tooltip-element")
    _shot(page, "02-flows-all")

    # Filter: one reporting country and a period range, through the form.
    periods = sorted({r[0] for r in every})
    page.select_option("select[name=country]", "CRI")
    page.select_option("select[name=from]", periods[3])
    page.select_option("select[name=to]", periods[8])
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"country=CRI"))
    rows = _table(page, "#flows-table")
    want = [r for r in every if r[1] == "CRI" and periods[3] <= r[0] <= periods[8]]
    assert rows == want and rows
    shown = national_totals(fed.home.store_path, set(periods[3:9]))
    assert _bars(page) == {"CRI": shown["CRI"]} and shown["CRI"] >= sum(_count(r[4]) for r in rows)
    _shot(page, "03-flows-filtered")

    # Download SDMX-CSV: the audience's numbers, the same totals as the table.
    page.goto("/downloads")
    with page.expect_download() as info:
        page.click("a[href='/download/flows.sdmx.csv']")
    path = info.value.path()
    text = Path(path).read_text(encoding="utf-8")
    data = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert {r["AUDIENCE"] for r in data} == {"TS"}
    # Its nationality rows are the table's; its national totals (CITIZENSHIP
    # _T) are the stored ones, never added to the rows.
    by_area: Counter[str] = Counter()
    by_total: Counter[str] = Counter()
    for r in data:
        total = "_T" in (r["CITIZENSHIP"], r["CITIZENSHIP_REGION"])
        (by_total if total else by_area)[r["REF_AREA"]] += int(r["OBS_VALUE"])
    assert dict(by_area) == dict(totals)
    assert dict(by_total) == dict(national)
    _shot(page, "04-downloads")

    page.click("#signout")
    page.wait_for_url(re.compile(r"/signin$"))
    page.goto("/flows")
    assert page.url.endswith("/signin")  # signed out: back to the sign-in form
    assert page.locator("#flows-table").count() == 0
    _shot(page, "05-signed-out")


def test_a_member_sees_its_own_releases_and_not_a_report_for_another(page: Page) -> None:
    _sign_in(page, "pan-stats")
    assert page.inner_text("#audience") == "PAN"
    page.goto("/countries/PAN")
    releases = _table(page, "#releases")
    assert releases and {r[0] for r in releases} >= {"FlowStatistic"}
    kinds = dict((k, int(n)) for k, n in _table(page, "#kinds"))
    assert kinds["FlowStatistic"] > 0
    _shot(page, "06-pan-own-folder")
    page.click("a[href='/received/PAN']")
    aside = _table(page, "#set-aside")
    assert aside and aside[0][0] == "bad-signature"
    _shot(page, "07-pan-received")
    page.goto("/intelligence")
    body = page.inner_text("main")
    assert PAN_REPORT in body and GTM_REPORT not in body
    _shot(page, "08-pan-intelligence")
    # MEX's numbers are for the Secretariat only: not in PAN's flows.
    page.goto("/flows")
    assert "MEX" not in {r[1] for r in _table(page, "#flows-table")}
    refused = page.goto("/access-log")
    assert refused is not None and refused.status == 403


def test_a_public_visitor_sees_only_public_numbers(page: Page, fed: Federation, base: str) -> None:
    page.goto("/flows")
    assert page.url.endswith("/signin")  # off until the Secretariat enables it
    with FolderDB(fed.folder_db) as db:
        db.set_setting("public_enabled", "1")
    try:
        page.goto("/flows")
        assert page.inner_text("#audience") == "public"
        rows = _table(page, "#flows-table")
        seen = Counter({(r[0], r[1], r[2]): _count(r[4]) for r in rows})
        want = expected_public(fed.home.store_path)
        assert seen == want and want
        nationalities = {r[2] for r in rows}
        assert nationalities == {fed.public_nat}
        assert fed.embargoed_nat not in nationalities and fed.research_nat not in nationalities
        assert "MEX" not in {r[1] for r in rows}
        assert _bars(page) == {"PAN": sum(want.values())}
        _shot(page, "09-public-flows")
        # Legislation is public in every member's policy: the public matrix has it.
        page.goto("/reference/legislation")
        assert len(_table(page, "#legislation")) == 4
        refused = page.goto("/received/PAN")
        assert refused is not None and refused.status == 403
    finally:
        with FolderDB(fed.folder_db) as db:
            db.set_setting("public_enabled", "0")


def test_the_trends_chart_draws_the_trends_table(page: Page) -> None:
    _sign_in(page, "ana")
    page.goto("/trends")
    page.wait_for_selector("#chart-trends[data-rendered=true]")
    points = _labels(page, "#chart-trends svg .mark-symbol.role-mark path")
    rows = _table(page, "#trends-table")
    assert len(points) == len(rows) and rows
    assert {(p["Week"], p["Series"], _count(p["Encounters"])) for p in points} == {
        (r[0], r[1], _count(r[2])) for r in rows
    }
    _shot(page, "10-trends")


def test_the_api_in_the_browser_matches_the_page(page: Page, base: str) -> None:
    client = sign_in(base, "iom-desk")
    api = client.get("/api/flows").json()["flows"]
    _sign_in(page, "iom-desk")
    page.goto("/flows")
    rows = _table(page, "#flows-table")
    assert [(r[0], r[1], r[2], _count(r[4])) for r in rows] == [
        (f["period"], f["reporting_country"], f["nationality"] or "", f["count"]) for f in api
    ]
