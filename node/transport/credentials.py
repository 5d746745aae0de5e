"""kafka-python security settings, with the password kept out of every log line.

kafka-python logs its whole configuration at DEBUG when a client starts
(``KafkaAdminClient``: "Starting KafkaAdminClient with configuration: {...}"),
password included. :class:`Redacted` is a ``str`` whose ``repr``, ``str`` and
format show a mask; only ``encode`` (what the SCRAM and PLAIN exchanges call)
yields the real value. So a dict of settings holding one is safe to log.
"""

from __future__ import annotations

from typing import Any

#: What a redacted value shows instead of itself.
MASK = "**********"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class Redacted(str):
    """A secret string that never prints itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def reveal(self) -> str:
        """The real value, for the few places that must hand it on."""
        return str.__str__(self)


def security_settings(
    *,
    protocol: str = "PLAINTEXT",
    mechanism: str | None = None,
    username: str | None = None,
    password: str | None = None,
    cafile: str | None = None,
    check_hostname: bool = True,
) -> dict[str, Any]:
    """The kafka-python keyword arguments for one client identity.

    Empty for PLAINTEXT. SASL protocols need ``username`` and ``password``;
    TLS protocols verify the broker against ``cafile`` (or the system store).
    """
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(f"unknown Kafka security protocol {protocol!r}")
    settings: dict[str, Any] = {}
    if protocol == "PLAINTEXT":
        return settings
    settings["security_protocol"] = protocol
    if protocol.startswith("SASL_"):
        mech = mechanism or "SCRAM-SHA-512"
        if mech not in SASL_MECHANISMS:
            raise ValueError(f"unknown SASL mechanism {mech!r}")
        if not username or password is None:
            raise ValueError(f"{protocol} needs a username and a password")
        settings.update(
            sasl_mechanism=mech,
            sasl_plain_username=username,
            sasl_plain_password=Redacted(password),
        )
    if protocol.endswith("SSL"):
        settings["ssl_check_hostname"] = check_hostname
        if cafile:
            settings["ssl_cafile"] = cafile
    return settings


def describe(settings: dict[str, Any]) -> str:
    """One line saying how a client connects, for messages: never the secret."""
    protocol = settings.get("security_protocol", "PLAINTEXT")
    user = settings.get("sasl_plain_username")
    return f"{protocol} as {user}" if user else str(protocol)


def connection_hint(settings: dict[str, Any]) -> str:
    """What to check, appended to a connection error: kafka-python reports
    refused credentials as a bootstrap timeout."""
    if "sasl_plain_username" in settings:
        return " (is the broker up, and are the password and CA right?)"
    return ""
