"""Keys, signatures and (later) encryption and linkage tokens."""

from node.crypto.signing import (
    SigningKey,
    key_id_for,
    load_public_pem,
    public_pem,
    verify,
)

__all__ = ["SigningKey", "key_id_for", "load_public_pem", "public_pem", "verify"]
