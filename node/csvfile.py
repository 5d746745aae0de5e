"""Split a CSV file into records ourselves, so that no byte is lost in silence.

Python's ``csv`` reader raises ``csv.Error`` on a field over its
``field_size_limit`` and, on the next call, starts again at the next
*physical* line, which may be in the middle of a quoted field: the rest of a
long health note was read as records (and stored, when it looked like one),
and a quote in it could open a field that swallowed every good row after it.
Here the record boundaries follow the quotes, a field over the limit is only
a problem of its record, and each record carries its first line and its byte
span in the file, so that a rejected record can be kept exactly as it was.

The grammar (RFC 4180, as Python's csv reads it by default):

- a record ends at a line feed (``\\n``, ``\\r\\n``) outside a quoted field;
- a field that starts with ``"`` is quoted: it runs to the next ``"`` not
  doubled (``""`` is one quote) and may hold commas and line breaks;
- text after a closing quote (``"a"b``) is a problem of the record;
- a ``"`` inside an unquoted field is an ordinary character;
- a quoted field that never closes ends at the end of the line it opened on:
  that much is one record (with a problem), and reading resumes on the next
  line. (Everything after the quote then holds only doubled quotes, so this
  rescans to the end of the file at most once.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

#: The largest field a record may have, in bytes. A larger one is a broken
#: file (or a document pasted into a note), not a name.
MAX_FIELD_BYTES = 64 * 1024
_CHUNK = 1 << 20
_UNQUOTED_END = re.compile(rb"[,\n]")

UNCLOSED_QUOTE = "a quoted field opens on this line and never closes"
TEXT_AFTER_QUOTE = "text after the closing quote of a field"


def over_limit(limit: int) -> str:
    return f"longer than the limit of {limit:,} bytes"


class Record(NamedTuple):
    """One record of a CSV file (a tuple: a few hundred thousand are made a second)."""

    line: int  # physical line (1-based) the record starts on
    start: int  # byte offset of its first byte
    end: int  # byte offset just past it (its line feed included)
    lines: int  # physical lines it spans (the next record starts on line + lines)
    fields: tuple[bytes, ...]  # a field over the limit is cut at limit + 1 bytes
    problem: str | None = None  # why its fields cannot be trusted
    problem_field: int | None = None  # index of the field the problem is in


_START, _UNQUOTED, _QUOTED, _QUOTE_SEEN, _AFTER_QUOTE = range(5)


class _Fields:
    """The fields of the record being read; each kept to ``limit`` + 1 bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.done: list[bytes] = []
        self.current = bytearray()
        self.length = 0
        self.problem: str | None = None
        self.problem_field: int | None = None

    def add(self, data: bytes) -> None:
        room = self.limit + 1 - len(self.current)
        if room > 0:
            self.current += data[:room]
        self.length += len(data)

    def whole(self, data: bytes) -> None:
        """A field read in one piece."""
        if len(data) > self.limit:
            self.mark(over_limit(self.limit))
        self.done.append(data[: self.limit + 1])

    def mark(self, problem: str) -> None:
        if self.problem is None:
            self.problem, self.problem_field = problem, len(self.done)

    def end(self, *, strip_cr: bool = False) -> None:
        if strip_cr and self.current.endswith(b"\r"):
            if self.length <= self.limit + 1:
                del self.current[-1]
            self.length -= 1
        if self.length > self.limit:
            self.mark(over_limit(self.limit))
        self.done.append(bytes(self.current[: self.limit + 1]))
        self.current = bytearray()
        self.length = 0


def read_records(fh: BinaryIO, limit: int = MAX_FIELD_BYTES) -> Iterator[Record]:
    """Every record of a seekable binary file, in order, from its start."""
    fh.seek(0)
    offset, line = 0, 1
    while True:
        record = _next_record(fh, offset, line, limit)
        if record is None:
            return
        yield record
        offset, line = record.end, record.line + record.lines


def _next_record(fh: BinaryIO, start: int, line: int, limit: int) -> Record | None:
    chunk = fh.readline(_CHUNK)
    if not chunk:
        return None
    if chunk.endswith(b"\n") and b'"' not in chunk:  # the common case: one plain line
        body = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1]
        plain = body.split(b",")
        if len(body) <= limit:
            return Record(line, start, start + len(chunk), 1, tuple(plain))
        problem = next((i for i, f in enumerate(plain) if len(f) > limit), None)
        if problem is None:
            return Record(line, start, start + len(chunk), 1, tuple(plain))
        return Record(
            line,
            start,
            start + len(chunk),
            1,
            tuple(f[: limit + 1] for f in plain),
            over_limit(limit),
            problem,
        )
    fields = _Fields(limit)
    state = _START
    pos = start  # file offset of chunk[0]
    newlines = 0
    # Where the line a quoted field opened on ends, in case it never closes.
    quote_line_end: tuple[int, int] | None = None
    while chunk:
        i, n = 0, len(chunk)
        while i < n:
            if state == _START:
                if chunk[i] == 0x22:  # '"'
                    state, quote_line_end = _QUOTED, None
                    i += 1
                    continue
                # Up to the next quote or line feed, commas end plain fields.
                q = chunk.find(b'"', i)
                seg = chunk[i:q] if q >= 0 else chunk[i:]
                feed = seg.find(b"\n")
                if feed >= 0 or q >= 0:
                    *complete, last = (seg if feed < 0 else seg[:feed]).split(b",")
                    for value in complete:
                        fields.whole(value)
                    if feed >= 0:
                        fields.add(last)
                        fields.end(strip_cr=True)
                        return _record(fields, line, start, pos + i + feed + 1, newlines + 1)
                    i = q
                    if last:  # a quote inside a plain field is an ordinary byte
                        fields.add(last)
                        state = _UNQUOTED
                    continue
                state = _UNQUOTED
            if state == _UNQUOTED:
                m = _UNQUOTED_END.search(chunk, i)
                if m is None:
                    fields.add(chunk[i:])
                    i = n
                    continue
                fields.add(chunk[i : m.start()])
                if chunk[m.start()] == 0x2C:  # ','
                    fields.end()
                    state, i = _START, m.end()
                    continue
                fields.end(strip_cr=True)
                return _record(fields, line, start, pos + m.end(), newlines + 1)
            if state == _QUOTED:
                q = chunk.find(b'"', i)
                seg = chunk[i:] if q < 0 else chunk[i:q]
                fields.add(seg)
                if quote_line_end is None and b"\n" in seg:
                    quote_line_end = (pos + i + seg.index(b"\n") + 1, newlines + 1)
                newlines += seg.count(b"\n")
                if q < 0:
                    i = n
                    continue
                state, i = _QUOTE_SEEN, q + 1
                continue
            if state == _QUOTE_SEEN:
                if chunk[i] == 0x22:  # a doubled quote: one quote in the value
                    fields.add(b'"')
                    state, i = _QUOTED, i + 1
                    continue
                state = _AFTER_QUOTE
            # _AFTER_QUOTE: the field's closing quote was the last byte read
            c = chunk[i]
            if c == 0x2C:
                fields.end()
                state, i = _START, i + 1
            elif c == 0x0A:
                fields.end()
                return _record(fields, line, start, pos + i + 1, newlines + 1)
            elif c == 0x0D:
                i += 1
            else:
                fields.mark(TEXT_AFTER_QUOTE)
                state = _UNQUOTED
        pos += n
        chunk = fh.readline(_CHUNK)
    # End of file.
    if state == _QUOTED and quote_line_end is not None:
        end, spanned = quote_line_end
        fh.seek(end)  # read on from the next line
        fields.end()
        opened = len(fields.done) - 1
        return Record(line, start, end, spanned, tuple(fields.done), UNCLOSED_QUOTE, opened)
    if state == _QUOTED:
        fields.mark(UNCLOSED_QUOTE)
    fields.end(strip_cr=state == _UNQUOTED)
    return _record(fields, line, start, pos, newlines + 1)


def _record(fields: _Fields, line: int, start: int, end: int, lines: int) -> Record:
    return Record(line, start, end, lines, tuple(fields.done), fields.problem, fields.problem_field)
