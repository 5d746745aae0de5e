"""Charts a reader can read (issue 16), checked in Debian's Chromium.

The HTML report's SVG charts and the folder's Vega-Lite charts are drawn in a
window 800 px wide; the checks read the drawn page's bounding boxes, never
pixels, so they are stable across fonts and versions:

- corridor count labels do not overlap one another or a country's circle;
- nothing in a chart is cut off, and no chart is wider than the window;
- axes have titles naming the unit (encounters), ticks fall on round numbers,
  week labels carry the year;
- the reporting countries' colours are not the nationalities' colours;
- noisy and lower-bound numbers are drawn differently from exact ones.

Screenshots go to the test's tmp dir (the structure checks, not the images,
decide)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

from node.folder.pages import country_spec, nationality_spec, vl_chart
from node.report.audience import Scope
from node.report.html import _CSS, report_html
from node.report.regional import FlowCell
from node.report.svg import bar_chart, corridor_diagram, line_chart
from node.store.picture import PictureStore
from tests.browser import chromium
from tests.folder_support import (
    PASSWORD,
    Federation,
    build_federation,
    close_clients,
    served,
)
from tests.test_sdmx_structure import NOW

if TYPE_CHECKING:  # playwright is imported where a browser starts
    from playwright.sync_api import Browser, Page

WIDTH = 800
STATIC = Path(__file__).parent.parent / "node" / "folder" / "static"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    exe = chromium()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def narrow(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


# -- what the checks read from the drawn page -------------------------------------------

_BOXES = """(sel) => Array.from(document.querySelectorAll(sel)).map(e => {
  const r = e.getBoundingClientRect();
  return {text: e.textContent, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
})"""

_CLIPPED = """(sel) => {
  const out = [];
  for (const svg of document.querySelectorAll(sel)) {
    const s = svg.getBoundingClientRect();
    if (s.right > window.innerWidth + 0.5 || s.left < -0.5) {
      out.push({chart: svg.id || svg.parentElement.id, what: 'chart', right: s.right});
    }
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left < s.left - 1 || r.right > s.right + 1 || r.top < s.top - 1 ||
          r.bottom > s.bottom + 1) {
        out.push({chart: svg.id || svg.parentElement.id, what: t.textContent});
      }
    }
  }
  return out;
}"""


class Box(TypedDict):
    """What _BOXES reads of an element: its text and its bounding box."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def _boxes(page: Page, selector: str) -> list[Box]:
    boxes: list[Box] = page.evaluate(_BOXES, selector)
    return boxes


def _collisions(boxes: list[Box], others: list[Box] | None = None) -> list[tuple[str, str]]:
    """Pairs of boxes whose areas intersect (touching edges do not count)."""

    def hit(a: Box, b: Box) -> bool:
        return (
            min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > 0.5
            and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > 0.5
        )

    if others is None:
        return [
            (a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if hit(a, b)
        ]
    return [(a["text"], b["text"]) for a in boxes for b in others if hit(a, b)]


def _round_steps(labels: list[str]) -> None:
    """Tick labels are evenly spaced round numbers: a step of 1, 2 or 5 times a
    power of ten, each a multiple of the step."""
    values = [int(t.replace(",", "")) for t in labels if t.strip()]
    assert len(values) >= 3, labels
    values.sort()
    steps = {b - a for a, b in pairwise(values)}
    assert len(steps) == 1, labels
    (step,) = steps
    mantissa = step / 10 ** (len(str(step)) - 1)
    assert mantissa in (1, 2, 5), (step, labels)
    assert all(v % step == 0 for v in values), labels


def _colour(value: str) -> str:
    """A computed CSS colour, as 'r,g,b'."""
    nums = re.findall(r"[\d.]+", value)
    return ",".join(nums[:3])


# -- the HTML report's SVG charts -------------------------------------------------------


def _dense_legs() -> list[dict[str, Any]]:
    """Every leg between neighbours and near neighbours of a long corridor, both
    ways, with counts of every width: where naive labels pile up."""
    chain = ["COL", "PAN", "CRI", "NIC", "HND", "SLV", "GTM", "MEX", "USA", "CAN"]
    legs = []
    for i, a in enumerate(chain):
        for j in (i + 1, i + 2, i + 3):
            if j < len(chain):
                legs.append({"from": a, "to": chain[j], "count": 1000 + 137 * i + 11 * j})
                legs.append({"from": chain[j], "to": a, "count": 20 + 7 * i + j})
    legs.append({"from": "ECU", "to": "COL", "count": 123_456, "status": "lower-bound"})
    return legs


def _status_cells() -> list[FlowCell]:
    """Weekly cells of every status, as countries publish them: PAN's week x
    nationality table (HTI exact, CHN noisy with its interval, obs_status N),
    MEX's rounded cells (obs_status E), and CRI's only table keeping sex too,
    so its nationality numbers are lower-bound sums."""
    cells = []
    for w in range(1, 14):
        period = f"2024-W{w:02d}"
        cells.append(FlowCell(period, "ISO_WEEK", "PAN", "HTI", None, None, 300 + 9 * w, False))
        cells.append(
            FlowCell(
                period,
                "ISO_WEEK",
                "PAN",
                "CHN",
                None,
                None,
                120 + w,
                False,
                obs_status="N",
                ci95=(100 + w, 140 + w),
            )
        )
        cells.append(FlowCell(period, "ISO_WEEK", "CRI", "VEN", None, None, 80 + w, False, sex="F"))
        cells.append(
            FlowCell(period, "ISO_WEEK", "MEX", "IND", None, None, 40 + w, True, obs_status="E")
        )
    return cells


def _svg_page(tmp_path: Path) -> Path:
    cells = _status_cells()
    totals = {"PAN": 5000, "CRI": 1234, "MEX": 777, "GTM": 3100}
    statuses = {"CRI": "lower-bound", "MEX": "noisy"}
    body = (
        line_chart(cells) + corridor_diagram(_dense_legs()) + bar_chart(totals, statuses=statuses)
    )
    path = tmp_path / "charts.html"
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><style>{_CSS}</style>"
        f"</head><body>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def test_report_charts_fit_800px_and_their_labels_never_collide(
    narrow: Page, tmp_path: Path
) -> None:
    narrow.goto(_svg_page(tmp_path).as_uri())
    narrow.screenshot(path=str(tmp_path / "report-charts-800.png"), full_page=True)
    assert narrow.evaluate(_CLIPPED, "svg.chart") == []
    # Corridor: no count label on another, none on a country's circle.
    labels = _boxes(narrow, "#chart-corridor .leg-label")
    assert len(labels) == len(_dense_legs())
    assert _collisions(labels) == []
    circles = _boxes(narrow, "#chart-corridor circle")
    assert _collisions(labels, circles) == []
    assert "≥123,456" in {b["text"] for b in labels}  # a lower bound says so
    # Line chart: titled axes with the unit, round ticks, weeks with their year,
    # week labels that do not overlap.
    titles = {b["text"] for b in _boxes(narrow, "#chart-flows .axis-title")}
    assert titles == {"Encounters per week", "ISO week (year-Www)"}
    _round_steps([b["text"] for b in _boxes(narrow, "#chart-flows .y-tick")])
    weeks = _boxes(narrow, "#chart-flows .x-tick")
    assert weeks and all(re.fullmatch(r"\d{4}-W\d{2}", b["text"]) for b in weeks)
    assert _collisions(weeks) == []
    # Bar chart: a titled, round axis too.
    assert "Encounters (all weeks shown)" in {
        b["text"] for b in _boxes(narrow, "#chart-countries .axis-title")
    }
    _round_steps([b["text"] for b in _boxes(narrow, "#chart-countries .x-tick")])


def test_report_country_colours_are_not_nationality_colours_and_statuses_differ(
    narrow: Page, tmp_path: Path
) -> None:
    narrow.goto(_svg_page(tmp_path).as_uri())
    style = """(sel) => Array.from(document.querySelectorAll(sel)).map(e => {
      const s = getComputedStyle(e);
      return {tag: e.tagName, status: e.getAttribute('data-status'), fill: s.fill,
              stroke: s.stroke, dash: s.strokeDasharray, color: s.color};
    })"""
    lines = {_colour(s["stroke"]) for s in narrow.evaluate(style, "#chart-flows .series")}
    bars = narrow.evaluate(style, "#chart-countries .bar")
    bar_colours = {_colour(b["fill"]) for b in bars if b["status"] == "exact"} | {
        _colour(b["stroke"]) for b in bars if b["status"] != "exact"
    }
    assert len(lines) == 4 and len(bar_colours) == 4
    assert lines.isdisjoint(bar_colours)
    # Each status draws differently: exact filled, noisy hollow and dashed,
    # lower bound a hollow triangle ("at least"); bars the same way.
    points = narrow.evaluate(style, "#chart-flows .point")
    look = {
        p["status"]: (p["tag"], p["fill"] == "rgb(255, 255, 255)", p["dash"] != "none")
        for p in points
    }
    assert set(look) == {"exact", "rounded", "noisy", "lower-bound"}
    assert look["exact"] == look["rounded"] == ("circle", False, False)
    assert look["noisy"] == ("circle", True, True)
    assert look["lower-bound"] == ("path", True, False)
    assert len(_boxes(narrow, "#chart-flows .interval")) == 13  # each noisy point's 95%
    bar_look = {b["status"]: (b["fill"], b["dash"]) for b in bars}
    assert len(set(bar_look.values())) == 3, bar_look
    assert "url(" in bar_look["lower-bound"][0]
    key = {b["text"] for b in _boxes(narrow, "#chart-flows .status-key text")}
    assert {"noisy (95% interval)", "at least (cells protected)"} <= key


def test_the_real_report_at_800px(narrow: Page, fed: Federation, tmp_path: Path) -> None:
    with PictureStore(fed.home.store_path) as store:
        text = report_html(store, Scope("TS", None, NOW))
    path = tmp_path / "report.html"
    path.write_text(text, encoding="utf-8")
    narrow.goto(path.as_uri())
    narrow.screenshot(path=str(tmp_path / "report-800.png"), full_page=True)
    assert narrow.evaluate(_CLIPPED, "svg.chart") == []
    labels = _boxes(narrow, "#chart-corridor .leg-label")
    assert labels and _collisions(labels) == []
    assert _collisions(labels, _boxes(narrow, "#chart-corridor circle")) == []


# -- the folder's Vega-Lite charts --------------------------------------------------------


def _vega_page(tmp_path: Path) -> Path:
    """The folder's chart markup and scripts (vendored Vega, folder.js) in a page
    of its own, for specs with every status."""
    cells = _status_cells()
    totals = {"PAN": 5000, "CRI": 1234, "MEX": 777, "GTM": 3100}
    statuses = {"CRI": "lower-bound", "MEX": "noisy"}
    scripts = "".join(
        f"<script src='{(STATIC / s).as_uri()}'></script>"
        for s in (
            "vendor/vega.min.js",
            "vendor/vega-lite.min.js",
            "vendor/vega-embed.min.js",
            "vendor/vega-interpreter.js",
            "folder.js",
        )
    )
    body = vl_chart("chart-by-country", country_spec(totals, statuses)) + vl_chart(
        "chart-by-nationality", nationality_spec(cells)
    )
    path = tmp_path / "vega.html"
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><link rel='stylesheet' "
        f"href='{(STATIC / 'folder.css').as_uri()}'></head><body><main>{body}</main>"
        f"{scripts}</body></html>",
        encoding="utf-8",
    )
    return path


def _vega_checks(page: Page, shots: Path, name: str) -> None:
    for chart in ("#chart-by-country", "#chart-by-nationality"):
        page.wait_for_selector(f"{chart}[data-rendered=true]")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert page.evaluate(_CLIPPED, ".vl-chart svg") == []
    titles = {b["text"] for b in _boxes(page, "#chart-by-nationality .role-axis-title text")}
    assert titles == {"Encounters per week", "ISO week (year-Www)"}
    assert {b["text"] for b in _boxes(page, "#chart-by-country .role-axis-title text")} == {
        "Encounters",
        "Reporting country",
    }
    # The count axis is the only one with numbers.
    ticks = [
        b["text"]
        for b in _boxes(page, "#chart-by-country .role-axis-label text")
        if re.fullmatch(r"[\d,]+", b["text"])
    ]
    _round_steps(ticks)
    weeks = [
        b for b in _boxes(page, "#chart-by-nationality .role-axis-label text") if "W" in b["text"]
    ]
    assert weeks and all(re.fullmatch(r"\d{4}-W\d{2}", b["text"]) for b in weeks)
    assert _collisions(weeks) == []


def _how_exact(label: str) -> str:
    """The status a mark's aria-label states."""
    found = re.search(r"How exact: ([\w-]+)", label)
    assert found, label
    return found[1]


def test_folder_charts_fit_800px_with_titled_round_axes_and_status_marks(
    narrow: Page, tmp_path: Path
) -> None:
    narrow.goto(_vega_page(tmp_path).as_uri())
    _vega_checks(narrow, tmp_path, "vega-800")
    attrs = """(sel) => Array.from(document.querySelectorAll(sel)).map(e => ({
      label: e.getAttribute('aria-label'), fill: e.getAttribute('fill'),
      stroke: e.getAttribute('stroke'), opacity: e.getAttribute('fill-opacity'),
      dash: e.getAttribute('stroke-dasharray'), d: e.getAttribute('d')}))"""
    bars = narrow.evaluate(attrs, "#chart-by-country .mark-rect path")
    by_status = {_how_exact(b["label"]): b for b in bars}
    assert set(by_status) == {"exact", "lower-bound", "noisy"}
    looks = {s: (float(b["opacity"]), b["dash"]) for s, b in by_status.items()}
    # Uncertain bars are paler than exact ones, and outlined in dashes of their own.
    assert looks["exact"][0] == 1 > looks["lower-bound"][0] > looks["noisy"][0], looks
    assert len({dash for _, dash in looks.values()}) == 3, looks
    points = narrow.evaluate(attrs, "#chart-by-nationality .mark-symbol.role-mark path")
    shapes: dict[str, set[str]] = {}
    for p in points:
        status = _how_exact(p["label"])
        shapes.setdefault(status, set()).add(p["d"])
    assert {"exact", "rounded", "noisy", "lower-bound"} <= set(shapes)
    assert shapes["noisy"].isdisjoint(shapes["exact"])
    assert shapes["lower-bound"].isdisjoint(shapes["exact"] | shapes["noisy"])
    # Country colours are not nationality colours.
    bar_fills = {b["fill"].lower() for b in bars}
    line_strokes = {
        p["stroke"].lower() for p in narrow.evaluate(attrs, "#chart-by-nationality .mark-line path")
    }
    assert bar_fills and line_strokes and bar_fills.isdisjoint(line_strokes)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return build_federation(tmp_path_factory.mktemp("charts-folder"))


@pytest.fixture(scope="module")
def base(fed: Federation) -> Iterator[str]:
    with served(fed) as url:
        yield url
    close_clients()


def test_the_folder_flows_page_at_800px(
    browser: Browser, base: str, fed: Federation, tmp_path: Path
) -> None:
    context = browser.new_context(base_url=base, viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    try:
        page.goto("/signin")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("#signin button[type=submit]")
        page.wait_for_url(re.compile(r"/$"))
        page.goto("/flows")
        _vega_checks(page, tmp_path, "folder-flows-800")
        page.goto("/corridors")
        page.screenshot(path=str(tmp_path / "folder-corridors-800.png"), full_page=True)
        assert page.evaluate(_CLIPPED, "svg.chart") == []
        labels = _boxes(page, "#chart-corridor .leg-label")
        assert labels and _collisions(labels) == []
    finally:
        context.close()
