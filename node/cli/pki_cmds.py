"""`corredor pki init|issue`: a small development CA writing PEM files for Kafka TLS."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import console, handle_errors
from node.devkafka.pki import DEFAULT_SANS, init_ca, issue


@click.group("pki")
def pki() -> None:
    """A development certificate authority for the broker's TLS listener (PEM files).

    For development and tests: production brokers get certificates from a
    real CA. `corredor kafka up --secure` runs these steps itself.

    \b
    Example:
      corredor pki init ./tls
      corredor pki issue ./tls broker --san 127.0.0.1 --san localhost
    """


@pki.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def pki_init(directory: Path) -> None:
    """Create a CA: DIR/ca.key (PKCS#8, mode 0600) and DIR/ca.pem, the truststore
    brokers and clients verify against. Refuses to replace an existing CA.

    \b
    Example:
      corredor pki init ./tls
    """
    cert = init_ca(directory)
    console.print(f"CA certificate (truststore): {cert}")


@pki.command("issue")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
@click.option(
    "--san",
    "sans",
    multiple=True,
    metavar="IP|DNS",
    help="Subject alternative name (repeat). Default: 127.0.0.1 and localhost.",
)
@handle_errors
def pki_issue(directory: Path, name: str, sans: tuple[str, ...]) -> None:
    """Issue a certificate signed by the CA in DIR: DIR/NAME.pem holds the PKCS#8
    key and the chain (mode 0600; Kafka's ssl.keystore.type=PEM), DIR/NAME.crt
    the certificate alone.

    \b
    Example:
      corredor pki issue ./tls broker --san 127.0.0.1 --san localhost
    """
    issued = issue(directory, name, sans or DEFAULT_SANS)
    console.print(f"keystore (key + chain): {issued.keystore}")
    console.print(f"certificate: {issued.certificate}  SANs: {', '.join(issued.sans)}")
    console.print(f"truststore: {issued.ca}")


COMMANDS: tuple[click.Command, ...] = (pki,)
