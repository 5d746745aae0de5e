"""The egress guard, alone and in the pipeline; the aggregator's floor check."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from node.aggregator.apply import Aggregator
from node.config import Home, policies_dir
from node.crypto.signing import SigningKey
from node.demo.synth import generate_encounters, write_csv
from node.errors import CorredorError, EgressRefused
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.drain import drain_outbox
from node.member.event_factory import EventFactory
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.staging import stage_publication
from node.member.workers import read_guard_values
from node.policy.guard import EgressGuard, normalise
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import START, aggregator_for, member_with_data

PLANTED_NAME = "Núñez Peña"
PLANTED_PLACE = "NUNEZ  PENA"  # the same name, typed into the place column


def test_normalise_ignores_case_accents_spacing_and_separators() -> None:
    assert normalise("  Núñez  Peña ") == normalise("NUNEZ PENA") == "nunezpena"
    assert normalise("1990-05-02") == normalise("19900502")
    assert normalise("AB 123-456") == normalise("ab123456")


def test_guard_refuses_identifying_values_and_unlisted_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = EgressGuard(
        [("AB 123-456", "Núñez Peña", "María José", "1990-05-02")],
        {"EncounterRecord": frozenset({"reporting_country", "place", "age_band"})},
    )
    ok = {"reporting_country": "PAN", "place": "Darién", "age_band": "18-29"}
    assert guard.problem("EncounterRecord", "EncounterRecord|PAN|x", ok) is None
    for field, value in (("place", "MARIA JOSE"), ("place", "ab123456"), ("place", "19900502")):
        refusal = guard.problem("EncounterRecord", "EncounterRecord|PAN|x", {field: value})
        assert refusal is not None and refusal.reason == "identifying-value"
    refusal = guard.problem("EncounterRecord", "s", {"sex": "F"})
    assert refusal is not None and (refusal.field, refusal.reason) == ("sex", "field-not-allowed")
    refusal = guard.problem("EncounterRecord", "EncounterRecord|PAN|nunez pena", {})
    assert refusal is not None and refusal.field == "subject"
    assert guard.problem("FlowStatistic", "s", {}) is not None  # a kind with no rules
    with caplog.at_level(logging.WARNING, logger="corredor.egress"):
        assert not guard.admit("EncounterRecord", "EncounterRecord|PAN|x", {"place": "Núñez"})
        assert not guard.admit("EncounterRecord", "EncounterRecord|PAN|x", {"place": "NUÑEZ PEÑA"})
    assert "identifying-value" in caplog.text
    assert "ez" not in caplog.text.lower().replace("refused", "")
    with pytest.raises(EgressRefused) as err:
        guard.check("EncounterRecord", "EncounterRecord|PAN|x", {"place": "maria  jose"})
    assert "maria" not in str(err.value).lower()


def _guard_policy(tmp_path: Path) -> Path:
    """USA's policy, but keeping the place as typed: a free-text field where an
    operator can type a name by mistake."""
    data: dict[str, Any] = yaml.safe_load((policies_dir() / "USA.yaml").read_text())
    data["exchanges"]["encounter_records"]["fields"]["encounter_place"] = {"action": "keep"}
    # TS, which gets the records, does not get the flows here: else the records
    # of flow cells not published alone are held back (tests/test_sdc_records.py)
    # and the record planted for the guard might never be tried
    data["exchanges"]["flow_statistics"]["audiences"] = ["members", "UNHCR"]
    # and every record is tried, whatever its group's size (k-anonymity has
    # its own tests: tests/test_records_k_anonymity.py)
    data["exchanges"]["encounter_records"]["k_anonymity"] = 1
    path = tmp_path / "USA-keep-place.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def guard_home(base: Path, n: int = 60, topic: str = "t") -> tuple[Home, list[dict[str, str]]]:
    """A USA home where one record's place is another person's name."""
    home = init_member(base / "usa", "USA", policy=_guard_policy(base), topic=topic)
    rows = generate_encounters("USA", n, seed=9, start=START, weeks=3)
    rows[1]["family_name"] = PLANTED_NAME
    rows[0]["encounter_place"] = PLANTED_PLACE
    path = base / "usa.csv"
    write_csv(rows, path)
    assert ingest(home, path).stored == n
    return home, rows


def test_a_refused_event_is_never_staged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home, rows = guard_home(tmp_path)
    policy = home_policy(home)
    with NodeStore(home.store_path) as store, caplog.at_level(logging.WARNING):
        plan, _ = stage_publication(home, store, policy)
        assert plan.refused == 1
        assert [(r.kind, r.field, r.reason) for r in plan.refusals] == [
            ("EncounterRecord", "place", "identifying-value")
        ]
        topic = MemoryTopic()
        drain_outbox(store, MemorySink(topic))
        assert store.ledger("EncounterRecord").__len__() == len(rows) - 1
    blobs = b"".join((m.value or b"") for m in topic.records)
    assert PLANTED_PLACE.encode() not in blobs and b"NUNEZ" not in blobs
    assert b"Tapachula" in blobs or b"Washington" in blobs  # the scan can find places
    assert PLANTED_PLACE not in caplog.text and "NUNEZ" not in caplog.text
    assert "identifying-value" in caplog.text


def test_preview_counts_what_the_guard_refuses(tmp_path: Path) -> None:
    from node.member.preview import preview

    home, rows = guard_home(tmp_path)
    data = preview(home)
    records = next(e for e in data["exchanges"] if e["kind"] == "EncounterRecord")
    assert (records["records"], records["events"], records["refused"]) == (
        len(rows),
        len(rows) - 1,
        1,
    )
    assert "no regional linkage key" in records["linkage_tokens"]


# -- the aggregator's floor check -------------------------------------------------------


def _forged_below_floor(home: Home) -> bytes:
    policy = home_policy(home)
    factory = EventFactory(
        home.country,
        policy,
        SigningKey.load(home.country, home.signing_key_path),
        event_codec(),
    )
    body = {
        "reporting_country": home.country,
        "period": "2024-W02",
        "period_type": "ISO_WEEK",
        "nationality": "CUB",
        "count": 2,
    }
    event = factory.build(
        "FlowStatistic",
        "FlowStatistic|PAN|2024-W02|nationality=CUB",
        1,
        body,
        None,
        datetime.now(UTC),
    )
    return event.value


def test_the_aggregator_sets_aside_events_below_the_regional_floor(tmp_path: Path) -> None:
    home = init_member(tmp_path / "pan", "PAN", topic="t")
    agg = aggregator_for(tmp_path, [home])
    topic = MemoryTopic()
    topic.append(b"PAN", _forged_below_floor(home))
    with PictureStore(agg.store_path) as store:
        keys = trust.key_directory(agg)
        stats = Aggregator(store, event_codec(), keys, floor=regional_floor()).apply_batch(
            MemorySource(topic).poll_batch(0, 10)
        )
        assert stats.rejected == {"below-regional-floor": 1}
        assert store.rejected()[0]["detail"] == "count below the floor's minimum cell size 3"
        assert store.flow_cells() == []
    # the check is the floor's: a floor with a smaller minimum lets it through
    weaker = regional_floor().model_copy(update={"min_cell_size": 1})
    with PictureStore(tmp_path / "other.db") as store:
        stats = Aggregator(store, event_codec(), keys, floor=weaker).apply_batch(
            MemorySource(topic).poll_batch(0, 10)
        )
        assert stats.applied == 1


# -- linkage tokens under the regional key ------------------------------------------------


def test_linkage_tokens_are_added_when_the_home_holds_the_regional_key(tmp_path: Path) -> None:
    from node.crypto.linkage import new_linkage_key, save_linkage_key
    from node.member.preview import preview

    regional = new_linkage_key()
    bodies = []
    for i in (1, 2):
        home = init_member(tmp_path / f"usa{i}", "USA", policy=_guard_policy(tmp_path))
        rows = generate_encounters("USA", 20, seed=4, start=START, weeks=2)
        write_csv(rows, tmp_path / f"usa{i}.csv")
        ingest(home, tmp_path / f"usa{i}.csv")
        records = next(e for e in preview(home)["exchanges"] if e["kind"] == "EncounterRecord")
        assert "no regional linkage key" in records["linkage_tokens"]
        assert "linkage_token" not in records["fields"]
        save_linkage_key(home.linkage_key_path, regional, None)
        records = next(e for e in preview(home)["exchanges"] if e["kind"] == "EncounterRecord")
        assert records["linkage_tokens"] == "added" and "linkage_token" in records["fields"]
        bodies.append(records["samples"][0])
    # same person, two nodes with their own pseudonym keys: pseudonyms differ,
    # the linkage token (regional key) is the same
    assert bodies[0]["document_pseudonym"] != bodies[1]["document_pseudonym"]
    assert bodies[0]["linkage_token"] == bodies[1]["linkage_token"]


def test_init_makes_a_private_pseudonym_key(tmp_path: Path) -> None:
    from node.member.encounters import pseudonym_key

    home = init_member(tmp_path / "pan", "PAN")
    assert home.pseudonym_key_path.stat().st_mode & 0o777 == 0o600
    key = pseudonym_key(home)
    assert len(key) == 32 and key == pseudonym_key(home)
    other = init_member(tmp_path / "pan2", "PAN")
    assert pseudonym_key(other) != key


# -- normalisation, as a property -------------------------------------------------------

_ACCENTED = {"a": "áàâä", "e": "éèêë", "i": "íìîï", "o": "óòôö", "u": "úùûü", "n": "ñ", "c": "ç"}


@st.composite
def _disguised(draw: st.DrawFn) -> tuple[str, str]:
    """A raw name and the same name re-typed: other case, accents, spacing."""
    words = draw(st.lists(st.text("abcdeinoruz", min_size=4, max_size=9), min_size=1, max_size=3))
    raw = " ".join(words)
    typed = []
    for ch in raw:
        if ch == " ":
            typed.append(draw(st.sampled_from([" ", "  ", " - ", "\t"])))
            continue
        if ch in _ACCENTED and draw(st.booleans()):
            ch = draw(st.sampled_from(_ACCENTED[ch]))
        typed.append(ch.upper() if draw(st.booleans()) else ch)
    return raw, " " + "".join(typed) + " "


@settings(max_examples=200, deadline=None)
@given(_disguised())
def test_a_retyped_identifying_value_is_always_refused(case: tuple[str, str]) -> None:
    raw, typed = case
    guard = EgressGuard(
        [(None, raw, "Ana", "1990-05-02")], {"EncounterRecord": frozenset({"place"})}
    )
    refusal = guard.problem("EncounterRecord", "EncounterRecord|PAN|x", {"place": typed})
    assert refusal is not None and refusal.reason == "identifying-value"


def test_reference_items_pass_the_egress_guard_too(tmp_path: Path) -> None:
    """A focal-point record that carries a migrant's name (a clerk's slip) is
    refused and never staged; the other focal point goes out."""
    home, rows, _ = member_with_data(tmp_path, "PAN", 300)
    migrant = f"{rows[0]['given_names']} {rows[0]['family_name']}"
    items = [
        {
            "country": "PAN",
            "focal_point_id": "PAN-FP-01",
            "name": migrant,
            "role": "Head of statistics",
            "institution": "Migration authority",
            "email": "fp1@example.org",
            "languages": ["es"],
        },
        {
            "country": "PAN",
            "focal_point_id": "PAN-FP-02",
            "name": "Focal Point Two",
            "role": "Analyst",
            "institution": "Prosecutor",
            "email": "fp2@example.org",
            "languages": ["es"],
        },
    ]
    path = tmp_path / "focal.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    assert ingest(home, path).stored == 2
    policy = home_policy(home)
    with NodeStore(home.store_path) as store:
        _, reference = stage_publication(home, store, policy)
        subjects = {s for s in store.ledger("FocalPoint")}
    counts = reference.kinds["FocalPoint"]
    assert (counts.refused, counts.new) == (1, 1)
    assert subjects == {"FocalPoint|PAN|PAN-FP-02"}


def test_phone_numbers_in_free_text_are_not_mistaken_for_birth_dates() -> None:
    guard = EgressGuard([("AB1234567", "Pierre", "Jean", "2000-02-01")], {"X": frozenset({"f"})})
    assert guard.problem("X", "X|1", {"f": "+506 2000-0201"}) is None
    assert guard.problem("X", "X|1", {"f": "born 2000-02-01 in Haiti"}) is not None
    assert guard.problem("X", "X|1", {"f": "passport AB1234567 seen"}) is not None
    assert guard.problem("X", "X|1", {"f": "Sra. Pierre, consul"}) is not None


def test_parallel_stagers_refuse_what_the_guard_refuses(tmp_path: Path) -> None:
    """Stager processes get the parent's normalised values and refuse alike."""
    home, rows = guard_home(tmp_path)
    policy = home_policy(home)
    with NodeStore(home.store_path) as store:
        plan, _ = stage_publication(home, store, policy, commit_chunks=True, stagers=2)
        assert [(r.kind, r.field, r.reason) for r in plan.refusals] == [
            ("EncounterRecord", "place", "identifying-value")
        ]
        topic = MemoryTopic()
        drain_outbox(store, MemorySink(topic))
        assert len(store.ledger("EncounterRecord")) == len(rows) - 1
    blobs = b"".join((m.value or b"") for m in topic.records)
    assert PLANTED_PLACE.encode() not in blobs and b"NUNEZ" not in blobs


@pytest.mark.parametrize(
    "sent",
    ["", "count 3\na\nb\n", "count 2\na\nb\nc\nend\n", "count 2\na\na\nend\n", "garbage\n"],
)
def test_a_stager_never_builds_its_guard_from_a_partial_list(sent: str) -> None:
    with pytest.raises(CorredorError):
        read_guard_values(io.StringIO(sent))
    assert read_guard_values(io.StringIO("count 2\na\nb\nend\n")) == {"a", "b"}


# -- issue 15, case 5: a raw value next to punctuation, in any case or spacing --

_RAW_NAMES = ["Núñez Peña", "Ortíz", "María José", "O'Connor"]
_RAW_DOCS = ["AB 123-456", "P0987654"]
_WRAP = st.text(
    alphabet=st.characters(categories=["Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"]),
    max_size=3,
)
_SPACE = st.sampled_from(["", " ", "  ", "\u00a0", "\t", "\u2009"])


def _respell(value: str, draw: st.DrawFn) -> str:
    out = []
    for ch in value:
        if ch == " ":
            out.append(draw(_SPACE) or draw(st.sampled_from([" ", "-", "\u00a0"])))
            continue
        if ch.isalpha():
            ch = ch.upper() if draw(st.booleans()) else ch.lower()
            if draw(st.booleans()):
                # the same letter without its accent, or decomposed
                import unicodedata

                ch = draw(
                    st.sampled_from(
                        [
                            ch,
                            unicodedata.normalize("NFD", ch),
                            "".join(
                                c
                                for c in unicodedata.normalize("NFD", ch)
                                if not unicodedata.combining(c)
                            ),
                        ]
                    )
                )
        out.append(ch)
    return "".join(out)


@st.composite
def _free_text(draw: st.DrawFn) -> tuple[str, str]:
    value = draw(st.sampled_from(_RAW_NAMES + _RAW_DOCS))
    spelled = _respell(value, draw)
    tail = draw(st.sampled_from(["", "'s", "\u2019s", "'", "\u2019"]))
    inner = draw(_WRAP) + spelled + tail + draw(_WRAP)
    before = draw(st.sampled_from(["", "Sra.", "Contact:", "see", "ref"]))
    after = draw(st.sampled_from(["", "consular officer", "(focal point)", "ok"]))
    return value, f"{before}{draw(_SPACE) or ' '}{inner}{draw(_SPACE) or ' '}{after}".strip()


_GUARD_ROWS = [
    ("P0987654", "AB 123-456", "Núñez Peña", "María José", "1990-05-02"),
    (None, None, "Ortíz", "Ann", None),
    (None, None, "O'Connor", "Liam", None),
]


@settings(max_examples=400, deadline=None)
@given(case=_free_text())
def test_guard_refuses_a_raw_value_wrapped_in_any_punctuation(case: tuple[str, str]) -> None:
    _value, text = case
    guard = EgressGuard(_GUARD_ROWS, {"FocalPoint": frozenset({"role", "summary"})})
    refusal = guard.problem("FocalPoint", "FocalPoint|PAN|x", {"role": text})
    assert refusal is not None and refusal.reason == "identifying-value", text


@pytest.mark.parametrize(
    "text",
    [
        "(Núñez)",
        "«Núñez Peña»",
        '"Nunez-Pena":',
        "[AB123456]",
        "doc: AB 123-456!",
        "Núñez's note?",
        "NÚÑEZ’S",
        "ref;P0987654;",
        "¡Ortíz!",
        "O’Connor's",
    ],
)
def test_guard_issue_15_spellings(text: str) -> None:
    """The spellings that got through before (issue 15, case 5)."""
    guard = EgressGuard(_GUARD_ROWS, {"FocalPoint": frozenset({"role"})})
    assert guard.problem("FocalPoint", "FocalPoint|PAN|x", {"role": text}) is not None


def test_guard_still_lets_phone_numbers_and_codes_through() -> None:
    guard = EgressGuard(_GUARD_ROWS, {"FocalPoint": frozenset({"role"})})
    texts = (
        "Tel. (507) 2000-0201",
        "CUB; HTI; VEN",
        "2024-W03 (month)",
        "Annapolis office",
        "1990",  # the year of a raw date of birth is not identifying on its own
        "fine of 1990 USD",
    )
    for text in texts:
        assert guard.problem("FocalPoint", "FocalPoint|PAN|x", {"role": text}) is None, text


def _reference_words(text: str) -> list[str]:
    """Words of free text as the guard's docs define them, written here from
    Unicode categories: runs between P*, S*, Z*, C* characters and spaces,
    each NFKD-decomposed, case-folded and stripped of marks and separators."""
    import unicodedata

    def cut(ch: str) -> bool:
        return unicodedata.category(ch)[0] in "PSZC" or ch.isspace()

    out, run = [], ""
    for ch in text + " ":
        if cut(ch):
            if run:
                form = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", run).casefold())
                form = "".join(c for c in form if not cut(c) and not unicodedata.combining(c))
                if form:
                    out.append(form)
            run = ""
        else:
            run += ch
    return out


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_words_of_ascii_text_take_the_fast_path_with_the_same_result(text: str) -> None:
    from node.policy.guard import words

    assert words(text) == _reference_words(text)
