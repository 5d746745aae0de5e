"""A small development certificate authority producing PEM files for Kafka TLS.

Kafka reads PEM directly (``ssl.keystore.type=PEM``, ``ssl.truststore.type=PEM``),
so no Java keystore or keystore password is involved:

    <dir>/ca.key          the CA's private key (PKCS#8, mode 0600)
    <dir>/ca.pem          the CA certificate: the truststore of brokers and clients
    <dir>/<name>.pem      key (unencrypted PKCS#8) followed by the chain (leaf, CA),
                          mode 0600: what ``ssl.keystore.location`` points at
    <dir>/<name>.crt      the leaf certificate alone, for inspection

For development and tests only: a production federation gets its broker
certificates from a real CA, and this module never touches a private key it did
not write itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.errors import KafkaSetupError

CA_KEY = "ca.key"
CA_CERT = "ca.pem"
DEFAULT_SANS = ("127.0.0.1", "localhost")
_CA_DAYS = 3650
_LEAF_DAYS = 825


@dataclass(frozen=True)
class IssuedCertificate:
    """Paths of one issued certificate."""

    name: str
    keystore: Path  # key + chain, one PEM file
    certificate: Path
    ca: Path
    sans: tuple[str, ...]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read, created with that mode
    (never briefly world-readable), replacing any earlier file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate, accepted by the JDK's TLS and by Python's ssl.
    return ec.generate_private_key(ec.SECP256R1())


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init_ca(directory: Path, *, name: str = "Corredor development CA") -> Path:
    """Create a CA key and self-signed certificate in ``directory``; returns ca.pem.

    Refuses to overwrite an existing CA: every certificate it issued would stop
    being trusted.
    """
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if key_path.exists() or cert_path.exists():
        raise KafkaSetupError(f"{directory} already holds a CA ({CA_KEY}/{CA_CERT})")
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _pkcs8(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    except FileNotFoundError as exc:
        raise KafkaSetupError(f"no CA in {directory}; run `corredor pki init {directory}`") from exc
    except (ValueError, TypeError) as exc:
        raise KafkaSetupError(f"the CA in {directory} cannot be read: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KafkaSetupError(f"{directory / CA_KEY} is not a key this CA writes")
    return key, cert


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def issue(directory: Path, name: str, sans: Sequence[str] = DEFAULT_SANS) -> IssuedCertificate:
    """Issue a TLS certificate for ``name`` signed by the CA in ``directory``.

    ``sans`` are IP addresses or DNS names; hostname checks by clients match
    them, so a broker on loopback needs 127.0.0.1 (and localhost).
    """
    if not name or "/" in name or name.startswith("."):
        raise KafkaSetupError(f"not a usable certificate name: {name!r}")
    if not sans:
        raise KafkaSetupError("a certificate needs at least one --san")
    ca_key, ca_cert = _load_ca(directory)
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = cert.public_bytes(serialization.Encoding.PEM)
    chain = leaf + ca_cert.public_bytes(serialization.Encoding.PEM)
    keystore = directory / f"{name}.pem"
    write_private(keystore, _pkcs8(key) + chain)
    certificate = directory / f"{name}.crt"
    certificate.write_bytes(leaf)
    return IssuedCertificate(name, keystore, certificate, directory / CA_CERT, tuple(sans))
