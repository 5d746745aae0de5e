"""The egress guard: the last check on every event before it enters the outbox.

It refuses an event when

- a body field carries a value the policy does not allow for the event's kind
  (``field-not-allowed``), or
- any value in the body or subject equals a raw identifying value of the
  node's records (names, document numbers, dates of birth) after
  normalisation (``identifying-value``): Unicode compatibility form (NFKD),
  accents removed, case folded, and every punctuation, symbol and space
  character (Unicode categories P*, S*, Z*) removed. So ``GONZÁLEZ`` matches
  ``Gonzalez`` and ``1990-05-02`` matches ``19900502``. Free text is split
  into words at those characters and every run of up to six words is compared
  joined, so a name or document number next to ``( ) : ; « » " [ ] ! ?``, a
  possessive or any spacing is found. Each word of four characters or more of
  a multi-word value counts as well: ``Núñez`` is refused when ``Núñez Peña``
  is a family name, and so is a contact field reading ``Sra. Núñez, consular
  officer``.

The normalised set is built once per publish run; each check is then a few set
look-ups, and the guard remembers the verdict on each field value it has seen
(most repeat from event to event), in memory only, for its own run. A refusal
is logged with the kind, event subject position and reason, never the value.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from node.errors import EgressRefused

log = logging.getLogger("corredor.egress")

#: Shortest word of a multi-word identifying value that is matched on its own.
MIN_WORD = 4
#: Longest run of free-text words compared joined (a document number typed as
#: "AB 123-456" is three words once punctuation is taken out).
MAX_WORDS = 6
#: Field values whose verdict a guard remembers (most values repeat from event
#: to event: periods, codes, places, bands); past this many it forgets them
#: all, so unique values (pseudonyms) cannot grow it without bound.
VERDICT_MEMO = 1 << 16


#: Every ASCII character that is not a letter or digit (all are P*, S*, Z* or C*).
_ASCII_DELETE = {i: None for i in range(128) if not chr(i).isalnum()}


def _strip_char(ch: str) -> bool:
    """Removed from every compared form: punctuation (P*), symbols (S*),
    separators and other spacing (Z*, whitespace, controls) and combining marks."""
    cat = unicodedata.category(ch)
    return cat[0] in "PSZC" or unicodedata.combining(ch) != 0 or ch.isspace()


@lru_cache(maxsize=1 << 16)
def normalise(value: str) -> str:
    """Comparison form of a value: NFKD, accents removed, case folded, every
    punctuation, symbol and space character removed (Unicode categories P*,
    S*, Z* and controls). Cached: every event's every field passes through,
    and ASCII (where NFKD changes nothing) takes a fast path."""
    if value.isascii():
        return value.translate(_ASCII_DELETE).lower()
    # punctuation and symbols go first, as written (a circled Ⓐ is a symbol,
    # not the letter NFKD would make of it), then again after decomposition
    kept = "".join(ch for ch in value if not _strip_char(ch))
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", kept).casefold())
    return "".join(ch for ch in decomposed if not _strip_char(ch))


#: A word of ASCII text: in ASCII every character that is not a letter or digit
#: is punctuation, a symbol, a space or a control (``_strip_char``), and none
#: is a combining mark, so the words are exactly the runs of letters and digits.
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")


def words(text: str) -> list[str]:
    """The words of free text: runs between punctuation, symbols and spaces
    (as written), each in comparison form (empty ones dropped). ASCII text
    (nearly every value an event carries) takes a fast path with the same
    result: its comparison form is the run in lower case."""
    if text.isascii():
        return [w.lower() for w in _ASCII_WORD.findall(text)]
    out: list[str] = []
    current: list[str] = []
    for ch in text + " ":
        if _strip_char(ch) and not unicodedata.combining(ch):
            if current:
                word = normalise("".join(current))
                if word:
                    out.append(word)
                current = []
            continue
        current.append(ch)
    return out


def _has_letter(word: str) -> bool:
    """A word of ``words`` holds a letter. Its characters are letters and
    numbers only (the rest is stripped), so an ASCII one holds a letter
    exactly when it is not all digits."""
    if word.isascii():
        return not word.isdigit()
    return any(ch.isalpha() for ch in word)


@dataclass(frozen=True)
class Refusal:
    kind: str
    subject_hash: str
    field: str
    reason: str  # "field-not-allowed" | "identifying-value"

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_hash}: field {self.field!r}: {self.reason}"


class EgressGuard:
    """Refuses events that carry identifying values or fields the policy forbids."""

    def __init__(
        self,
        identifying: Iterable[Iterable[str | None]],
        allowed: Mapping[str, frozenset[str]],
    ) -> None:
        values: set[str] = set()
        for row in identifying:
            for value in row:
                if not value:
                    continue
                text = str(value)
                values.add(normalise(text))
                # each word of a multi-word name too ("Núñez" of "Núñez Peña"),
                # when long enough not to match codes such as CUB or F
                for word in words(text):
                    # a word with a letter: the year of a date of birth is
                    # not a name, and would refuse every amount of 2000
                    if len(word) >= MIN_WORD and _has_letter(word):
                        values.add(word)
        values.discard("")
        self._identifying = frozenset(values)
        self._allowed = dict(allowed)
        self.refusals: list[Refusal] = []
        # text -> _carries_identifying(text): a pure function of the text and
        # the frozen set above, so remembering it changes no verdict.
        self._verdicts: dict[str, bool] = {}

    def allow(self, kind: str, fields: Iterable[str]) -> None:
        """Admit ``kind`` with these body fields (reference kinds publish their
        records whole; the identifying-value check still applies to them)."""
        self._allowed[kind] = frozenset(fields)

    def allowed_fields(self, kind: str) -> frozenset[str]:
        return self._allowed.get(kind, frozenset())

    @classmethod
    def from_normalised(
        cls, normalised: Iterable[str], allowed: Mapping[str, frozenset[str]]
    ) -> EgressGuard:
        """A guard over identifying values another guard already normalised
        (``normalised_values``): a stager process gets them from its parent
        instead of normalising every raw record again."""
        guard = cls((), allowed)
        guard._identifying = frozenset(normalised)  # before any verdict is remembered
        return guard

    @property
    def normalised_values(self) -> frozenset[str]:
        """The normalised identifying values this guard refuses (never logged)."""
        return self._identifying

    def __len__(self) -> int:
        return len(self._identifying)

    def problem(self, kind: str, subject: str, body: Mapping[str, Any] | None) -> Refusal | None:
        """The first reason to refuse this event, or None."""
        allowed = self._allowed.get(kind)
        if allowed is None:
            return Refusal(kind, _subject_tag(subject), "(kind)", "field-not-allowed")
        parts = subject.replace("=", "|").replace(",", "|").split("|")
        if any(normalise(p) in self._identifying for p in parts if p):
            return Refusal(kind, _subject_tag(subject), "subject", "identifying-value")
        for name, value in (body or {}).items():
            if value is None:
                continue
            if name not in allowed:
                return Refusal(kind, _subject_tag(subject), name, "field-not-allowed")
            if isinstance(value, str | int) and self._remembered(str(value)):
                return Refusal(kind, _subject_tag(subject), name, "identifying-value")
        return None

    def _remembered(self, text: str) -> bool:
        """``_carries_identifying``, remembered per value (``VERDICT_MEMO``)."""
        verdict = self._verdicts.get(text)
        if verdict is None:
            verdict = self._carries_identifying(text)
            if len(self._verdicts) >= VERDICT_MEMO:
                self._verdicts.clear()
            self._verdicts[text] = verdict
        return verdict

    def _carries_identifying(self, text: str) -> bool:
        """The value, or any run of up to ``MAX_WORDS`` of its words joined (a
        name or document number typed into free text, next to any punctuation,
        in any case or spacing, with a possessive), is identifying."""
        if normalise(text) in self._identifying:
            return True
        parts = words(text)
        if len(parts) < 2:
            return False
        lettered = [_has_letter(w) for w in parts]
        for i in range(len(parts)):
            joined = ""
            letters = False
            for j in range(i, min(len(parts), i + MAX_WORDS)):
                joined += parts[j]
                letters = letters or lettered[j]
                # digit groups alone are compared only as written dates: phone
                # numbers such as "2000-0201" would match a birth on 2000-02-01
                # a match shorter than MIN_WORD (a two-letter given name, a
                # code) counts only as the whole value, as "CUB" or "F" would
                # otherwise refuse every text
                if letters and len(joined) >= MIN_WORD and joined in self._identifying:
                    return True
        return any(normalise(d) in self._identifying for d in _ISO_DATE.findall(text))

    def admit(self, kind: str, subject: str, body: Mapping[str, Any] | None) -> bool:
        """True if the event may leave; otherwise record and log the refusal."""
        refusal = self.problem(kind, subject, body)
        if refusal is None:
            return True
        self.refusals.append(refusal)
        log.warning("egress guard refused %s", refusal)
        return False

    def check(self, kind: str, subject: str, body: Mapping[str, Any] | None) -> None:
        """Raise EgressRefused (without the value) if the event may not leave."""
        refusal = self.problem(kind, subject, body)
        if refusal is not None:
            raise EgressRefused(f"egress guard refused {refusal}")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


#: Keys the subject tags of this process's logs. A plain hash of a refused
#: subject could be reversed by hashing guesses of the value that made it
#: refused (a date of birth has few candidates); keyed, the tag only tells two
#: log lines of one run apart.
_TAG_KEY = os.urandom(32)


def _subject_tag(subject: str) -> str:
    """A short tag of a subject for logs, stable within one process: the subject
    itself may be what leaks."""
    return "subject#" + hmac.digest(_TAG_KEY, subject.encode(), "sha256").hex()[:12]
