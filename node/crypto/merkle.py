"""Merkle trees as RFC 9162 (Certificate Transparency 2.0, section 2.1) defines them.

A batch seal signs one root instead of every event, and each event carries the
path that links it to that root, so a reader checks one event on its own.
The tree is the RFC's, not an ad hoc one, because its details are what make
that safe:

- leaves and interior nodes are hashed with different prefixes (0x00, 0x01),
  so an interior node can never be passed off as a leaf (second preimages);
- a tree of n leaves splits at the largest power of two below n, so every
  size has exactly one shape and a proof's length follows from its index and
  the tree size: a verifier refuses a path that is too long or too short
  instead of trusting whatever it was given.

Hashes are SHA-256 and 32 bytes. Nothing here signs; ``node.crypto.batch_seal``
does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_LEN = 32
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1): the size of the
    left subtree, which is always complete."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 1:
        return hashes[lo]
    k = _split(n)
    return node_hash(_subtree_root(hashes, lo, lo + k), _subtree_root(hashes, lo + k, hi))


def root(leaves_data: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves_data`` (RFC 9162 section 2.1.1).

    The empty tree's hash is SHA-256 of nothing, as the RFC says, although a
    seal never covers an empty batch."""
    if not leaves_data:
        return hashlib.sha256(b"").digest()
    return _subtree_root([leaf_hash(d) for d in leaves_data], 0, len(leaves_data))


def inclusion_proofs(leaves_data: Sequence[bytes]) -> tuple[bytes, list[tuple[bytes, ...]]]:
    """The root and the inclusion path of every leaf (RFC 9162 section 2.1.3.1).

    Computed in one pass over the tree rather than once per leaf: each subtree
    is hashed once and its hash appended to the paths of the leaves on the
    other side, so the work is the size of all the paths, O(n log n), where a
    proof per leaf would rehash the tree n times. Each path runs from the
    leaf's sibling up to the root's child, the order the verifier consumes."""
    n = len(leaves_data)
    if n == 0:
        raise ValueError("no inclusion proofs in an empty tree")
    hashes = [leaf_hash(d) for d in leaves_data]
    paths: list[list[bytes]] = [[] for _ in range(n)]

    def build(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        mid = lo + _split(hi - lo)
        left = build(lo, mid)
        right = build(mid, hi)
        # Recursion finishes the lower levels first, so appending keeps each
        # path in leaf-to-root order.
        for i in range(lo, mid):
            paths[i].append(right)
        for i in range(mid, hi):
            paths[i].append(left)
        return node_hash(left, right)

    top = build(0, n)
    return top, [tuple(p) for p in paths]


def root_from_proof(
    leaf_data: bytes, index: int, tree_size: int, path: Sequence[bytes]
) -> bytes | None:
    """The root that ``path`` proves ``leaf_data`` to be leaf ``index`` of, in a
    tree of ``tree_size`` leaves; None if the proof is malformed.

    This is the verification algorithm of RFC 9162 section 2.1.3.2, returning
    the computed root for the caller to compare (or to sign-check) rather than
    taking an expected one. Malformed means: an index outside the tree, a path
    element that is not a SHA-256 hash, or a path longer or shorter than the
    tree's shape allows for that index; such input never yields a root."""
    if tree_size < 1 or not 0 <= index < tree_size:
        return None
    fn = index
    sn = tree_size - 1
    r = leaf_hash(leaf_data)
    for p in path:
        if sn == 0 or len(p) != HASH_LEN:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A right edge with no sibling at this level: climb until the
            # node is a right child again (or the left edge is reached).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r
