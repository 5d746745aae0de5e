"""Corredor's error tree. Every error the library raises derives from one root.

    CorredorError
    ├── ConfigError              a home, config file or environment value is wrong
    ├── InputError               raw input is malformed (names file, row, field)
    ├── PolicyError              a policy file is invalid or weaker than the floor
    │   └── EgressRefused        the egress guard refused an event
    ├── CodecError               Avro encoding/decoding, unknown fingerprint
    ├── CryptoError              keys, signatures, encryption
    │   ├── SignatureInvalid     a signature does not verify
    │   └── KeyNotUsable         the manifest revoked or expired this node's own key
    ├── StoreError               SQLite stores
    │   └── StoreLostHistory     a store emptied, replaced or behind its audit head
    ├── TransportError           Kafka client failures (retriable)
    └── KafkaSetupError          the local development broker cannot be set up

Third-party errors are wrapped at the boundary with ``raise X(...) from exc`` so
callers (and the CLI) catch one thing. Whether an error is worth retrying is a
class attribute, so retry loops ask the error rather than keep lists of types.
"""

from __future__ import annotations


class CorredorError(Exception):
    """Root of every error Corredor raises on purpose."""

    retriable: bool = False


class ConfigError(CorredorError):
    """A node home, config file or environment value is missing or wrong."""


class InputError(CorredorError):
    """Raw input is malformed. Carries where: file, line (1-based) and field."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.located())

    def located(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        parts = [where] if where else []
        if self.field:
            parts.append(f"field {self.field!r}")
        parts.append(self.reason)
        return ": ".join(parts)


class PolicyError(CorredorError):
    """A policy file is invalid, or weaker than the regional floor."""


class EgressRefused(PolicyError):
    """The egress guard refused an event. The message never carries the value."""


class CodecError(CorredorError):
    """An event could not be encoded or decoded."""


class CryptoError(CorredorError):
    """Key handling, signing or encryption failed."""


class SignatureInvalid(CryptoError):
    """A signature does not verify against the claimed key."""


class KeyNotUsable(CryptoError):
    """The federation's manifest says this node's own signing key is revoked or expired."""


class StoreError(CorredorError):
    """A local SQLite store could not be read or written."""


class StoreLostHistory(StoreError):
    """The store is not the one this home's records say it had, or lost history."""


class TransportError(CorredorError):
    """The Kafka client failed; usually worth retrying."""

    retriable = True


class KafkaSetupError(CorredorError):
    """The local development Kafka could not be fetched, formatted or started."""
