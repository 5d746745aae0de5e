"""Headless Chromium (Debian's ``chromium`` package) for the HTML report tests.

Outside CI a missing chromium skips the test; under ``CI=true`` it fails, so
the report is always rendered where it counts (``.ci/run`` installs it)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return exe


def _run(args: list[str]) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@dataclass(frozen=True)
class Rendered:
    dom: str
    screenshot: Path

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.dom))


def render(page: Path, screenshot: Path, size: str = "1280,2000") -> Rendered:
    """The DOM Chromium built from ``page`` and a PNG screenshot of it."""
    url = page.resolve().as_uri()
    dom = _run(["--dump-dom", url])
    _run([f"--screenshot={screenshot}", f"--window-size={size}", url])
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    return Rendered(dom, screenshot)


def png_colours(path: Path) -> Counter[tuple[int, int, int]]:
    """Pixel counts by RGB of an 8-bit, non-interlaced RGB(A) PNG (what Chromium
    writes), decoded with zlib alone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    counts: Counter[tuple[int, int, int]] = Counter()
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            corner = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif ftype == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        counts.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        prev = line
    return counts


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def assert_report_rendered(report: Path, screenshot: Path) -> Rendered:
    """The report's three charts were parsed as SVG with their marks drawn."""
    page = render(report, screenshot)
    assert page.count(r"<svg\b") == 3, "three SVG charts"
    assert page.count(r'<polyline class="series"') >= 3, "flows over time: one line per series"
    assert page.count(r'<path class="leg"') >= 2, "corridor diagram: arcs for route legs"
    assert page.count(r'<rect class="bar"') >= 2, "country comparison: bars"
    assert "Legislation matrix" in page.dom
    # The screenshot shows them: reporting countries' colours fill their bars,
    # the first nationality's colour draws its line (not a blank or unstyled page).
    from node.report.charts import COUNTRY_PALETTE, NATIONALITY_PALETTE

    colours = png_colours(screenshot)
    bars = [c for c in COUNTRY_PALETTE if colours[_rgb(c)] > 2000]
    assert len(bars) >= 2, colours.most_common(8)
    assert colours[_rgb(NATIONALITY_PALETTE[0])] > 1000, colours.most_common(8)
    return page
