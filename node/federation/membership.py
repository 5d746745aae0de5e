"""Who is a member and whose keys count, decided by the members, not the Secretariat.

The Secretariat signs the manifest, and a node still accepts only manifests
its pinned Secretariat key signed. That signature is necessary but no longer
enough. Over a verified manifest a node computes a *trust view*:

- **Founders** are the root of trust: the members and key ids agreed out of
  band when the federation was founded, pinned in each home
  (``federation pin-founders``). Without founders pinned, a home runs in the
  old mode (the Secretariat's word alone) and says so in ``doctor``.
- **Key continuity.** A member's key counts if it is its root key (pinned as
  a founder, or approved by quorum), or if a key statement in the manifest,
  signed by one of the member's counted signing keys, vouches for it. A key
  the Secretariat put there without such a statement is rejected.
- **Membership by quorum.** Admitting a member, changing a member's status
  and replacing a member's root key are *changes*, each named by a change id
  (a hash of its RFC 8785 form). A change holds when a quorum of the counted
  members (a majority, ``quorum_needed``) signed an approval of it
  (``federation approve CHANGE_ID``, carried on the control topic). Until
  then the new member gets nothing sealed to it and its events do not count,
  and a member whose status changed keeps the status it had.
- **Revocation** (by the Secretariat or by the member) only lowers trust, so
  it needs no quorum: a revoked key is never counted.

Everything here is pure: the caller passes the manifest, the founders and the
approvals it holds. The statements themselves (the founders list, key
statements, approvals, self-revocations and the changes) are in ``statements``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from node.crypto.signing import load_public_pem, verify
from node.errors import SignatureInvalid
from node.federation.statements import (
    Approval,
    Founders,
    SelfRevocation,
    admit_change,
    approval_body,
    canonical_bytes,
    change_id,
    describe,
    key_statement_body,
    pem_sha256,
    replace_root_change,
    revocation_body,
    status_change,
)
from node.model.manifest import KeyEntry, KeyStatement, Manifest, Member

# -- the trust view ------------------------------------------------------------------


QuorumRule = Literal["majority", "two-thirds", "unanimity"]


def quorum_needed(voters: int, rule: QuorumRule = "majority") -> int:
    """Approvals needed among ``voters`` counted members, by the regional
    floor's ``membership_quorum``."""
    if rule == "unanimity":
        return voters
    if rule == "two-thirds":
        return -(-2 * voters // 3)
    return voters // 2 + 1


@dataclass(frozen=True)
class PendingChange:
    change_id: str
    change: dict[str, Any]
    approvals: tuple[str, ...]  # countries whose approval verifies
    needed: int


@dataclass(frozen=True)
class RejectedKey:
    country: str
    kind: str
    key_id: str
    reason: str


@dataclass
class TrustView:
    """What a node trusts in a manifest. ``enforced`` is False without founders."""

    enforced: bool
    status: dict[str, str] = field(default_factory=dict)  # counted members
    signing: dict[str, set[str]] = field(default_factory=dict)  # country -> key ids
    encryption: dict[str, set[str]] = field(default_factory=dict)
    vouched_by: dict[str, str] = field(default_factory=dict)  # key id -> signer
    pending: list[PendingChange] = field(default_factory=list)
    rejected: list[RejectedKey] = field(default_factory=list)
    approved: dict[str, tuple[str, ...]] = field(default_factory=dict)  # change id -> countries
    missing_founders: list[str] = field(default_factory=list)
    self_revoked: list[str] = field(default_factory=list)  # by the member itself
    #: The manifest with the members' own revocations applied, when there were any.
    effective: Manifest | None = None

    def counts(self, country: str) -> bool:
        return country in self.status

    def is_member(self, country: str) -> bool:
        return self.status.get(country) == "member"

    def signing_key_ok(self, country: str, key_id: str) -> bool:
        return key_id in self.signing.get(country, set())

    def encryption_key_ok(self, country: str, key_id: str) -> bool:
        return key_id in self.encryption.get(country, set())

    def trusted_signing_ids(self) -> set[str]:
        return {k for keys in self.signing.values() for k in keys}

    @property
    def problems(self) -> list[str]:
        out = [f"founder {c} is missing from the manifest" for c in self.missing_founders]
        out += [f"{p.change_id}: {describe(p.change)} lacks quorum" for p in self.pending]
        out += [f"{r.country} {r.kind} key {r.key_id} rejected: {r.reason}" for r in self.rejected]
        return out


def _verify_statement(
    federation: str, country: str, st: KeyStatement, signer: KeyEntry, entry: KeyEntry
) -> bool:
    if st.public_sha256 != pem_sha256(entry.public_pem):
        return False
    body = key_statement_body(federation, country, st.kind, st.key_id, st.public_sha256)
    try:
        verify(
            load_public_pem(signer.public_pem),
            base64.b64decode(st.signature, validate=True),
            canonical_bytes(body),
        )
    except (SignatureInvalid, ValueError):
        return False
    return True


def _continuity(
    federation: str, member: Member, roots: set[str], root_enc: set[str]
) -> tuple[set[str], set[str], dict[str, str]]:
    """Signing and encryption key ids reachable from ``roots`` by statements."""
    signing = {k.key_id: k for k in member.signing_keys}
    encryption = {k.key_id: k for k in member.encryption_keys}
    good_sign = {r for r in roots if r in signing}
    good_enc = {e for e in root_enc if e in encryption}
    vouched: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for st in member.key_statements:
            pool, good = (signing, good_sign) if st.kind == "signing" else (encryption, good_enc)
            if st.key_id in good or st.key_id not in pool:
                continue
            signer = signing.get(st.signed_by)
            # A revoked key may be in an attacker's hands: it vouches for nothing.
            if st.signed_by not in good_sign or signer is None or signer.revoked_at is not None:
                continue
            if _verify_statement(federation, member.country, st, signer, pool[st.key_id]):
                good.add(st.key_id)
                vouched[st.key_id] = st.signed_by
                changed = True
    # A revoked key stays counted as the member's (its events before a
    # compromise may stay valid; the key's state decides), but vouches for nothing.
    return good_sign, good_enc, vouched


def _valid_approvals(
    change: dict[str, Any], approvals: Iterable[Approval], view: TrustView, manifest: Manifest
) -> set[str]:
    cid = change_id(change)
    out: set[str] = set()
    for a in approvals:
        if a.change_id != cid or change_id(a.change) != cid or a.change != change:
            continue
        if not view.is_member(a.approver) or not view.signing_key_ok(a.approver, a.key_id):
            continue
        found = manifest.signing_key(a.key_id)
        if found is None or found[0].country != a.approver or found[1].revoked_at is not None:
            continue
        try:
            verify(
                load_public_pem(found[1].public_pem),
                base64.b64decode(a.signature, validate=True),
                canonical_bytes(approval_body(change, a.approver, a.key_id)),
            )
        except (SignatureInvalid, ValueError):
            continue
        out.add(a.approver)
    return out


def _apply_revocations(
    manifest: Manifest, view: TrustView, revocations: Iterable[SelfRevocation]
) -> tuple[Manifest, list[str]]:
    """The manifest with each verified self-revocation applied (revoked_at set)."""
    revoked: list[str] = []
    members = [m.model_copy(deep=True) for m in manifest.members]
    for r in revocations:
        member = next((m for m in members if m.country == r.country), None)
        signer = manifest.signing_key(r.signed_by)
        if member is None or signer is None or signer[0].country != r.country:
            continue
        if not view.signing_key_ok(r.country, r.signed_by):
            continue
        body = revocation_body(manifest.federation, r.country, r.key_id, r.signed_by)
        try:
            verify(
                load_public_pem(signer[1].public_pem),
                base64.b64decode(r.signature, validate=True),
                canonical_bytes(body),
            )
        except (SignatureInvalid, ValueError):
            continue
        for entry in [*member.signing_keys, *member.encryption_keys]:
            if entry.key_id == r.key_id and entry.revoked_at is None:
                entry.revoked_at = manifest.issued_at
                revoked.append(r.key_id)
    return manifest.model_copy(update={"members": members}), revoked


def evaluate(
    manifest: Manifest,
    founders: Founders | None,
    approvals: Iterable[Approval] = (),
    revocations: Iterable[SelfRevocation] = (),
    rule: QuorumRule = "majority",
) -> TrustView:
    """The trust view of ``manifest`` from ``founders``, the ``approvals`` held
    and the members' own ``revocations`` (applied without quorum)."""
    approvals = list(approvals)
    revocations = list(revocations)
    if revocations:
        first = _evaluate(manifest, founders, approvals, rule)
        manifest, revoked = _apply_revocations(manifest, first, revocations)
        view = _evaluate(manifest, founders, approvals, rule)
        view.self_revoked = revoked
        view.effective = manifest
        return view
    return _evaluate(manifest, founders, approvals, rule)


def _evaluate(
    manifest: Manifest, founders: Founders | None, approvals: list[Approval], rule: QuorumRule
) -> TrustView:
    if founders is None:
        view = TrustView(enforced=False)
        for m in manifest.members:
            view.status[m.country] = m.status
            view.signing[m.country] = {k.key_id for k in m.signing_keys}
            view.encryption[m.country] = {k.key_id for k in m.encryption_keys}
        return view
    view = TrustView(enforced=True)
    fed = manifest.federation
    roots: dict[str, tuple[set[str], set[str], str]] = {}  # country -> roots, enc, status
    for f in founders.members:
        if manifest.member(f.country) is None:
            view.missing_founders.append(f.country)
            continue
        enc = {f.encryption_key_id} if f.encryption_key_id else set()
        roots[f.country] = ({f.signing_key_id}, enc, f.status)

    def settle(country: str) -> None:
        member = manifest.member(country)
        assert member is not None
        root_sign, root_enc, base = roots[country]
        sign, enc, vouched = _continuity(fed, member, root_sign, root_enc)
        view.signing[country], view.encryption[country] = sign, enc
        view.vouched_by.update(vouched)
        view.status[country] = base

    for country in roots:
        settle(country)
    # Candidates wait for a quorum of the members counted so far; each round
    # may count more members, so repeat until nothing changes.
    outsiders = [m for m in manifest.members if m.country not in roots]
    progress = True
    while progress:
        progress = False
        voters = sum(1 for s in view.status.values() if s == "member")
        for m in list(outsiders):
            for status in ("member", "observer"):
                change = admit_change(fed, m, status)
                if change is None:
                    continue
                yes = _valid_approvals(change, approvals, view, manifest)
                if voters and len(yes) >= quorum_needed(voters, rule):
                    sign = {change["signing_key_id"]}
                    enc = {change["encryption_key_id"]} if change["encryption_key_id"] else set()
                    roots[m.country] = (sign, enc, status)
                    view.approved[change_id(change)] = tuple(sorted(yes))
                    settle(m.country)
                    outsiders.remove(m)
                    progress = True
                    break
    voters = sum(1 for s in view.status.values() if s == "member")
    need = quorum_needed(voters, rule) if voters else 1
    for m in outsiders:
        change = admit_change(fed, m, m.status)
        if change is not None:
            yes = _valid_approvals(change, approvals, view, manifest)
            view.pending.append(PendingChange(change_id(change), change, tuple(sorted(yes)), need))
    for country in sorted(roots):
        member = manifest.member(country)
        assert member is not None
        root_sign, root_enc, base = roots[country]
        root = sorted(root_sign)[0]
        # Root replacements (a member that lost its key), then status changes.
        for entry in member.signing_keys:
            if entry.key_id in view.signing[country] or entry.revoked_at is not None:
                continue
            change = replace_root_change(fed, country, root, entry)
            yes = _valid_approvals(change, approvals, view, manifest)
            if len(yes) >= need:
                roots[country] = (root_sign | {entry.key_id}, root_enc, base)
                view.approved[change_id(change)] = tuple(sorted(yes))
                settle(country)
            else:
                view.pending.append(
                    PendingChange(change_id(change), change, tuple(sorted(yes)), need)
                )
        if member.status != base:
            change = status_change(fed, country, root, base, member.status)
            yes = _valid_approvals(change, approvals, view, manifest)
            if len(yes) >= need:
                view.status[country] = member.status
                view.approved[change_id(change)] = tuple(sorted(yes))
            else:
                view.pending.append(
                    PendingChange(change_id(change), change, tuple(sorted(yes)), need)
                )
        for kind, entries, good in (
            ("signing", member.signing_keys, view.signing[country]),
            ("encryption", member.encryption_keys, view.encryption[country]),
        ):
            for entry in entries:
                if entry.key_id not in good and entry.revoked_at is None:
                    view.rejected.append(
                        RejectedKey(country, kind, entry.key_id, f"not signed by {country}'s key")
                    )
    return view
