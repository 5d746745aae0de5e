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
    │   └── RecordTooLarge       a record over the producer's or topic's size limit
                                 (not retriable: it will never fit)
    └── KafkaSetupError          the local development broker cannot be set up

The FileFormatError leaves also derive from the error of the file's kind, so a
caller that catches PolicyError for a policy file still catches a duplicate key
in it, and one that wants the location reads ``file``, ``line`` and ``key``.

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


class RecordTooLarge(TransportError):
    """A record is over the producer's or the topic's message size limit."""

    retriable = False


class KafkaSetupError(CorredorError):
    """The local development Kafka could not be fetched, formatted or started."""


class FileFormatError(CorredorError):
    """A file a person wrote or handed over is unusable as a whole: too large, too
    deeply nested, a duplicate key, or not parseable. Carries where: the file,
    the line (1-based) when known, and the key when one is to blame."""

    def __init__(
        self, reason: str, *, file: str, line: int | None = None, key: str | None = None
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.located())

    def located(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.key:
            parts.append(f"key {self.key!r}")
        parts.append(self.reason)
        return ": ".join(parts)


class ConfigFileError(FileFormatError, ConfigError):
    """A home's config file (corredor.yaml) is unusable as a file."""


class PolicyFileError(FileFormatError, PolicyError):
    """A policy or the regional floor is unusable as a file."""


class SchemaFileError(FileFormatError, CodecError):
    """A schema file or schemas/compatibility.yaml is unusable as a file."""


class KeyFileError(FileFormatError, CryptoError):
    """A key, key bundle or signed manifest file is unusable as a file."""
