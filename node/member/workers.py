"""Worker processes of a large publish: drainers and stagers.

A large publish spends most of its time building events (policy transforms,
the egress guard, Avro, signatures) and the rest handing them to Kafka. Both
are CPU-bound Python, so threads would take turns on one core. Instead:

- a **drainer** (``python -m node.member.worker_main drain HOME BOOTSTRAP``) sends what
  the stagers commit to the outbox, marking rows acknowledged only on the
  broker's acknowledgement, exactly as a serial publish;
- **stagers** (``python -m node.member.worker_main stage HOME AFTER UPTO NOW``) each
  stage one record-id range of the encounter records, in committed chunks,
  while the parent stages statistics and reference events, then the
  withdrawals once every range is in.

The outbox stays the only hand-over. Each worker is a fresh interpreter (never
a fork of a parent that may hold threads and SQLite connections) that opens the
home, the store and its keys itself: keys are read from the home with the
passphrase from the environment, as the parent does; no key crosses a pipe.

The protocol is lines of text. Parent to child, on stdin: end of input (or a
line ``done``) tells a drainer that staging is finished. A stager reads the
egress guard's normalised identifying values, which the parent computed once
(``count N``, N lines, ``end``): they stay in the two processes' memory, on an
anonymous pipe, never on disk or in a log. A stager that does not get all N
and the ``end`` line stages nothing (a guard must never be built from a
partial list). Child to parent, on
stdout: ``acked N`` after each acknowledged batch (drainers), then one JSON
line ``{"ok": true, ...result}`` or ``{"ok": false, "error": "<CorredorError
subclass>", "message": "..."}``. A drainer whose parent dies sees end of
input, drains what was committed and exits: nothing staged is ever lost, at
worst sent by the next publish.

This module is the parent's side; the children run ``node.member.worker_main``,
which builds on ``node.member.staging`` and ``node.member.publish`` (which use
this module: so the two sides live apart, and nothing imports in a circle).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from node import errors
from node.errors import CorredorError, TransportError
from node.member.drain import DrainResult


class _Child:
    """One worker process and the reader of its output lines."""

    def __init__(self, *args: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "node.member.worker_main", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._acknowledged = 0
        self._outcome: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, name=f"corredor-{args[0]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            if line.startswith("acked "):
                self._acknowledged += int(line.split()[1])
            elif line.startswith("{"):
                self._outcome = json.loads(line)

    def _close_stdin(self) -> None:
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def __enter__(self) -> _Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close_stdin()
        try:
            self._process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)
        if self._process.stdout is not None and not self._reader.is_alive():
            self._process.stdout.close()

    def _result(self, on_wait: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """Wait for the child's result line; raise the error it reported."""
        while self._reader.is_alive():
            self._reader.join(timeout=0.1)
            on_wait()
        code = self._process.wait()
        on_wait()
        outcome = self._outcome
        if outcome is None:
            raise TransportError(f"worker process ended without a result (exit code {code})")
        if not outcome["ok"]:
            error = getattr(errors, str(outcome["error"]), None)
            if isinstance(error, type) and issubclass(error, CorredorError):
                raise error(str(outcome["message"]))
            raise TransportError(str(outcome["message"]))
        return outcome


class BackgroundDrainer(_Child):
    """Drains a home's outbox from a child process until told staging is done.

    Use as a context manager around the staging; then ``finish()`` waits for
    the outbox to empty and returns what was sent and acknowledged, raising
    the child's error (``TransportError`` if it could not deliver). Leaving
    the block without ``finish()`` (staging failed) tells the child to stop
    after draining what is committed."""

    def __init__(self, home_path: Path, bootstrap: str | None) -> None:
        super().__init__("drain", str(home_path), bootstrap or "")
        self._reported = 0

    def __enter__(self) -> BackgroundDrainer:
        return self

    def report_progress(self, progress: Callable[[int], None] | None) -> None:
        """Pass on acknowledgements counted since the last call."""
        now = self._acknowledged
        if progress is not None and now > self._reported:
            progress(now - self._reported)
        self._reported = now

    def finish(self, progress: Callable[[int], None] | None = None) -> DrainResult:
        """Tell the child staging is done; wait until it has drained the outbox."""
        self._close_stdin()
        outcome = self._result(lambda: self.report_progress(progress))
        return DrainResult(int(outcome["sent"]), int(outcome["acknowledged"]))


@dataclass(frozen=True)
class PartResult:
    """What a stager staged of its record-id range."""

    records: int
    new: int
    revised: int
    refused: tuple[dict[str, str], ...]
    refused_subjects: tuple[str, ...]


class StagerProcess(_Child):
    """Stages the encounter records in one record-id range from a child process."""

    def __init__(self, home_path: Path, after: str, upto: str | None, now: datetime) -> None:
        super().__init__("stage", str(home_path), after, upto or "", now.isoformat())
        self._writer: threading.Thread | None = None

    def __enter__(self) -> StagerProcess:
        return self

    def send_guard(self, normalised: frozenset[str]) -> None:
        """Hand the child the guard's normalised identifying values, from a
        thread (the pipe fills faster than the child, still starting, reads)."""
        lines = [f"count {len(normalised)}", *normalised, "end"]
        if any("\n" in v for v in normalised):  # normalise strips whitespace
            raise ValueError("a normalised identifying value holds a line break")
        stdin = self._process.stdin
        assert stdin is not None

        def write() -> None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                stdin.write("\n".join(lines) + "\n")
                stdin.close()

        self._writer = threading.Thread(target=write, name="corredor-guard-values", daemon=True)
        self._writer.start()

    def _close_stdin(self) -> None:
        if self._writer is not None:
            self._writer.join()
        super()._close_stdin()

    def finish(self, on_wait: Callable[[], None] | None = None) -> PartResult:
        """Wait for the part's result; ``on_wait`` runs while waiting."""
        self._close_stdin()
        r = self._result(on_wait or (lambda: None))
        return PartResult(
            int(r["records"]),
            int(r["new"]),
            int(r["revised"]),
            tuple(r["refused"]),
            tuple(r["refused_subjects"]),
        )


def read_guard_values(stream: IO[str]) -> frozenset[str]:
    """The ``count N`` / N values / ``end`` block a stager's parent sends;
    anything short of it whole is an error, never a smaller guard."""
    header = stream.readline().rstrip("\n")
    if not header.startswith("count "):
        raise CorredorError("stager: no identifying values from the parent; nothing staged")
    expected = int(header.split()[1])
    values = [stream.readline().rstrip("\n") for _ in range(expected)]
    if stream.readline().rstrip("\n") != "end" or len(set(values)) != expected:
        raise CorredorError("stager: the identifying values arrived incomplete; nothing staged")
    return frozenset(values)
