"""Audit-log heads anchored outside the writer.

A home's audit log (``node.store.audit``) is a hash chain: whoever can write
both the database and its head file can rebuild a consistent log after any
change. So each node and the aggregator publish a signed *head statement* on
the control topic (key ``audit-head/<party>``): their audit head (seq, hash),
the manifest head they hold, and the latest heads of the other parties they
have seen (``witnessed``). Every home keeps the others' latest heads in
``trust/peer-heads.json``.

``audit verify --against-federation`` then checks this home's log against what
the *other* parties witnessed of it: each witnessed (seq, hash) must still be
in the log. Rewriting the store and head file together, and even
republishing a new head statement, does not change the copies other nodes
signed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from node.config import Home, key_passphrase
from node.crypto.signing import SigningKey, load_public_pem, verify
from node.errors import ConfigError, SignatureInvalid
from node.federation import manifest as fed
from node.federation import statements, trust
from node.federation import trust_ledger as ledger
from node.store import audit_check
from node.transport.base import Message

HEAD_PREFIX = b"audit-head/"


class Head(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: int
    entry_hash: str


class HeadStatement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    party: str  # ISO3, or TS for the aggregator
    key_id: str
    at: str
    audit: Head | None
    manifest_serial: int | None
    manifest_sha256: str | None
    witnessed: dict[str, Head]
    signature: str = ""

    def body(self) -> bytes:
        return statements.canonical_bytes(self.model_dump(mode="json", exclude={"signature"}))


def party_of(home: Home) -> str:
    return trust.SECRETARIAT if home.is_aggregator else home.country


def _signer(home: Home) -> SigningKey:
    if home.is_aggregator:
        return SigningKey.load(trust.SECRETARIAT, home.secretariat_key_path, key_passphrase())
    return trust.load_signing_key(home)


def own_statement(home: Home) -> HeadStatement:
    """This home's signed head statement. A broken log is not anchored."""
    report = audit_check.verify(home.store_path)
    if not report.ok:
        raise ConfigError(
            f"the audit log is broken at entry {report.first_bad_seq}: not publishing its head"
        )
    head = (
        Head(seq=report.head_seq, entry_hash=report.head_hash)
        if report.head_seq and report.head_hash
        else None
    )
    serial = sha = None
    if home.manifest_path.exists():
        signed = fed.read_signed(home.manifest_path)
        serial, sha = trust.current_manifest(home).serial, fed.payload_sha256(signed)
    signer = _signer(home)
    statement = HeadStatement(
        party=party_of(home),
        key_id=signer.key_id,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        audit=head,
        manifest_serial=serial,
        manifest_sha256=sha,
        witnessed={p: s.audit for p, s in load_peer_heads(home).items() if s.audit},
    )
    signature = base64.b64encode(signer.sign(statement.body())).decode("ascii")
    return statement.model_copy(update={"signature": signature})


def _verify(home: Home, st: HeadStatement) -> bool:
    """Signed by the party's counted key (or the pinned Secretariat key)."""
    if st.party == trust.SECRETARIAT:
        key_id, public = trust.pinned_secretariat(home)
        if st.key_id != key_id:
            return False
    else:
        if not home.manifest_path.exists():
            return False
        manifest = trust.current_manifest(home)
        found = manifest.signing_key(st.key_id)
        view = trust.trust_view(home, manifest)
        if found is None or found[0].country != st.party:
            return False
        if not view.signing_key_ok(st.party, st.key_id) or found[1].revoked_at is not None:
            return False
        public = load_public_pem(found[1].public_pem)
    try:
        verify(public, base64.b64decode(st.signature, validate=True), st.body())
    except (SignatureInvalid, ValueError):
        return False
    return True


def parse(records: Iterable[Message]) -> list[HeadStatement]:
    out = []
    for msg in records:
        if msg.key is None or not msg.key.startswith(HEAD_PREFIX) or not msg.value:
            continue
        try:
            out.append(HeadStatement.model_validate_json(msg.value))
        except ValidationError:
            continue
    return out


def load_peer_heads(home: Home) -> dict[str, HeadStatement]:
    path = ledger.peer_heads_path(home)
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {p: HeadStatement.model_validate(v) for p, v in data.items()}


def collect(home: Home, statements: Iterable[HeadStatement]) -> int:
    """Keep the other parties' newest verified heads; a head that goes back or
    forks (same seq, other hash) is an alarm, and the kept copy stays."""
    kept = load_peer_heads(home)
    me = party_of(home)
    new = 0
    heads = ledger.load_heads(home)
    for st in statements:
        if st.party == me or not _verify(home, st):
            continue
        mine = heads.get(st.manifest_serial) if st.manifest_serial is not None else None
        if mine is not None and st.manifest_sha256 and st.manifest_sha256 != mine:
            # A split view: the Secretariat showed another manifest to that party.
            ledger.note(
                home,
                "equivocation",
                f"{st.party} holds manifest serial {st.manifest_serial} as "
                f"{st.manifest_sha256[:16]}, this home as {mine[:16]}",
            )
        if st.audit is None:
            continue
        old = kept.get(st.party)
        if old is not None and old.audit is not None:
            if st.audit.seq < old.audit.seq or (
                st.audit.seq == old.audit.seq and st.audit.entry_hash != old.audit.entry_hash
            ):
                if st.model_dump() != old.model_dump():
                    ledger.note(
                        home,
                        "audit-head",
                        f"{st.party} published audit head {st.audit.seq}:"
                        f"{st.audit.entry_hash[:16]} after {old.audit.seq}:"
                        f"{old.audit.entry_hash[:16]}; kept the earlier",
                    )
                continue
            if st.audit == old.audit:
                continue
        kept[st.party] = st
        new += 1
    fed.write_json(
        ledger.peer_heads_path(home),
        json.dumps({p: s.model_dump(mode="json") for p, s in sorted(kept.items())}, indent=2),
    )
    return new


def witnessed_anchors(home: Home, statements: Iterable[HeadStatement]) -> list[tuple[str, str]]:
    """(witness, "seq:hash") for each verified statement by another party that
    witnessed this home's head."""
    me = party_of(home)
    out = []
    for st in statements:
        if st.party == me or me not in st.witnessed or not _verify(home, st):
            continue
        head = st.witnessed[me]
        out.append((st.party, f"{head.seq}:{head.entry_hash}"))
    return out
