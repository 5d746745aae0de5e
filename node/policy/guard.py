"""The egress guard: the last check on every event before it enters the outbox.

It refuses an event when

- a body field carries a value the policy does not allow for the event's kind
  (``field-not-allowed``), or
- any value in the body or subject equals a raw identifying value of the
  node's records (names, document numbers, dates of birth) after
  normalisation (``identifying-value``): Unicode compatibility form, accents
  removed, case folded, whitespace and the separators ``- . / , ' _`` removed.
  So ``GONZÁLEZ`` matches ``Gonzalez`` and ``1990-05-02`` matches ``19900502``.
  Each word of four characters or more of a multi-word value counts as well,
  on both sides: ``Núñez`` is refused when ``Núñez Peña`` is a family name,
  and so is a contact field reading ``Sra. Núñez, consular officer``.

The normalised set is built once per publish run; each check is then a few set
look-ups. A refusal is logged with the kind, event subject position and reason,
never the value.
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

_SEPARATORS = frozenset("-./,'_")
#: Shortest word of a multi-word identifying value that is matched on its own.
MIN_WORD = 4


#: ASCII whitespace and separators, deleted in one ``str.translate`` pass.
_ASCII_DELETE = {i: None for i in range(128) if chr(i).isspace() or chr(i) in _SEPARATORS}


@lru_cache(maxsize=1 << 16)
def normalise(value: str) -> str:
    """Comparison form of a value: no accents, case, spacing or separators.

    Cached, and with an ASCII fast path (where NFKD changes nothing and
    casefold is lower): every event's every field passes through here, and
    codes, bands and periods repeat endlessly."""
    if value.isascii():
        return value.translate(_ASCII_DELETE).lower()
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(
        ch
        for ch in decomposed.casefold()
        if not unicodedata.combining(ch) and not ch.isspace() and ch not in _SEPARATORS
    )


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
                for word in text.split():
                    norm = normalise(word)
                    if len(norm) >= MIN_WORD:
                        values.add(norm)
        values.discard("")
        self._identifying = frozenset(values)
        self._allowed = dict(allowed)
        self.refusals: list[Refusal] = []

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
        guard._identifying = frozenset(normalised)
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
            if isinstance(value, str | int) and self._carries_identifying(str(value)):
                return Refusal(kind, _subject_tag(subject), name, "identifying-value")
        return None

    def _carries_identifying(self, text: str) -> bool:
        """The value, or any word of four characters or more in a free-text
        value (a name typed into a contact or summary field), is identifying."""
        if normalise(text) in self._identifying:
            return True
        words = text.split()
        if len(words) < 2:
            return False
        return any(
            len(norm) >= MIN_WORD and norm in self._identifying
            for norm in (normalise(w) for w in words if _word_worth_checking(w))
        )

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


def _word_worth_checking(word: str) -> bool:
    """A word of free text is compared when it holds a letter (a name, a document
    number) or is written as a date. Other digit groups, phone numbers above
    all, are not: "2000-0201" would otherwise match a birth on 2000-02-01."""
    return any(ch.isalpha() for ch in word) or _ISO_DATE.search(word) is not None


#: Keys the subject tags of this process's logs. A plain hash of a refused
#: subject could be reversed by hashing guesses of the value that made it
#: refused (a date of birth has few candidates); keyed, the tag only tells two
#: log lines of one run apart.
_TAG_KEY = os.urandom(32)


def _subject_tag(subject: str) -> str:
    """A short tag of a subject for logs, stable within one process: the subject
    itself may be what leaks."""
    return "subject#" + hmac.digest(_TAG_KEY, subject.encode(), "sha256").hex()[:12]
