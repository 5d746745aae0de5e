"""Where a bad row goes: a rejection (file, line, field and reason), and the
private rejects file that keeps each rejected record exactly as its file had
it, beside the node's store (raw data stays home, readable by its owner
only). Used by both ingests, of encounters (``ingest``) and of reference
records (``ingest_reference``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from node.errors import InputError
from node.files import private_dir


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int
    field: str | None
    reason: str
    row: dict[str, str] | None = None
    span: tuple[int, int] | None = None  # the record's bytes in the file

    def located(self) -> str:
        return InputError(self.reason, file=self.file, line=self.line, field=self.field).located()


def write_rejects(directory: Path, source: Path, rejected: list[Rejection]) -> Path:
    """Write every rejection, with its reason and the record exactly as the
    file had it, to a new file that only the owner can read (it holds raw
    records): ``line, field, reason, row, record``. ``row`` is the record's
    values as JSON when it had any; ``record`` its bytes, UTF-8, with each
    byte that is not UTF-8 written as ``\\xNN``."""
    private_dir(directory)  # rejected rows are raw data: 0700 directory, 0600 files
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for n in range(1000):
        out = directory / f"{source.name}.{stamp}{f'-{n}' if n else ''}.rejects.csv"
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise InputError("cannot name a new rejects file", file=str(directory))
    os.fchmod(fd, 0o600)  # whatever the umask
    spans = [r.span for r in rejected if r.span is not None]
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh, _source(source, spans) as raw:
        fh.write("line,field,reason,row,record\r\n")
        for r in rejected:
            row = json.dumps(r.row, ensure_ascii=False) if r.row is not None else ""
            record = raw(r.span) if r.span is not None else ""
            fh.write(",".join(_quoted(v) for v in (str(r.line), r.field or "", r.reason, row)))
            fh.write("," + _quoted(record) + "\r\n")
    return out


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@contextmanager
def _source(path: Path, spans: list[tuple[int, int]]) -> Iterator[Callable[[tuple[int, int]], str]]:
    """A reader of the records' bytes in the source file, as text."""
    if not spans:
        yield lambda span: ""
        return
    with path.open("rb") as fh:

        def read(span: tuple[int, int]) -> str:
            fh.seek(span[0])
            data = fh.read(span[1] - span[0])
            data = data[:-1] if data.endswith(b"\n") else data
            data = data[:-1] if data.endswith(b"\r") else data
            return data.decode("utf-8", errors="backslashreplace")

        yield read
