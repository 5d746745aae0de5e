"""Keys, the signed manifest, and what the aggregator trusts because of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from node.aggregator.apply import Aggregator
from node.aggregator.stats import ApplyStats
from node.config import Home
from node.crypto.keys import EncryptionKey
from node.crypto.sealing import SealedBox, open_sealed, seal
from node.crypto.signing import SigningKey
from node.errors import ConfigError, CryptoError, SignatureInvalid
from node.federation import drafts, trust
from node.federation import manifest as fed
from node.home import event_codec, regional_floor
from node.member import encounters
from node.member.drain import drain_outbox
from node.member.event_factory import EventFactory
from node.member.flow_release import prepare_flow_events
from node.member.member_home import home_policy, init_member
from node.model.events import Envelope
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data


def _publish(home: Home, topic: MemoryTopic, now: datetime | None = None) -> None:
    with NodeStore(home.store_path) as store:
        factory = EventFactory(
            home.country, home_policy(home), trust.load_signing_key(home), event_codec()
        )
        store.stage(prepare_flow_events(store, factory, now=now).events)
        drain_outbox(store, MemorySink(topic))


def _apply(agg: Home, topic: MemoryTopic) -> ApplyStats:
    with PictureStore(agg.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg), floor=regional_floor()
        )
        return aggregator.apply_batch(MemorySource(topic).poll_batch(0, 10**9))


def test_manifest_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 50)
    agg = aggregator_for(tmp_path, [pan])
    genuine = fed.read_signed(agg.manifest_path)
    manifest, updated = trust.accept_manifest(pan, genuine)
    assert updated and manifest.member("PAN") is not None
    impostor = SigningKey.generate("TS")
    forged_manifest = manifest.model_copy(
        update={"serial": 99, "secretariat_key_id": impostor.key_id}
    )
    with pytest.raises(SignatureInvalid, match="not the pinned Secretariat key"):
        trust.accept_manifest(pan, fed.sign_manifest(forged_manifest, impostor))
    # the same bytes with a signature claiming the real signer do not verify either
    tampered = genuine.model_copy(update={"payload": genuine.payload.replace('"PAN"', '"GTM"')})
    with pytest.raises(SignatureInvalid):
        trust.accept_manifest(pan, tampered)
    assert trust.current_manifest(pan).serial == manifest.serial


def test_an_older_manifest_never_replaces_a_newer_one(tmp_path: Path) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 50)
    agg = aggregator_for(tmp_path, [pan])
    old = fed.read_signed(agg.manifest_path)
    drafts.sign_draft(agg)
    newer = fed.read_signed(agg.manifest_path)
    assert trust.accept_manifest(pan, newer)[1] is True
    manifest, updated = trust.accept_manifest(pan, old)
    assert not updated and manifest.serial == trust.current_manifest(agg).serial


def test_revoked_key_events_are_quarantined_and_picture_unchanged(tmp_path: Path) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 600)
    agg = aggregator_for(tmp_path, [pan])
    topic = MemoryTopic()
    _publish(pan, topic)
    drafts.revoke(agg, "PAN")
    drafts.sign_draft(agg)
    stats = _apply(agg, topic)
    assert stats.applied == 0 and stats.rejected == {"revoked-key": len(topic.records)}
    with PictureStore(agg.store_path) as store:
        assert store.flow_cells() == []


def test_rotation_keeps_old_events_valid_and_expires_the_old_key(tmp_path: Path) -> None:
    pan, _, _ = member_with_data(tmp_path, "PAN", 600)
    agg = aggregator_for(tmp_path, [pan])
    before = MemoryTopic()
    _publish(pan, before)
    old_id, new_id = trust.rotate_signing_key(pan)
    drafts.add_member(agg, "PAN", pan.public_key_path.read_text())
    drafts.retire_key(agg, "PAN", old_id, overlap_hours=0)
    drafts.sign_draft(agg)
    stats = _apply(agg, before)
    assert stats.rejected_total == 0 and stats.applied == len(before.records)
    # An event the old key signs after its validity ended is refused.
    retired = next(pan.retired_keys_dir.glob("signing-*.key"))
    old_key = SigningKey.load("PAN", retired)
    assert old_key.key_id == old_id
    late = MemoryTopic()
    codec = event_codec()
    env = codec.decode_envelope(codec.split_signed(before.records[0].value or b"")[0])
    resent = Envelope(
        **{
            **env.__dict__,
            "event_id": "late",
            "revision": 50,
            "produced_at": datetime.now(UTC) + timedelta(minutes=5),
        }
    )
    env_bytes = codec.encode_envelope(resent)
    late.append(b"PAN", codec.encode_signed(env_bytes, old_key.sign(env_bytes)))
    assert _apply(agg, late).rejected == {"expired-key": 1}
    assert trust.load_signing_key(pan).key_id == new_id


def test_private_keys_are_encrypted_at_rest_with_a_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORREDOR_KEY_PASSPHRASE", "correct horse battery staple")
    home = init_member(tmp_path / "pan", "PAN")
    for path in (home.signing_key_path, home.encryption_key_path):
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
        assert path.stat().st_mode & 0o777 == 0o600
    assert trust.load_signing_key(home).key_id.startswith("PAN:")
    monkeypatch.delenv("CORREDOR_KEY_PASSPHRASE")
    with pytest.raises(CryptoError, match="CORREDOR_KEY_PASSPHRASE"):
        trust.load_signing_key(home)
    monkeypatch.setenv("CORREDOR_KEY_PASSPHRASE", "wrong")
    with pytest.raises(CryptoError, match="wrong passphrase") as info:
        trust.load_signing_key(home)
    assert "staple" not in str(info.value)


def test_sealed_box_opens_only_for_its_recipients() -> None:
    gtm, mex, pan = (EncryptionKey.generate(c) for c in ("GTM", "MEX", "PAN"))
    aad = b"event-123|IntelligenceReport"
    box = seal(b"route via Tapachula", {k.key_id: k.public for k in (gtm, mex)}, aad)
    wire = SealedBox.from_bytes(box.to_bytes())
    assert b"Tapachula" not in box.to_bytes()
    for key in (gtm, mex):
        assert open_sealed(wire, key.key_id, key.private, aad) == b"route via Tapachula"
    with pytest.raises(CryptoError, match="not addressed"):
        open_sealed(wire, pan.key_id, pan.private, aad)
    # The box names nobody, so a wrong key or another event's data opens no entry.
    with pytest.raises(CryptoError, match="not addressed"):
        open_sealed(wire, gtm.key_id, pan.private, aad)  # PAN pretending to be GTM
    with pytest.raises(CryptoError, match="not addressed"):
        open_sealed(wire, gtm.key_id, gtm.private, b"another event")
    flipped = bytearray(box.to_bytes())
    flipped[-1] ^= 1
    with pytest.raises(CryptoError):
        open_sealed(SealedBox.from_bytes(bytes(flipped)), gtm.key_id, gtm.private, aad)


def test_pseudonym_key_is_encrypted_at_rest_with_a_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORREDOR_KEY_PASSPHRASE", "correct horse battery staple")
    home = init_member(tmp_path / "pan", "PAN")
    key = encounters.pseudonym_key(home)
    data = home.pseudonym_key_path.read_bytes()
    assert len(key) == 32 and key not in data and key.hex().encode() not in data
    assert home.pseudonym_key_path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("CORREDOR_KEY_PASSPHRASE", "wrong")
    with pytest.raises(ConfigError, match="not a pseudonym key"):
        encounters.pseudonym_key(home)
