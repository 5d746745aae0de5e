"""The shortcuts that made staging cheaper (issue 20) change no outcome.

- The egress guard remembers each value's verdict: a warmed guard, and one
  whose memory filled and was forgotten, refuse exactly what a fresh one does.
- The k-anonymity grouping transforms records without computing pseudonyms:
  its quasi-identifiers are those of the body that is sent.
- A word holds a letter by the shortcut exactly when it holds one.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from node.config import policies_dir
from node.member.record_release import QUASI_IDENTIFIERS
from node.policy import guard as guard_module
from node.policy.guard import EgressGuard, words
from node.policy.loader import load_policy
from node.policy.records import EncounterInput, transform_encounter

ALLOWED = {"EncounterRecord": frozenset({"place", "nationality", "encounter_period"})}
IDENTIFYING = [
    ("AB 123-456", "Núñez Peña", "María José", "1990-05-02"),
    ("X9Z-001", "Smith", "John Paul", "1985-12-31"),
]
#: Spellings an operator or an attacker could give a planted value.
SPELLINGS = [
    "NUNEZ PENA",
    "núñez-peña",
    "Sra. Núñez, consular officer",
    "ab123456",
    "AB-123 456",
    "19900502",
    "born 1990-05-02 in town",
    "JOHN PAUL",
    "x9z001",
]
HARMLESS = ["HTI", "2024-W03", "Darién", "18-29", "F", "tel 2000-0201", "Southern border (GTM)"]


def _refused(guard: EgressGuard, value: str) -> bool:
    return guard.problem("EncounterRecord", "EncounterRecord|PAN|x", {"place": value}) is not None


def test_a_warmed_guard_refuses_exactly_what_a_fresh_one_does() -> None:
    warm = EgressGuard(IDENTIFYING, ALLOWED)
    for _ in range(3):  # the second and third pass read the memory
        for value in SPELLINGS:
            assert _refused(warm, value), value
        for value in HARMLESS:
            assert not _refused(warm, value), value
    for value in SPELLINGS + HARMLESS:
        assert _refused(EgressGuard(IDENTIFYING, ALLOWED), value) == _refused(warm, value)


def test_a_full_memory_is_forgotten_and_never_lets_a_value_through() -> None:
    guard = EgressGuard(IDENTIFYING, ALLOWED)
    for value in SPELLINGS:
        assert _refused(guard, value)
    limit = guard_module.VERDICT_MEMO
    # unique values (as pseudonyms are) fill the memory past its bound
    for i in range(limit + 10):
        assert not _refused(guard, f"{i:032x}")
        assert len(guard._verdicts) <= limit
    for value in SPELLINGS:
        assert _refused(guard, value), value


def test_a_stager_guard_from_normalised_values_remembers_nothing_of_another() -> None:
    parent = EgressGuard(IDENTIFYING, ALLOWED)
    assert not _refused(parent, "Tapachula")
    child = EgressGuard.from_normalised(parent.normalised_values | {"tapachula"}, ALLOWED)
    assert _refused(child, "Tapachula")
    assert all(_refused(child, value) for value in SPELLINGS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_word_holds_a_letter_by_the_shortcut_exactly_when_it_does(text: str) -> None:
    for word in words(text):
        assert guard_module._has_letter(word) == any(ch.isalpha() for ch in word), word


#: Any text, and text with a planted value typed into it: random text alone is
#: nearly never identifying, and a memory that passed everything would pass.
_texts = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda before, value, after: before + value + after,
        st.text(max_size=8),
        st.sampled_from(SPELLINGS + HARMLESS),
        st.text(max_size=8),
    ),
)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_remembered_verdicts_equal_fresh_ones_on_any_text(text: str) -> None:
    guard = EgressGuard(IDENTIFYING, ALLOWED)
    first = _refused(guard, text)
    assert _refused(guard, text) == first
    # the verdict computed without the memory, by a guard that never saw it
    assert EgressGuard(IDENTIFYING, ALLOWED)._carries_identifying(text) == first


_records = st.builds(
    EncounterInput,
    record_id=st.from_regex(r"USA-[0-9]{6}", fullmatch=True),
    document_number=st.from_regex(r"[A-Z]{2} ?[0-9]{3}-?[0-9]{3}", fullmatch=True),
    date_of_birth=st.dates(date(1940, 1, 1), date(2020, 12, 31)),
    sex=st.sampled_from(["F", "M", "X"]),
    nationality=st.sampled_from(["HTI", "CUB", "VEN", "IND", "CHN", "AGO", "SEN"]),
    encounter_date=st.dates(date(2021, 1, 1), date(2025, 12, 31)),
    encounter_place=st.sampled_from(["Tapachula", "Darién", "El Paso", "Nowhere"]),
    previous_country=st.sampled_from([None, "GTM", "MEX", "PAN"]),
)
GAZETTEER = {"Tapachula": ("Chiapas", "Southern border (GTM)"), "El Paso": ("TX", "El Paso")}


def _linker(doc: str, nat: str, born: str) -> str:
    return f"token:{doc}:{nat}:{born}"


#: Every shipped policy's encounter-record rules, read once.
SHIPPED_RULES = {
    path.stem: load_policy(path).exchanges.encounter_records
    for path in sorted(policies_dir().glob("*.yaml"))
    if path.stem != "regional"
}


@settings(max_examples=200, deadline=timedelta(seconds=2))
@given(_records)
def test_the_k_anonymity_grouping_reads_the_quasi_identifiers_that_are_sent(
    record: EncounterInput,
) -> None:
    for country, rules in SHIPPED_RULES.items():
        sent = transform_encounter(
            record, rules, "USA", pseudonym_key=b"k" * 32, linker=_linker, gazetteer=GAZETTEER
        )
        grouped = transform_encounter(
            record,
            rules,
            "USA",
            pseudonym_key=bytes(32),
            linker=None,
            gazetteer=GAZETTEER,
            pseudonyms=False,
        )
        for name in QUASI_IDENTIFIERS:
            assert grouped[name] == sent[name], (country, name)
        assert grouped["record_pseudonym"] is None and grouped["document_pseudonym"] is None
        assert grouped["linkage_token"] is None
