"""Logging for operators and log shippers: text for people, JSON for machines.

``configure_logging`` installs one handler on the root logger. With the JSON
format every record becomes one object on one line::

    {"ts": "2026-11-27T21:40:13.123Z", "level": "WARNING", "logger": "corredor.follow",
     "message": "publish failed, will retry: ...", "country": "PAN"}

Extra fields passed with ``log.info(..., extra={...})`` become keys of that object.

What a log line may carry: counts, event ids, topics, offsets, error classes,
never a record's value. Corredor's own code logs no field of a raw record, and
kafka-python's configuration dump shows passwords redacted
(``node.transport.credentials.Redacted``); tests/test_ops_logging.py plants
names and document numbers, logs a whole ingest and publish at DEBUG and
checks that none of them appears.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, one record per line (no embedded newlines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a value json cannot encode is shown as text, never dropped.
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: int = logging.WARNING, fmt: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Install the root handler writing ``fmt`` to ``stream``
    (stderr by default). Returns the handler (tests capture with it)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    # Only our own earlier handler is replaced: others (pytest's capture, an
    # embedding application's) stay.
    for old in [h for h in root.handlers if getattr(h, "corredor", False)]:
        root.removeHandler(old)
    handler.corredor = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python logs every refused connection while a broker starts; keep it
    # when the operator asked for detail (-v or DEBUG).
    logging.getLogger("kafka").setLevel(
        logging.NOTSET if level <= logging.INFO else logging.CRITICAL
    )
    return handler
