"""What every chart of the picture shares, in the HTML report's SVG and in the
folder's Vega-Lite specs: colours, axis ticks, how a number's status looks, and
label placement that never lets two labels collide.

- **Colours.** Reporting countries have fixed colours of their own (the same
  country the same colour in every chart) from a palette that shares no colour
  with the nationalities' palette, so a country's bar is never mistaken for a
  nationality's line.
- **Ticks** fall on round numbers: steps of 1, 2 or 5 times a power of ten.
- **Status** (issue 16's contract: exact, rounded, noisy, lower-bound,
  suppressed): exact and rounded numbers are drawn solid; a noisy one hollow,
  dashed, with its 95% interval; a lower bound hatched and marked "≥".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from node.model.codes import CORRIDOR_ORDER

#: Nationalities: one colour per series, in rank order.
NATIONALITY_PALETTE: tuple[str, ...] = (
    "#1b6ca8", "#d1495b", "#edae49", "#00798c", "#6a4c93", "#3d9970", "#8d6a9f", "#e07a5f",
)  # fmt: skip
#: Reporting countries: muted earth and slate tones, none of them a nationality colour.
COUNTRY_PALETTE: tuple[str, ...] = (
    "#5b4636", "#7d6b4f", "#4a5d52", "#8a5a44", "#55606e", "#9c7a3c", "#6e4b5e", "#3f4f3a",
    "#7a6f66", "#4b5a73", "#8c6d62", "#5e6b3f", "#6f5a7a", "#405b66",
)  # fmt: skip
#: The regional series (all countries releasing to the audience).
REGION_COLOUR = "#1d2733"

#: The picture's statuses, most to least precise.
STATUSES: tuple[str, ...] = ("exact", "rounded", "noisy", "lower-bound", "suppressed")
#: Statuses drawn differently from an exact number.
UNCERTAIN: frozenset[str] = frozenset({"noisy", "lower-bound"})
#: How each status reads in a legend.
STATUS_LABELS: dict[str, str] = {
    "exact": "exact",
    "rounded": "rounded by the country",
    "noisy": "noisy (95% interval)",
    "lower-bound": "at least (cells protected)",
    "suppressed": "suppressed",
}


def country_colour(code: str) -> str:
    """A reporting country's colour, the same in every chart."""
    if code in CORRIDOR_ORDER:
        return COUNTRY_PALETTE[CORRIDOR_ORDER.index(code) % len(COUNTRY_PALETTE)]
    return COUNTRY_PALETTE[sum(map(ord, code)) % len(COUNTRY_PALETTE)]


def nationality_colour(rank: int) -> str:
    return NATIONALITY_PALETTE[rank % len(NATIONALITY_PALETTE)]


def cell_status(cell: Any) -> str:
    """A cell's or row's status: its ``status`` (default exact); a cell the
    country rounded (``estimated``) is at least ``rounded``."""
    raw = cell.get("status") if isinstance(cell, dict) else getattr(cell, "status", None)
    status = str(raw) if raw in STATUSES else "exact"
    estimated = (
        cell.get("estimated") if isinstance(cell, dict) else getattr(cell, "estimated", False)
    )
    return "rounded" if status == "exact" and estimated else status


def combined_status(statuses: Iterable[str]) -> str:
    """The status of a sum: as imprecise as its least precise part."""
    return max(statuses, key=STATUSES.index, default="exact")


def nice_ticks(peak: float, count: int = 5) -> list[int]:
    """Round ticks from 0 to at least ``peak``: a step of 1, 2 or 5 times a
    power of ten, about ``count`` of them."""
    if peak <= 0:
        return [0, 1]
    rough = peak / max(1, count - 1)
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    step = max(1, int(step))
    top = math.ceil(peak / step) * step
    return list(range(0, top + 1, step))


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def text_box(x: float, y: float, text: str, size: float, anchor: str = "middle") -> Box:
    """A generous box around SVG text at (x, baseline y): 0.62 em per
    character (wider than system-ui digits), the ascent above the baseline."""
    width = 0.62 * size * len(text) + 4
    left = {"middle": x - width / 2, "end": x - width, "start": x}[anchor]
    return (left, y - size, left + width, y + 0.3 * size)


def overlaps(a: Box, b: Box, gap: float = 1.0) -> bool:
    return not (
        a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]
    )


def place_labels(
    wanted: Sequence[tuple[float, float, str, int]],
    obstacles: Sequence[Box],
    size: float,
    step: float,
) -> list[tuple[float, float]]:
    """Positions (x, baseline y) for labels that collide with no other label
    and no obstacle. Each label is (x, y, text, direction): it is moved from
    its wanted place, ``step`` at a time, in ``direction`` (-1 up, +1 down),
    and sideways by half its width when moving alone cannot free it."""
    placed: list[Box] = []
    out: list[tuple[float, float]] = []
    for x, y, text, direction in wanted:
        width = 0.62 * size * len(text) + 4
        candidates = [
            (x + dx, y + direction * k * step)
            for k in range(0, 40)
            for dx in (0.0, -width / 2, width / 2)
        ]
        for cx, cy in candidates:
            box = text_box(cx, cy, text, size)
            if not any(overlaps(box, other) for other in (*placed, *obstacles)):
                break
        placed.append(box)
        out.append((cx, cy))
    return out
