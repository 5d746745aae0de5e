"""Draining the outbox in a second process while this one stages.

A large publish spends most of its time building events (policy transforms,
the egress guard, Avro, signatures) and the rest handing them to Kafka. Both
are CPU-bound Python, so threads would take turns on one core; a child
process drains on the other core while the parent stages in committed chunks
(``stage_publication(commit_chunks=True)``). The outbox stays the only
hand-over: the child sends only what is committed, and marks a row
acknowledged only on the broker's acknowledgement, exactly as a serial publish.

The child is ``python -m node.drainer HOME [BOOTSTRAP]``, a fresh interpreter
(never a fork of a parent that may hold threads and SQLite connections). It
opens the home, the store and its own producer itself; no key or secret
crosses the process boundary. The protocol is lines of text:

- parent -> child, on stdin: end of input (or a line ``done``) means staging
  is finished: drain what is left, then exit;
- child -> parent, on stdout: ``acked N`` after each acknowledged batch, then
  one JSON line ``{"ok": true, "sent": S, "acknowledged": A}`` or
  ``{"ok": false, "error": "<CorredorError subclass>", "message": "..."}``.

If the parent dies, the child sees end of input, drains what was committed
and exits: nothing staged is ever lost, at worst sent by the next publish.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from node import errors
from node.errors import CorredorError, TransportError
from node.pipeline import DrainResult


class BackgroundDrainer:
    """Drains a home's outbox from a child process until told staging is done.

    Use as a context manager around the staging; then ``finish()`` waits for
    the outbox to empty and returns what was sent and acknowledged, raising
    the child's error (``TransportError`` if it could not deliver). Leaving
    the block without ``finish()`` (staging failed) tells the child to stop
    after draining what is committed."""

    def __init__(self, home_path: Path, bootstrap: str | None) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "node.drainer", str(home_path), bootstrap or ""],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._acknowledged = 0
        self._reported = 0
        self._outcome: dict[str, Any] | None = None
        self._reader = threading.Thread(
            target=self._read, name="corredor-drainer-reader", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            if line.startswith("acked "):
                self._acknowledged += int(line.split()[1])
            elif line.startswith("{"):
                self._outcome = json.loads(line)

    def __enter__(self) -> BackgroundDrainer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._signal_done()
        try:
            self._process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)
        if self._process.stdout is not None and not self._reader.is_alive():
            self._process.stdout.close()

    def _signal_done(self) -> None:
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def report_progress(self, progress: Callable[[int], None] | None) -> None:
        """Pass on acknowledgements counted since the last call."""
        now = self._acknowledged
        if progress is not None and now > self._reported:
            progress(now - self._reported)
        self._reported = now

    def finish(
        self, progress: Callable[[int], None] | None = None, poll_s: float = 0.1
    ) -> DrainResult:
        """Tell the child staging is done; wait until it has drained the outbox."""
        self._signal_done()
        while self._reader.is_alive():
            self._reader.join(timeout=poll_s)
            self.report_progress(progress)
        code = self._process.wait()
        self.report_progress(progress)
        outcome = self._outcome
        if outcome is None:
            raise TransportError(f"the drainer process ended without a result (exit code {code})")
        if not outcome["ok"]:
            error = getattr(errors, str(outcome["error"]), None)
            if isinstance(error, type) and issubclass(error, CorredorError):
                raise error(str(outcome["message"]))
            raise TransportError(str(outcome["message"]))
        return DrainResult(int(outcome["sent"]), int(outcome["acknowledged"]))


def _child(home_path: str, bootstrap: str | None, stdin: IO[str], stdout: IO[str]) -> int:
    from node import operations as ops
    from node.pipeline import drain_outbox
    from node.store.node_store import NodeStore

    done = threading.Event()

    def watch() -> None:
        for line in stdin:
            if line.strip() == "done":
                break
        done.set()

    threading.Thread(target=watch, name="corredor-drainer-stdin", daemon=True).start()

    def emit(line: str) -> None:
        stdout.write(line + "\n")
        stdout.flush()

    try:
        home = ops.open_home(Path(home_path))
        with NodeStore(home.store_path) as store:
            sink = ops.open_sink(home, bootstrap)
            try:
                result = drain_outbox(
                    store, sink, progress=lambda n: emit(f"acked {n}"), staging_done=done.is_set
                )
            finally:
                sink.close()
    except CorredorError as exc:
        emit(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        return 1
    except Exception as exc:  # reported to the parent, which raises it
        emit(json.dumps({"ok": False, "error": type(exc).__name__, "message": repr(exc)}))
        return 1
    emit(json.dumps({"ok": True, "sent": result.sent, "acknowledged": result.acknowledged}))
    return 0


if __name__ == "__main__":
    import os

    from node.logging_setup import configure_logging

    # Same log format as the parent's CLI (warnings and errors to stderr).
    configure_logging(fmt="json" if os.environ.get("CORREDOR_LOG_FORMAT") == "json" else "text")
    sys.exit(_child(sys.argv[1], sys.argv[2] or None, sys.stdin, sys.stdout))
