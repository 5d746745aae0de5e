"""Batch seals: one Ed25519 signature covering a whole batch of events.

Signing each event costs a signature on the producer and a verification on
every reader, and verification dominates a reader's time. A seal signs once
per batch: the producer builds a Merkle tree (``node.crypto.merkle``) over the
envelope bytes of the batch and signs a statement of its root; every event
message then carries that signature and its own inclusion proof. A reader
recomputes the root from the envelope and the proof and checks the signature
over the statement, so each message still verifies on its own, with no state
carried between messages, and every applied event is still covered by a
signature. What a reader saves is the repeated work: the events of one batch
share a root and a signature, so ``SealVerifier`` checks that pair once and
remembers it.

The statement is domain-separated (it starts with ``corredor.batch-seal.v1``)
so that a seal signature can never be taken for a signature over envelope
bytes (which start with the Avro single-object marker C3 01), nor the reverse,
and it names the key id, so a seal is bound to the key that made it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.crypto import merkle
from node.crypto.signing import SigningKey, verify
from node.errors import SignatureInvalid

STATEMENT_PREFIX = b"corredor.batch-seal.v1\x00"
#: Distinct verified seals a SealVerifier remembers. A batch's events usually
#: arrive together, so a few thousand covers many producers' interleaved batches.
DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class SealProof:
    """Where one event sits in a sealed batch: the batch size, its position and
    the sibling hashes from its leaf up to the root (RFC 9162 inclusion path)."""

    tree_size: int
    leaf_index: int
    path: tuple[bytes, ...]


def seal_statement(key_id: str, tree_size: int, root: bytes) -> bytes:
    """The exact bytes a seal's signature covers.

    prefix, key id, NUL, tree size (8 bytes big-endian), root (32 bytes). The
    tail has a fixed length, so the encoding is unambiguous; the tree size is
    included so a root cannot be re-presented as a tree of another size."""
    if len(root) != merkle.HASH_LEN:
        raise ValueError(f"a seal root is {merkle.HASH_LEN} bytes, not {len(root)}")
    if not 0 < tree_size < 2**63:
        raise ValueError(f"tree size {tree_size} out of range")
    return STATEMENT_PREFIX + key_id.encode("utf-8") + b"\x00" + tree_size.to_bytes(8, "big") + root


def seal_batch(key: SigningKey, envelopes: Sequence[bytes]) -> tuple[bytes, list[SealProof]]:
    """Sign a batch of envelope bytes once; returns the signature and each
    envelope's proof, in the order given.

    The envelopes must name ``key``'s key id (readers build the statement from
    the envelope's key id); a batch is not empty, since there is nothing to
    vouch for."""
    if not envelopes:
        raise ValueError("cannot seal an empty batch")
    top, paths = merkle.inclusion_proofs(envelopes)
    size = len(envelopes)
    signature = key.sign(seal_statement(key.key_id, size, top))
    return signature, [SealProof(size, i, path) for i, path in enumerate(paths)]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SealVerifier:
    """Checks sealed events, verifying each distinct seal's signature once.

    The cache key is every input of the Ed25519 verification (public key, and
    the key id, tree size and root that make the statement, and the signature),
    so a hit means the same verification already succeeded: it saves work
    without trusting anything new. Only successes are remembered, in a bounded
    LRU, so forged seals cannot evict anything by failing and cost a full
    verification every time. Trust checks on the key (revoked, expired,
    producer) are the caller's and run for every message, cached seal or not.
    Not thread-safe: one per consuming loop."""

    def __init__(self, capacity: int = DEFAULT_CACHE_SIZE) -> None:
        if capacity < 1:
            raise ValueError("a seal cache holds at least one entry")
        self.capacity = capacity
        self._verified: OrderedDict[tuple[bytes, str, int, bytes, bytes], None] = OrderedDict()

    @property
    def cached(self) -> int:
        """Seals currently remembered as verified. (Not ``__len__``: an empty
        verifier must not be falsy, or ``seals or SealVerifier()`` would
        silently never share one.)"""
        return len(self._verified)

    def verify(
        self,
        public: Ed25519PublicKey,
        key_id: str,
        envelope: bytes,
        signature: bytes,
        proof: SealProof,
    ) -> None:
        """Raise SignatureInvalid unless ``envelope`` is leaf ``proof.leaf_index``
        of a batch whose root ``public`` signed as ``key_id``."""
        top = merkle.root_from_proof(envelope, proof.leaf_index, proof.tree_size, proof.path)
        if top is None:
            raise SignatureInvalid(
                f"malformed seal proof (leaf {proof.leaf_index} of {proof.tree_size}, "
                f"{len(proof.path)} hashes)"
            )
        entry = (_raw(public), key_id, proof.tree_size, top, signature)
        if entry in self._verified:
            self._verified.move_to_end(entry)
            return
        try:
            statement = seal_statement(key_id, proof.tree_size, top)
        except ValueError as exc:
            raise SignatureInvalid(f"malformed seal: {exc}") from exc
        verify(public, signature, statement)
        self._verified[entry] = None
        if len(self._verified) > self.capacity:
            self._verified.popitem(last=False)
