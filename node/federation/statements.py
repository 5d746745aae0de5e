"""The federation's signed statements and the changes they approve: the
founders list (the root of trust), a member's statement vouching for its new
key, its approval of a change, its revocation of its own key, and the changes
themselves (admit, status, replace a root key), each named by a change id.

Each statement is signed over the RFC 8785 bytes of its body. Which of them
count is decided in ``membership`` (the trust view).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict

from node.crypto.signing import SigningKey
from node.model.manifest import KeyEntry, KeyStatement, Manifest, Member

Status = Literal["member", "observer"]


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value."""
    return rfc8785.dumps(obj)


def pem_sha256(pem: str) -> str:
    return hashlib.sha256(pem.strip().encode("ascii")).hexdigest()


# -- founders: the root of trust ----------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Founder(_Strict):
    country: str
    status: Status = "member"
    signing_key_id: str
    encryption_key_id: str | None = None


class Founders(_Strict):
    federation: str
    secretariat_key_id: str
    members: list[Founder]

    def digest(self) -> str:
        """What founding members read to each other out of band to compare lists."""
        return hashlib.sha256(canonical_bytes(self.model_dump(mode="json"))).hexdigest()


def founders_of(manifest: Manifest) -> Founders:
    """The founding list as a manifest states it (the Secretariat proposes it;
    each founding member checks it out of band before pinning)."""
    out = []
    for m in manifest.members:
        signing = _first(m.signing_keys)
        if signing is None:
            continue
        enc = _first(m.encryption_keys)
        out.append(
            Founder(
                country=m.country,
                status=m.status,
                signing_key_id=signing.key_id,
                encryption_key_id=enc.key_id if enc else None,
            )
        )
    return Founders(
        federation=manifest.federation,
        secretariat_key_id=manifest.secretariat_key_id,
        members=out,
    )


def _first(entries: list[KeyEntry]) -> KeyEntry | None:
    live = [k for k in entries if k.revoked_at is None]
    return min(live, key=lambda k: k.valid_from) if live else None


# -- statements -------------------------------------------------------------------


def key_statement_body(federation: str, country: str, kind: str, key_id: str, sha: str) -> Any:
    return {
        "type": "corredor.key-rotation.v1",
        "federation": federation,
        "country": country,
        "kind": kind,
        "key_id": key_id,
        "public_sha256": sha,
    }


def sign_key_statement(
    signer: SigningKey,
    federation: str,
    kind: Literal["signing", "encryption"],
    key_id: str,
    pem: str,
) -> KeyStatement:
    """The member's own signature over its new key (``keys rotate``)."""
    sha = pem_sha256(pem)
    body = key_statement_body(federation, signer.country, kind, key_id, sha)
    signature = base64.b64encode(signer.sign(canonical_bytes(body))).decode("ascii")
    return KeyStatement(
        kind=kind, key_id=key_id, public_sha256=sha, signed_by=signer.key_id, signature=signature
    )


class Approval(_Strict):
    """A member's signed yes to one change (``federation approve``)."""

    change: dict[str, Any]
    change_id: str
    approver: str
    key_id: str
    signature: str  # base64 Ed25519 over canonical_bytes(approval_body(...))

    def to_json(self) -> str:
        return self.model_dump_json()


class SelfRevocation(_Strict):
    """A member revoking one of its own keys: needs no quorum (``federation
    revoke-own``). Signed by one of the member's counted signing keys."""

    country: str
    key_id: str
    signed_by: str
    signature: str  # base64 Ed25519 over canonical_bytes(revocation_body(...))

    def to_json(self) -> str:
        return self.model_dump_json()


def revocation_body(federation: str, country: str, key_id: str, signed_by: str) -> Any:
    return {
        "type": "corredor.self-revocation.v1",
        "federation": federation,
        "country": country,
        "key_id": key_id,
        "signed_by": signed_by,
    }


def sign_revocation(signer: SigningKey, federation: str, key_id: str) -> SelfRevocation:
    body = revocation_body(federation, signer.country, key_id, signer.key_id)
    signature = base64.b64encode(signer.sign(canonical_bytes(body))).decode("ascii")
    return SelfRevocation(
        country=signer.country, key_id=key_id, signed_by=signer.key_id, signature=signature
    )


def change_id(change: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(change)).hexdigest()[:20]


def approval_body(change: dict[str, Any], approver: str, key_id: str) -> Any:
    return {
        "type": "corredor.approval.v1",
        "change": change,
        "approver": approver,
        "key_id": key_id,
    }


def sign_approval(signer: SigningKey, change: dict[str, Any]) -> Approval:
    body = approval_body(change, signer.country, signer.key_id)
    signature = base64.b64encode(signer.sign(canonical_bytes(body))).decode("ascii")
    return Approval(
        change=change,
        change_id=change_id(change),
        approver=signer.country,
        key_id=signer.key_id,
        signature=signature,
    )


def admit_change(federation: str, member: Member, status: str) -> dict[str, Any] | None:
    signing = _first(member.signing_keys)
    if signing is None:
        return None
    enc = _first(member.encryption_keys)
    return {
        "action": "admit",
        "federation": federation,
        "country": member.country,
        "status": status,
        "signing_key_id": signing.key_id,
        "signing_key_sha256": pem_sha256(signing.public_pem),
        "encryption_key_id": enc.key_id if enc else None,
        "encryption_key_sha256": pem_sha256(enc.public_pem) if enc else None,
    }


def status_change(federation: str, country: str, root: str, old: str, new: str) -> dict[str, Any]:
    return {
        "action": "status",
        "federation": federation,
        "country": country,
        "root_key_id": root,
        "from": old,
        "to": new,
    }


def replace_root_change(
    federation: str, country: str, old_root: str, entry: KeyEntry
) -> dict[str, Any]:
    return {
        "action": "replace-root",
        "federation": federation,
        "country": country,
        "replaces": old_root,
        "signing_key_id": entry.key_id,
        "signing_key_sha256": pem_sha256(entry.public_pem),
    }


def describe(change: dict[str, Any]) -> str:
    """One line an operator reads before approving."""
    action = change.get("action")
    if action == "admit":
        return (
            f"admit {change['country']} as {change['status']} with signing key "
            f"{change['signing_key_id']} and encryption key {change['encryption_key_id']}"
        )
    if action == "status":
        return f"change {change['country']}'s status from {change['from']} to {change['to']}"
    if action == "replace-root":
        return (
            f"replace {change['country']}'s root key {change['replaces']} "
            f"by {change['signing_key_id']}"
        )
    return f"unknown change {action!r}"
