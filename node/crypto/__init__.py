"""Keys, signatures (one per event, or one per batch as a seal), encryption and
linkage tokens."""

from node.crypto.batch_seal import SealProof, SealVerifier, seal_batch, seal_statement
from node.crypto.signing import (
    SigningKey,
    key_id_for,
    load_public_pem,
    public_pem,
    verify,
)

__all__ = [
    "SealProof",
    "SealVerifier",
    "SigningKey",
    "batch_seal",
    "key_id_for",
    "keys",
    "linkage",
    "load_public_pem",
    "merkle",
    "public_pem",
    "seal_batch",
    "seal_statement",
    "sealing",
    "signing",
    "verify",
]
