"""Linkage tokens and the distribution of the regional linkage key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.config import Home
from node.crypto import linkage
from node.crypto.signing import SigningKey
from node.errors import ConfigError, CryptoError, SignatureInvalid
from node.federation import linkage_keys, trust
from node.federation.control import (
    publish_manifest,
    share_linkage_key,
    sync_linkage_key,
    sync_manifest,
)
from node.federation.manifest import read_signed
from node.member.member_home import init_member
from tests.factories import aggregator_for


def test_token_ignores_case_accents_and_spacing_but_not_identity() -> None:
    key = bytes(range(32))
    a = linkage.linkage_token(key, "pa 123-4567", "hti", "1990-04-02")
    assert a == linkage.linkage_token(key, "PA1234567", "HTI", "1990-04-02")
    assert a != linkage.linkage_token(key, "PA1234568", "HTI", "1990-04-02")
    assert a != linkage.linkage_token(key, "PA1234567", "HTI", "1990-04-03")
    assert a != linkage.linkage_token(bytes(32), "PA1234567", "HTI", "1990-04-02")
    assert len(a) == 32 and "1234567" not in a


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_tokens_are_keyed_hmacs_not_hashes(doc: str, other: str) -> None:
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    assert linkage.linkage_token(k1, doc, "CUB", "2000-01-01") != linkage.linkage_token(
        k2, doc, "CUB", "2000-01-01"
    )


def test_key_file_is_encrypted_at_rest(tmp_path: Path) -> None:
    key = linkage.new_linkage_key()
    path = tmp_path / "linkage.key"
    linkage.save_linkage_key(path, key, b"passphrase")
    assert key not in path.read_bytes() and path.stat().st_mode & 0o777 == 0o600
    assert linkage.load_linkage_key(path, b"passphrase") == key
    with pytest.raises(CryptoError, match="wrong passphrase"):
        linkage.load_linkage_key(path, b"nope")


def _federation(tmp_path: Path) -> tuple[list[Home], Home]:
    members = [init_member(tmp_path / c.lower(), c) for c in ("PAN", "CRI", "GTM")]
    agg = aggregator_for(tmp_path, members)
    for m in members:
        trust.accept_manifest(m, read_signed(agg.manifest_path))
    return members, agg


def test_key_reaches_every_member_and_never_the_secretariat(tmp_path: Path) -> None:
    (pan, cri, gtm), agg = _federation(tmp_path)
    fingerprint = linkage_keys.create_linkage_key(pan)
    bundle, countries = linkage_keys.bundle_linkage_key(pan)
    assert countries == ["CRI", "GTM"]
    for member in (cri, gtm):
        assert linkage_keys.accept_linkage_bundle(member, bundle) == (fingerprint, True)
        assert linkage_keys.load_linkage_key(member) == linkage_keys.load_linkage_key(pan)
    assert linkage_keys.accept_linkage_bundle(cri, bundle) == (fingerprint, False)
    with pytest.raises(ConfigError, match="never holds"):
        linkage_keys.accept_linkage_bundle(agg, bundle)
    key = linkage_keys.load_linkage_key(pan)
    assert key is not None and key not in bundle.to_json().encode()


def test_forged_bundle_is_refused(tmp_path: Path) -> None:
    (pan, cri, _), _ = _federation(tmp_path)
    linkage_keys.create_linkage_key(pan)
    bundle, _ = linkage_keys.bundle_linkage_key(pan)
    intruder = SigningKey.generate("PAN")
    forged = linkage.KeyBundle(
        bundle.distributor,
        bundle.signing_key_id,
        bundle.fingerprint,
        bundle.sealed,
        intruder.sign(bundle.signed_part()),
    )
    with pytest.raises(SignatureInvalid):
        linkage_keys.accept_linkage_bundle(cri, forged)
    assert linkage_keys.load_linkage_key(cri) is None


def test_key_distribution_over_the_control_topic(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    members = []
    for c in ("PAN", "CRI"):
        home = init_member(tmp_path / c.lower(), c, bootstrap=kafka_bootstrap, topic=topic)
        home.config.kafka.control_topic = f"{topic}.control"
        home.save()
        members.append(home)
    agg = aggregator_for(tmp_path, members, topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.control_topic = f"{topic}.control"
    agg.save()
    publish_manifest(agg)
    for m in members:
        sync_manifest(m)
    pan, cri = members
    fingerprint = linkage_keys.create_linkage_key(pan)
    assert share_linkage_key(pan) == ["CRI"]
    assert sync_linkage_key(cri) == (fingerprint, True)
    assert linkage_keys.load_linkage_key(cri) == linkage_keys.load_linkage_key(pan)
