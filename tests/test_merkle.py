"""The RFC 9162 Merkle tree batch seals are built on: known answers, every
proof of every small tree, and proofs that must not verify.

The reference functions here follow the RFC's recursive definitions literally
(a proof per leaf, quadratic), independently of the one-pass code in
``node.crypto.merkle``, which must agree with them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import merkle

# The leaves and answers of the Certificate Transparency reference tests
# (RFC 6962's tree, unchanged in RFC 9162).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _ref_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]), RFC 9162 section 2.1.1, as written."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _ref_root(leaves[:k]) + _ref_root(leaves[k:])).digest()


def _ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 section 2.1.3.1, as written."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*_ref_path(m, leaves[:k]), _ref_root(leaves[k:])]
    return [*_ref_path(m - k, leaves[k:]), _ref_root(leaves[:k])]


def _leaves(n: int) -> list[bytes]:
    return [f"event-{i}".encode() for i in range(n)]


def test_known_roots_and_proofs_from_the_reference_tests() -> None:
    assert merkle.root([]).hex() == hashlib.sha256(b"").hexdigest()
    for n, expected in enumerate(CT_ROOTS, start=1):
        assert merkle.root(CT_LEAVES[:n]).hex() == expected
    top, paths = merkle.inclusion_proofs(CT_LEAVES)
    assert top.hex() == CT_ROOTS[-1]
    assert [p.hex() for p in paths[0]] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [p.hex() for p in paths[5]] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]


@pytest.mark.parametrize("n", range(1, 71))
def test_every_proof_of_every_size_verifies_and_matches_the_rfc(n: int) -> None:
    leaves = _leaves(n)
    top, paths = merkle.inclusion_proofs(leaves)
    assert top == merkle.root(leaves) == _ref_root(leaves)
    assert len(paths) == n
    for i, path in enumerate(paths):
        assert list(path) == _ref_path(i, leaves)
        assert merkle.root_from_proof(leaves[i], i, n, path) == top


def test_an_empty_batch_has_no_proofs() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proofs([])


def test_proofs_of_a_large_batch_are_logarithmic() -> None:
    leaves = _leaves(3000)
    top, paths = merkle.inclusion_proofs(leaves)
    assert max(len(p) for p in paths) == 12  # ceil(log2(3000))
    assert merkle.root_from_proof(leaves[2999], 2999, 3000, paths[2999]) == top


# -- proofs that must not verify --------------------------------------------------

_batches = st.lists(st.binary(max_size=40), min_size=1, max_size=70, unique=True)


@st.composite
def _batch_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(_batches)
    return leaves, draw(st.integers(0, len(leaves) - 1))


def _flip(data: bytes, position: int, bit: int) -> bytes:
    at = position % len(data)
    return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :]


@settings(max_examples=200, deadline=None)
@given(_batch_and_index(), st.integers(0, 10**6), st.integers(0, 7))
def test_a_flipped_bit_in_the_data_changes_the_root(
    case: tuple[list[bytes], int], position: int, bit: int
) -> None:
    leaves, i = case
    top, paths = merkle.inclusion_proofs(leaves)
    altered = _flip(leaves[i], position, bit) if leaves[i] else b"\x00"
    assert merkle.root_from_proof(altered, i, len(leaves), paths[i]) != top


@settings(max_examples=200, deadline=None)
@given(_batch_and_index(), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 7))
def test_a_flipped_bit_in_the_path_changes_the_root(
    case: tuple[list[bytes], int], element: int, position: int, bit: int
) -> None:
    leaves, i = case
    top, paths = merkle.inclusion_proofs(leaves)
    path = list(paths[i])
    if not path:  # a one-leaf tree has no path to tamper with
        return
    at = element % len(path)
    path[at] = _flip(path[at], position, bit)
    assert merkle.root_from_proof(leaves[i], i, len(leaves), path) != top


@settings(max_examples=200, deadline=None)
@given(_batch_and_index(), st.integers(0, 200))
def test_a_proof_does_not_hold_at_another_index(case: tuple[list[bytes], int], other: int) -> None:
    leaves, i = case
    n = len(leaves)
    top, paths = merkle.inclusion_proofs(leaves)
    if other == i:
        return
    assert merkle.root_from_proof(leaves[i], other, n, paths[i]) != top
    # nor does another leaf's data hold with this leaf's proof
    j = other % n
    if j != i:
        assert merkle.root_from_proof(leaves[j], i, n, paths[i]) != top


@settings(max_examples=200, deadline=None)
@given(_batch_and_index(), st.integers(1, 200))
def test_another_tree_size_either_refuses_the_proof_or_needs_the_size_bound_elsewhere(
    case: tuple[list[bytes], int], size: int
) -> None:
    """A proof's length is fixed by (index, size), so most wrong sizes are
    refused outright. Along the tree's left edge a smaller or larger tree can
    share a path (leaf 0 of 3 and of 4 leaves climb the same way), which is why
    a seal signs the tree size with the root: here we check only that a wrong
    size never yields a root for a path of the wrong length."""
    leaves, i = case
    n = len(leaves)
    top, paths = merkle.inclusion_proofs(leaves)
    if size == n:
        return
    got = merkle.root_from_proof(leaves[i], i, size, paths[i])
    expected_len = len(_ref_path(i, _leaves(size))) if i < size else None
    if expected_len != len(paths[i]):
        assert got is None
    else:
        assert got is None or got == top


def test_malformed_proofs_yield_no_root() -> None:
    leaves = _leaves(5)
    top, paths = merkle.inclusion_proofs(leaves)
    assert merkle.root_from_proof(leaves[4], 4, 5, paths[4]) == top
    assert merkle.root_from_proof(leaves[4], 5, 5, paths[4]) is None  # index == size
    assert merkle.root_from_proof(leaves[4], -1, 5, paths[4]) is None
    assert merkle.root_from_proof(leaves[0], 0, 0, ()) is None
    assert merkle.root_from_proof(leaves[1], 1, 5, paths[1][:-1]) is None  # too short
    assert merkle.root_from_proof(leaves[1], 1, 5, (*paths[1], top)) is None  # too long
    assert merkle.root_from_proof(leaves[1], 1, 5, (paths[1][0][:31], *paths[1][1:])) is None
    assert merkle.root_from_proof(leaves[0], 0, 1, ()) == merkle.leaf_hash(leaves[0])
    assert merkle.root_from_proof(leaves[0], 0, 1, (top,)) is None


def test_an_interior_node_is_not_a_leaf() -> None:
    """Second preimage: the two halves of a 2-leaf tree, presented as one leaf
    of a 1-leaf tree, do not give the 2-leaf root."""
    leaves = _leaves(2)
    top = merkle.root(leaves)
    inner = merkle.leaf_hash(leaves[0]) + merkle.leaf_hash(leaves[1])
    assert merkle.root([inner]) != top
    assert merkle.root_from_proof(inner, 0, 1, ()) != top


def test_all_proofs_cost_one_hash_per_interior_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass construction hashes each of the n - 1 interior nodes once,
    however many proofs it hands out (a proof per leaf would rehash the tree)."""
    calls = 0
    real = merkle.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(merkle, "node_hash", counting)
    merkle.inclusion_proofs(_leaves(3000))
    assert calls == 2999
