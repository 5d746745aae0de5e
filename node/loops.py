"""What every long-running loop uses (``publish --follow``, ``aggregate --follow``,
``deploy``'s services): stopping cleanly on a signal between batches, backing
off from a broker that went away, and waiting for a condition.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("corredor.follow")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGTERM/SIGINT while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current batch", signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class Backoff:
    """Exponential backoff with a ceiling, reset on success."""

    initial: float = 0.5
    ceiling: float = 15.0
    current: float = field(default=0.0)

    def next(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.ceiling, self.current * 2)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate`` until true or the deadline (tests and operators' scripts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
