"""Batch seals end to end: sealed with a country's key, encoded as SignedEvent
v2, checked by ``verify_message`` and the aggregator like any signed event.

Every tampering a seal must catch is set aside as "bad-signature"; the trust
checks on the key (unknown, other country, revoked) come first, as for
individually signed events; and a batch costs one Ed25519 verification."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.aggregator.apply import Aggregator
from node.aggregator.checks import MessageRejected, verify_message
from node.codec.events import EventCodec
from node.crypto import batch_seal, merkle, signing
from node.crypto.batch_seal import SealProof, SealVerifier, seal_batch, seal_statement
from node.crypto.signing import SigningKey, public_pem
from node.errors import CodecError, SignatureInvalid
from node.federation import manifest as fed
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.drain import drain_outbox
from node.member.event_factory import EventFactory
from node.member.flow_release import prepare_flow_events
from node.member.member_home import home_policy
from node.model.events import Envelope, PolicyRef
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
CODEC = event_codec()


def _directory(*keys: SigningKey, revoked: str | None = None) -> fed.KeyDirectory:
    secretariat = SigningKey.generate("TS")
    draft = fed.empty_manifest(secretariat.key_id)
    for key in keys:
        draft, _ = fed.add_member(
            draft,
            key.country,
            name=key.country,
            signing_pem=public_pem(key.public),
            valid_from=NOW - timedelta(days=30),
        )
    if revoked is not None:
        draft, _ = fed.revoke(draft, revoked, at=NOW)
    return fed.KeyDirectory(draft)


def _envelope(producer: str, key_id: str, i: int, codec: EventCodec = CODEC) -> bytes:
    body = codec.encode_body(
        "FlowStatistic",
        {
            "reporting_country": producer,
            "period": "2024-W02",
            "period_type": "ISO_WEEK",
            "nationality": "CUB",
            "count": 10 + i,
        },
    )
    env = Envelope(
        event_id=f"{producer}-{i}",
        producer=producer,
        kind="FlowStatistic",
        subject=f"FlowStatistic|{producer}|2024-W02|{i}",
        revision=1,
        produced_at=NOW,
        policy=PolicyRef(f"{producer}-policy", "1.0.0", "0" * 64),
        audiences=("TS", "members"),
        purposes=("statistics",),
        key_id=key_id,
        body=body,
    )
    return codec.encode_envelope(env)


def _sealed_batch(
    key: SigningKey,
    n: int,
    *,
    producer: str | None = None,
    key_id: str | None = None,
    start: int = 0,
) -> tuple[list[bytes], bytes, list[SealProof], list[bytes]]:
    """(envelopes, signature, proofs, messages) of a batch of n events, numbered
    from ``start`` (Ed25519 is deterministic: equal batches make equal seals)."""
    envelopes = [
        _envelope(producer or key.country, key_id or key.key_id, i) for i in range(start, start + n)
    ]
    signature, proofs = seal_batch(key, envelopes)
    messages = [
        CODEC.encode_signed(e, signature, p) for e, p in zip(envelopes, proofs, strict=True)
    ]
    return envelopes, signature, proofs, messages


def _reason(keys: fed.KeyDirectory, value: bytes, seals: SealVerifier | None = None) -> str:
    with pytest.raises(MessageRejected) as info:
        verify_message(CODEC, keys, value, seals)
    return info.value.reason


@pytest.fixture
def count_verifications(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Counts the Ed25519 verifications seals make (the real ones, wrapped)."""
    calls = 0
    real = signing.verify

    def counting(public: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
        nonlocal calls
        calls += 1
        real(public, signature, data)

    monkeypatch.setattr(batch_seal, "verify", counting)
    return lambda: calls


# -- a sealed batch verifies, event by event ---------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 37, 64])
def test_every_event_of_a_sealed_batch_verifies_on_its_own(n: int) -> None:
    pan = SigningKey.generate("PAN")
    keys = _directory(pan)
    envelopes, _, proofs, messages = _sealed_batch(pan, n)
    assert [p.leaf_index for p in proofs] == list(range(n))
    for env_bytes, value in zip(envelopes, messages, strict=True):
        # a fresh verifier each time: no message depends on another
        envelope, covered = verify_message(CODEC, keys, value, SealVerifier())
        assert covered == env_bytes and envelope.producer == "PAN"
        assert CODEC.split_sealed(value)[0] == env_bytes
        assert CODEC.split_signed(value)[0] == env_bytes


def test_the_seal_costs_a_path_and_a_signature_per_event() -> None:
    pan = SigningKey.generate("PAN")
    n = 1000
    envelopes, signature, proofs, messages = _sealed_batch(pan, n)
    for env_bytes, proof, value in zip(envelopes, proofs, messages, strict=True):
        unsealed = CODEC.encode_signed(env_bytes, signature)
        overhead = len(value) - len(unsealed)
        # 33 bytes per hash (length + digest), two varints, union and array headers
        assert overhead <= 33 * math.ceil(math.log2(n)) + 8
        assert len(proof.path) <= math.ceil(math.log2(n))


def test_the_statement_is_domain_separated_and_names_key_size_and_root() -> None:
    top = merkle.root([b"a", b"b", b"c"])
    statement = seal_statement("PAN:0123456789abcdef", 3, top)
    assert statement == (
        b"corredor.batch-seal.v1\x00PAN:0123456789abcdef\x00" + (3).to_bytes(8, "big") + top
    )
    assert seal_statement("GTM:0123456789abcdef", 3, top) != statement
    assert seal_statement("PAN:0123456789abcdef", 4, top) != statement
    with pytest.raises(ValueError):
        seal_statement("PAN:x", 3, top[:31])
    with pytest.raises(ValueError):
        seal_statement("PAN:x", 0, top)
    with pytest.raises(ValueError):
        seal_batch(SigningKey.generate("PAN"), [])


# -- tampering: all "bad-signature" ------------------------------------------------


def _tampered_cases(
    envelopes: list[bytes], signature: bytes, proofs: list[SealProof]
) -> dict[str, bytes]:
    env, proof = envelopes[5], proofs[5]
    other_env = _envelope("PAN", CODEC.decode_envelope(env).key_id, 99)
    flipped_sig = bytes([signature[0] ^ 1]) + signature[1:]
    path = list(proof.path)
    path[2] = bytes([path[2][0] ^ 0x80]) + path[2][1:]
    return {
        "altered envelope": CODEC.encode_signed(other_env, signature, proof),
        "flipped signature byte": CODEC.encode_signed(env, flipped_sig, proof),
        "flipped path byte": CODEC.encode_signed(env, signature, replace(proof, path=tuple(path))),
        "path too short": CODEC.encode_signed(env, signature, replace(proof, path=proof.path[1:])),
        "path too long": CODEC.encode_signed(
            env, signature, replace(proof, path=(*proof.path, proof.path[0]))
        ),
        "short hash": CODEC.encode_signed(
            env, signature, replace(proof, path=(proof.path[0][:20], *proof.path[1:]))
        ),
        "other index": CODEC.encode_signed(env, signature, replace(proof, leaf_index=4)),
        "index past the end": CODEC.encode_signed(env, signature, replace(proof, leaf_index=37)),
        "negative index": CODEC.encode_signed(env, signature, replace(proof, leaf_index=-1)),
        "smaller tree": CODEC.encode_signed(env, signature, replace(proof, tree_size=36)),
        "larger tree": CODEC.encode_signed(env, signature, replace(proof, tree_size=38)),
        "zero tree": CODEC.encode_signed(env, signature, replace(proof, tree_size=0)),
        "proof moved to another event": CODEC.encode_signed(envelopes[6], signature, proof),
        "seal signature as an envelope signature": CODEC.encode_signed(env, signature),
    }


def test_any_tampering_is_a_bad_signature() -> None:
    pan = SigningKey.generate("PAN")
    keys = _directory(pan)
    envelopes, signature, proofs, messages = _sealed_batch(pan, 37)
    seals = SealVerifier()
    verify_message(CODEC, keys, messages[0], seals)  # the genuine seal, now cached
    for case, value in _tampered_cases(envelopes, signature, proofs).items():
        assert _reason(keys, value, seals) == "bad-signature", case
        assert _reason(keys, value) == "bad-signature", case
    for value in messages:  # the genuine events are unaffected
        verify_message(CODEC, keys, value, seals)


def test_every_wrong_tree_size_fails_even_where_the_path_fits() -> None:
    """Leaf 0 climbs the same way in trees of 3 and 4 leaves: the proof alone
    cannot tell the sizes apart, the signed statement does."""
    pan = SigningKey.generate("PAN")
    keys = _directory(pan)
    for n in (3, 4, 5, 8):
        envelopes, signature, proofs, _ = _sealed_batch(pan, n)
        for size in range(1, 2 * n + 2):
            if size == n:
                continue
            value = CODEC.encode_signed(envelopes[0], signature, replace(proofs[0], tree_size=size))
            assert _reason(keys, value, SealVerifier()) == "bad-signature", (n, size)


# -- whose seal: trust checks before the crypto -------------------------------------


def test_a_seal_by_another_countrys_key() -> None:
    pan, gtm = SigningKey.generate("PAN"), SigningKey.generate("GTM")
    keys = _directory(pan, gtm)
    # GTM seals events claiming PAN under its own key id: caught before any crypto
    *_, messages = _sealed_batch(gtm, 4, producer="PAN")
    assert {_reason(keys, v) for v in messages} == {"producer-mismatch"}
    # GTM seals events claiming PAN's key id: the statement names PAN's key, the
    # signature is GTM's, so it does not verify
    *_, messages = _sealed_batch(gtm, 4, producer="PAN", key_id=pan.key_id)
    assert {_reason(keys, v) for v in messages} == {"bad-signature"}
    # a key the manifest does not list
    intruder = SigningKey.generate("PAN")
    *_, messages = _sealed_batch(intruder, 4)
    assert {_reason(keys, v) for v in messages} == {"unknown-key"}


def test_a_cached_seal_does_not_outlive_its_keys_revocation() -> None:
    pan = SigningKey.generate("PAN")
    *_, messages = _sealed_batch(pan, 8)
    seals = SealVerifier()
    verify_message(CODEC, _directory(pan), messages[0], seals)
    assert seals.cached == 1
    revoked = _directory(pan, revoked="PAN")
    assert {_reason(revoked, v, seals) for v in messages} == {"revoked-key"}


def test_an_unsigned_sealed_message_is_unsigned() -> None:
    pan = SigningKey.generate("PAN")
    envelopes, _, proofs, _ = _sealed_batch(pan, 3)
    value = CODEC.encode_signed(envelopes[0], None, proofs[0])
    assert _reason(_directory(pan), value) == "unsigned"


# -- one verification per seal ---------------------------------------------------------


def test_a_batch_costs_one_verification(count_verifications: Callable[[], int]) -> None:
    pan = SigningKey.generate("PAN")
    keys = _directory(pan)
    *_, messages = _sealed_batch(pan, 50)
    seals = SealVerifier()
    verify_message(CODEC, keys, messages[0], seals)
    assert count_verifications() == 1
    verify_message(CODEC, keys, messages[1], seals)
    assert count_verifications() == 1  # the second event reuses the verified seal
    for value in messages[2:]:
        verify_message(CODEC, keys, value, seals)
    assert count_verifications() == 1 and seals.cached == 1
    *_, more = _sealed_batch(pan, 10, start=100)
    for value in more:
        verify_message(CODEC, keys, value, seals)
    assert count_verifications() == 2 and seals.cached == 2
    # without a shared verifier each message stands alone and pays in full
    for value in messages[:5]:
        verify_message(CODEC, keys, value)
    assert count_verifications() == 7


def test_failures_are_never_cached(count_verifications: Callable[[], int]) -> None:
    pan = SigningKey.generate("PAN")
    keys = _directory(pan)
    envelopes, signature, proofs, _ = _sealed_batch(pan, 4)
    forged = CODEC.encode_signed(envelopes[0], bytes(64), proofs[0])
    seals = SealVerifier()
    for _ in range(3):
        assert _reason(keys, forged, seals) == "bad-signature"
    assert count_verifications() == 3 and seals.cached == 0
    # a malformed proof is refused before any verification
    bad = CODEC.encode_signed(envelopes[0], signature, replace(proofs[0], leaf_index=9))
    assert _reason(keys, bad, seals) == "bad-signature"
    assert count_verifications() == 3


def test_the_cache_is_a_bounded_lru(count_verifications: Callable[[], int]) -> None:
    pan = SigningKey.generate("PAN")
    batches = []
    for start in (0, 10, 20):
        envelopes, signature, proofs, _ = _sealed_batch(pan, 2, start=start)
        batches.append((envelopes[0], signature, proofs[0]))
    seals = SealVerifier(capacity=2)
    for env, sig, proof in batches:
        seals.verify(pan.public, pan.key_id, env, sig, proof)
    assert seals.cached == 2 and count_verifications() == 3
    seals.verify(pan.public, pan.key_id, *batches[2])  # newest: still cached
    seals.verify(pan.public, pan.key_id, *batches[1])
    assert count_verifications() == 3
    seals.verify(pan.public, pan.key_id, *batches[0])  # oldest: evicted, verified again
    assert count_verifications() == 4 and seals.cached == 2
    # the cache is keyed by the public key too: the same seal under another key fails
    with pytest.raises(SignatureInvalid):
        seals.verify(SigningKey.generate("PAN").public, pan.key_id, *batches[0])
    with pytest.raises(ValueError):
        SealVerifier(capacity=0)


# -- the wire: SignedEvent v1 and v2 ---------------------------------------------------


def test_unsealed_events_keep_the_v1_bytes_and_a_v1_codec_refuses_seals() -> None:
    old = EventCodec(CODEC.registry, pins={"SignedEvent": 1})
    v1, v2 = CODEC.registry.history("SignedEvent")
    pan = SigningKey.generate("PAN")
    envelopes, signature, proofs, messages = _sealed_batch(pan, 3)
    plain = CODEC.encode_signed(envelopes[0], pan.sign(envelopes[0]))
    assert plain == old.encode_signed(envelopes[0], pan.sign(envelopes[0]))
    assert plain[2:10] == v1.fingerprint and messages[0][2:10] == v2.fingerprint
    assert CODEC.split_sealed(plain)[2] is None
    assert CODEC.split_sealed(messages[1])[2] == proofs[1]
    with pytest.raises(CodecError, match="cannot carry a batch seal"):
        old.encode_signed(envelopes[0], signature, proofs[0])
    # a reader still on v1 does not see the seal, so it never mistakes the seal
    # signature for a signature over the envelope: it sets the event aside
    keys = _directory(pan)
    assert old.split_sealed(messages[0]) == (envelopes[0], signature, None)
    with pytest.raises(MessageRejected) as info:
        verify_message(old, keys, messages[0])
    assert info.value.reason == "bad-signature"
    verify_message(old, keys, plain)


# -- the aggregator: sealed events apply as signed ones do ------------------------------


def _reseal(topic: MemoryTopic, key: SigningKey, batch: int) -> MemoryTopic:
    """The same events, sealed ``batch`` at a time instead of signed one by one."""
    resealed = MemoryTopic()
    records = topic.records
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        envelopes = [CODEC.split_signed(r.value or b"")[0] for r in chunk]
        signature, proofs = seal_batch(key, envelopes)
        for record, env, proof in zip(chunk, envelopes, proofs, strict=True):
            resealed.append(record.key or b"", CODEC.encode_signed(env, signature, proof))
    return resealed


def test_the_aggregator_applies_sealed_events_with_one_verification_per_batch(
    tmp_path: Path, count_verifications: Callable[[], int]
) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 300)
    agg = aggregator_for(tmp_path, [pan])
    signed = MemoryTopic()
    with NodeStore(pan.store_path) as store:
        factory = EventFactory(pan.country, home_policy(pan), trust.load_signing_key(pan), CODEC)
        store.stage(prepare_flow_events(store, factory).events)
        drain_outbox(store, MemorySink(signed))
    n = len(signed.records)
    assert n >= 4
    sealed = _reseal(signed, trust.load_signing_key(pan), batch=2)
    with PictureStore(agg.store_path) as store:
        aggregator = Aggregator(store, CODEC, trust.key_directory(agg), floor=regional_floor())
        messages = MemorySource(sealed).poll_batch(0, 10**9)
        # two polls, the second sealed batch straddling them
        stats = aggregator.apply_batch(messages[:3])
        stats.add(aggregator.apply_batch(messages[3:]))
        cells = store.flow_cells()
    assert stats.applied == n and stats.rejected_total == 0
    # one verification per sealed batch, even for the batch split across polls
    assert count_verifications() == math.ceil(n / 2)
    # the same picture as from the individually signed events
    reference = tmp_path / "reference.db"
    with PictureStore(reference) as store:
        Aggregator(store, CODEC, trust.key_directory(agg), floor=regional_floor()).apply_batch(
            MemorySource(signed).poll_batch(0, 10**9)
        )
        assert store.flow_cells() == cells
