"""The trust view without a broker: forged statements, replayed approvals,
approvals by those who do not count, and the old manifest format."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from node.cli import main
from node.crypto.keys import EncryptionKey, x25519_public_pem
from node.crypto.signing import SigningKey, public_pem
from node.federation import manifest as fed
from node.federation import manifest_diff, statements, trust
from node.federation import membership as mb
from node.member.member_home import init_member
from node.model.manifest import Manifest, SignedManifest
from tests.factories import aggregator_for

FED = "RCM"


def _keys(country: str) -> tuple[SigningKey, EncryptionKey]:
    return SigningKey.generate(country), EncryptionKey.generate(country)


def _manifest(keys: dict[str, tuple[SigningKey, EncryptionKey]]) -> Manifest:
    secretariat = SigningKey.generate("TS")
    draft = fed.empty_manifest(secretariat.key_id)
    for country, (s, e) in keys.items():
        draft, _ = fed.add_member(
            draft,
            country,
            name=country,
            signing_pem=public_pem(s.public),
            encryption_pem=x25519_public_pem(e.public),
        )
    return draft


def test_founders_count_and_an_outsider_needs_a_majority() -> None:
    founders_keys = {c: _keys(c) for c in ("CRI", "GTM", "MEX", "USA")}
    manifest = _manifest(founders_keys)
    founders = statements.founders_of(manifest)
    outsider = _keys("HND")
    manifest = fed.add_member(
        manifest,
        "HND",
        name="HND",
        signing_pem=public_pem(outsider[0].public),
        encryption_pem=x25519_public_pem(outsider[1].public),
    )[0]
    view = mb.evaluate(manifest, founders)
    assert view.counts("CRI") and not view.counts("HND")
    (pending,) = view.pending
    assert pending.needed == 3
    yes = [statements.sign_approval(founders_keys[c][0], pending.change) for c in ("CRI", "GTM")]
    assert not mb.evaluate(manifest, founders, yes).counts("HND")
    # The candidate's own approval, and a forged one, do not count.
    own = statements.sign_approval(outsider[0], pending.change)
    forged = yes[0].model_copy(update={"approver": "MEX"})
    assert not mb.evaluate(manifest, founders, [*yes, own, forged]).counts("HND")
    # An approval of another change (observer, not member) is not this one's.
    other = dict(pending.change, status="observer")
    replay = statements.sign_approval(founders_keys["MEX"][0], other).model_copy(
        update={"change_id": pending.change_id}
    )
    assert not mb.evaluate(manifest, founders, [*yes, replay]).counts("HND")
    third = statements.sign_approval(founders_keys["MEX"][0], pending.change)
    view = mb.evaluate(manifest, founders, [*yes, third])
    assert view.is_member("HND") and view.approved[pending.change_id] == ("CRI", "GTM", "MEX")


def test_a_key_counts_only_along_the_members_own_statements() -> None:
    keys = {c: _keys(c) for c in ("CRI", "GTM", "MEX")}
    manifest = _manifest(keys)
    founders = statements.founders_of(manifest)
    gtm_old = keys["GTM"][0]
    gtm_new = SigningKey.generate("GTM")
    pem = public_pem(gtm_new.public)
    manifest = fed.add_member(manifest, "GTM", name="GTM", signing_pem=pem)[0]
    assert not mb.evaluate(manifest, founders).signing_key_ok("GTM", gtm_new.key_id)
    # A statement signed by another member's key does not vouch for GTM's key.
    by_cri = statements.sign_key_statement(keys["CRI"][0], FED, "signing", gtm_new.key_id, pem)
    wrong = fed.add_key_statements(manifest, "GTM", [by_cri])
    assert not mb.evaluate(wrong, founders).signing_key_ok("GTM", gtm_new.key_id)
    # Nor a statement over another key's bytes.
    other = SigningKey.generate("GTM")
    swapped = statements.sign_key_statement(
        gtm_old, FED, "signing", gtm_new.key_id, public_pem(other.public)
    )
    assert not mb.evaluate(
        fed.add_key_statements(manifest, "GTM", [swapped]), founders
    ).signing_key_ok("GTM", gtm_new.key_id)
    good = statements.sign_key_statement(gtm_old, FED, "signing", gtm_new.key_id, pem)
    rotated = fed.add_key_statements(manifest, "GTM", [good])
    view = mb.evaluate(rotated, founders)
    assert view.signing_key_ok("GTM", gtm_new.key_id)
    assert view.vouched_by[gtm_new.key_id] == gtm_old.key_id
    # A tampered signature does not verify.
    bad = good.model_copy(update={"signature": base64.b64encode(b"\x00" * 64).decode()})
    assert not mb.evaluate(fed.add_key_statements(manifest, "GTM", [bad]), founders).signing_key_ok(
        "GTM", gtm_new.key_id
    )
    # A revoked key vouches for nothing (it may be in an attacker's hands).
    revoked, _ = fed.revoke(rotated, "GTM", gtm_old.key_id)
    assert not mb.evaluate(revoked, founders).signing_key_ok("GTM", gtm_new.key_id)


def test_a_status_change_without_quorum_keeps_the_old_status() -> None:
    keys = {c: _keys(c) for c in ("CRI", "GTM", "MEX")}
    manifest = _manifest(keys)
    founders = statements.founders_of(manifest)
    members = [
        m.model_copy(update={"status": "observer"}) if m.country == "GTM" else m
        for m in manifest.members
    ]
    demoted = manifest.model_copy(update={"members": members})
    view = mb.evaluate(demoted, founders)
    assert view.is_member("GTM")
    (pending,) = view.pending
    assert pending.change["action"] == "status" and pending.needed == 2
    yes = [statements.sign_approval(keys[c][0], pending.change) for c in ("CRI", "MEX")]
    assert mb.evaluate(demoted, founders, yes).status["GTM"] == "observer"


def test_without_founders_the_old_mode_says_so() -> None:
    manifest = _manifest({"CRI": _keys("CRI")})
    view = mb.evaluate(manifest, None)
    assert not view.enforced and view.counts("CRI")
    changes = manifest_diff.diff(None, None, manifest, view)
    assert any("no founders pinned" in line for line in changes)


def test_a_version_1_manifest_is_still_read() -> None:
    """Signed before the upgrade: sorted-keys JSON without the new fields."""
    secretariat = SigningKey.generate("TS")
    manifest = fed.empty_manifest(secretariat.key_id).model_copy(
        update={"serial": 3, "issued_at": datetime(2026, 1, 1, tzinfo=UTC)}
    )
    data = manifest.model_dump(mode="json")
    for new_field in ("version", "prev_sha256"):
        data.pop(new_field)
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
    signed = SignedManifest(
        payload=payload,
        signature=base64.b64encode(secretariat.sign(payload.encode())).decode(),
        signer=secretariat.key_id,
    )
    read = fed.verify_manifest(signed, secretariat.public, secretariat.key_id)
    assert read.version == 1 and read.serial == 3
    # Re-signed as version 1, it keeps the sorted-keys form.
    assert fed.canonical(read) == json.dumps(
        read.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )


def test_a_member_revokes_its_own_key_and_nobody_else_can() -> None:
    keys = {c: _keys(c) for c in ("CRI", "GTM", "MEX")}
    manifest = _manifest(keys)
    founders = statements.founders_of(manifest)
    gtm = keys["GTM"][0]
    own = statements.sign_revocation(gtm, FED, keys["GTM"][1].key_id)
    view = mb.evaluate(manifest, founders, revocations=[own])
    assert view.self_revoked == [keys["GTM"][1].key_id]
    assert view.effective is not None
    member = view.effective.member("GTM")
    assert member is not None
    entry = member.encryption_keys[0]
    assert entry.revoked_at is not None
    # A key the Secretariat slipped in as GTM's cannot revoke GTM's real keys,
    # nor can another member.
    injected = SigningKey.generate("GTM")
    with_injected = fed.add_member(
        manifest, "GTM", name="GTM", signing_pem=public_pem(injected.public)
    )[0]
    forged = [
        statements.sign_revocation(injected, FED, gtm.key_id),
        statements.sign_revocation(keys["CRI"][0], FED, gtm.key_id).model_copy(
            update={"country": "GTM"}
        ),
    ]
    assert mb.evaluate(with_injected, founders, revocations=forged).self_revoked == []


def test_the_floor_sets_the_quorum() -> None:
    assert [mb.quorum_needed(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert [mb.quorum_needed(n, "two-thirds") for n in (3, 4, 6)] == [2, 3, 4]
    assert mb.quorum_needed(4, "unanimity") == 4
    keys = {c: _keys(c) for c in ("CRI", "GTM", "MEX")}
    manifest = _manifest(keys)
    founders = statements.founders_of(manifest)
    outsider = _keys("HND")
    manifest = fed.add_member(
        manifest, "HND", name="HND", signing_pem=public_pem(outsider[0].public)
    )[0]
    (pending,) = mb.evaluate(manifest, founders).pending
    yes = [statements.sign_approval(keys[c][0], pending.change) for c in ("CRI", "GTM")]
    assert mb.evaluate(manifest, founders, yes).counts("HND")
    assert not mb.evaluate(manifest, founders, yes, rule="unanimity").counts("HND")


def test_federation_show_prints_encryption_key_ids_as_they_are(tmp_path: Path) -> None:
    """`GTM:x:...` once printed as an emoji (rich's :x: code)."""
    gtm = init_member(tmp_path / "gtm", "GTM")
    agg = aggregator_for(tmp_path, [gtm])
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        main, ["--home", str(agg.path), "federation", "show"]
    )
    assert result.exit_code == 0, result.output
    enc_id = trust.load_encryption_key(gtm).key_id
    assert enc_id in result.output and "\u274c" not in result.output
