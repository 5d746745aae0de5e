"""How ``aggregate --rebuild`` shows its progress on stderr.

A rich progress bar (messages applied of those on the topic, events/s, ETA)
when stderr is a terminal; otherwise one plain line every few seconds and one
at the end, so a log file or a container's output stays readable; with JSON
logs, the same figures as INFO records.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from node.aggregator.rebuild import RebuildProgress
from node.cli.common import err_console, json_logs, progress

#: Seconds between two plain progress lines.
PLAIN_EVERY_S = 5.0


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def plain_line(p: RebuildProgress) -> str:
    """One line of progress: ``rebuild: 1,200/5,000 messages (24%), 3,100 ev/s, ETA 0m01s``."""
    share = f" ({100 * p.done // p.total}%)" if p.total else ""
    return (
        f"rebuild: {p.done:,}/{p.total:,} messages{share}, {p.rate:,.0f} ev/s, ETA {_eta(p.eta_s)}"
    )


@contextmanager
def rebuild_progress() -> Iterator[Callable[[RebuildProgress], None]]:
    """Yields the callback ``rebuild_picture`` reports its progress to."""
    if not json_logs() and err_console.is_terminal:
        columns = (
            TextColumn("rebuild"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TextColumn("{task.fields[rate]} ev/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("rebuild", total=None, rate="0", eta="?")

            def draw(p: RebuildProgress) -> None:
                bar.update(
                    task,
                    completed=p.done,
                    total=p.total,
                    rate=f"{p.rate:,.0f}",
                    eta=_eta(p.eta_s),
                )

            yield draw
        return

    last: list[RebuildProgress] = []
    shown = [0.0]

    def line(p: RebuildProgress) -> None:
        last[:] = [p]
        now = time.monotonic()
        if now - shown[0] >= PLAIN_EVERY_S:
            shown[0] = now
            _emit(p)

    yield line
    if last:
        _emit(last[0])


def _emit(p: RebuildProgress) -> None:
    if json_logs():
        progress(
            plain_line(p),
            done=p.done,
            total=p.total,
            events_per_s=round(p.rate),
            eta_s=None if p.eta_s is None else round(p.eta_s),
        )
    else:
        print(plain_line(p), file=sys.stderr, flush=True)
