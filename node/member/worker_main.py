"""The child side of a large publish's worker processes (``node.member.workers`` is
the parent's): ``python -m node.member.worker_main drain HOME BOOTSTRAP`` and
``python -m node.member.worker_main stage HOME AFTER UPTO NOW``. The protocol is in
``node.member.workers``' docstring."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from node.errors import CorredorError
from node.home import open_home
from node.logging_setup import configure_logging
from node.member.drain import drain_outbox
from node.member.publish import open_sink
from node.member.staging import stage_encounter_part
from node.member.workers import read_guard_values
from node.store.node_store import NodeStore


def _drain(home_path: str, bootstrap: str | None, emit: Callable[[str], None]) -> dict[str, Any]:
    done = threading.Event()

    def watch() -> None:
        for line in sys.stdin:
            if line.strip() == "done":
                break
        done.set()

    threading.Thread(target=watch, name="corredor-drainer-stdin", daemon=True).start()
    home = open_home(Path(home_path))
    with NodeStore(home.store_path) as store:
        sink = open_sink(home, bootstrap)
        try:
            result = drain_outbox(
                store, sink, progress=lambda n: emit(f"acked {n}"), staging_done=done.is_set
            )
        finally:
            sink.close()
    return {"sent": result.sent, "acknowledged": result.acknowledged}


def _stage(home_path: str, after: str, upto: str | None, now: str) -> dict[str, Any]:
    identifying = read_guard_values(sys.stdin)
    home = open_home(Path(home_path))
    part, refused_subjects = stage_encounter_part(
        home, after, upto, datetime.fromisoformat(now), identifying=identifying
    )
    return {
        "records": part.records,
        "new": part.new,
        "revised": part.revised,
        "refused": [vars(r) for r in part.refusals],
        "refused_subjects": refused_subjects,
    }


def main(argv: list[str], stdout: IO[str]) -> int:
    def emit(line: str) -> None:
        stdout.write(line + "\n")
        stdout.flush()

    try:
        if argv[0] == "drain":
            result = _drain(argv[1], argv[2] or None, emit)
        elif argv[0] == "stage":
            result = _stage(argv[1], argv[2], argv[3] or None, argv[4])
        else:
            raise CorredorError(f"unknown worker {argv[0]!r}")
    except CorredorError as exc:
        emit(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        return 1
    except Exception as exc:  # reported to the parent, which raises it
        # Its type only, here and to the parent: an unexpected error's text
        # may quote stored data (a date of birth that does not parse, say).
        message = f"worker {argv[0]} failed: {type(exc).__name__}"
        logging.getLogger(__name__).error("%s", message)
        emit(json.dumps({"ok": False, "error": type(exc).__name__, "message": message}))
        return 1
    emit(json.dumps({"ok": True, **result}))
    return 0


if __name__ == "__main__":
    # Same log format as the parent's CLI (warnings and errors to stderr).
    configure_logging(fmt="json" if os.environ.get("CORREDOR_LOG_FORMAT") == "json" else "text")
    sys.exit(main(sys.argv[1:], sys.stdout))
