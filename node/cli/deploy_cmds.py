"""The set-up steps of a deployed federation (``deploy init-*``). The commands for
running a node in production (doctor, backup, restore, serve) are in ``operate_cmds``."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import console, handle_errors
from node.config import KafkaSettings
from node.errors import ConfigError
from node.operator import deploy
from node.topics import EVENTS_TOPIC

# -- deploy ------------------------------------------------------------------------


@click.group("deploy")
def deploy_group() -> None:
    """Set-up steps of a deployed federation, each safe to run again (docker-compose.yml
    runs them; deploy/README.md explains them).

    \b
    Example:
      corredor deploy init-pki /pki --san kafka
      corredor deploy init-kafka --bootstrap kafka:9094 --cafile /pki/ca.pem \\
        --admin-password-file /run/secrets/kafka_admin \\
        --user secretariat=/run/secrets/kafka_secretariat --user PAN=/run/secrets/kafka_pan
    """


@deploy_group.command("init-pki")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--san", "sans", multiple=True, required=True, help="Broker host name or IP (repeat)."
)
@click.option("--owner", metavar="UID:GID", help="Give the broker's keystore to this user.")
@handle_errors
def init_pki(directory: Path, sans: tuple[str, ...], owner: str | None) -> None:
    """A CA and the broker's certificate in DIRECTORY, unless already there.

    \b
    Example:
      corredor deploy init-pki /pki --san kafka --san localhost --owner 1000:1000
    """
    ids = None
    if owner:
        uid, _, gid = owner.partition(":")
        if not uid.isdigit() or not gid.isdigit():
            raise ConfigError(f"--owner is UID:GID, not {owner!r}")
        ids = (int(uid), int(gid))
    created = deploy.init_pki(directory, sans, ids)
    console.print(
        f"{'created' if created else 'kept'} the CA and broker certificate in {directory}"
    )


def _user_files(values: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=PASSWORD_FILE, not {v!r}", param_hint="--user")
        out[name] = Path(path)
    return out


@deploy_group.command("init-kafka")
@click.option("--bootstrap", required=True, metavar="HOST:PORT", help="The admin's listener.")
@click.option("--admin-user", default="admin", show_default=True)
@click.option(
    "--admin-password-file", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--admin-mechanism",
    type=click.Choice(("PLAIN", "SCRAM-SHA-512")),
    default="PLAIN",
    show_default=True,
)
@click.option(
    "--protocol",
    type=click.Choice(("SASL_SSL", "SASL_PLAINTEXT")),
    default="SASL_SSL",
    show_default=True,
)
@click.option("--cafile", type=click.Path(dir_okay=False, path_type=Path), help="CA (PEM).")
@click.option(
    "--user",
    "users",
    multiple=True,
    required=True,
    metavar="NAME=PASSWORD_FILE",
    help="A SCRAM user and the file holding its password (repeat): secretariat and each ISO3.",
)
@click.option("--topic", default=EVENTS_TOPIC, show_default=True)
@click.option("--partitions", type=click.IntRange(1), default=3, show_default=True)
@click.option("--replication", type=click.IntRange(1), default=1, show_default=True)
@click.option("--timeout", type=float, default=180.0, show_default=True, metavar="SECONDS")
@handle_errors
def init_kafka(
    bootstrap: str,
    admin_user: str,
    admin_password_file: Path,
    admin_mechanism: str,
    protocol: str,
    cafile: Path | None,
    users: tuple[str, ...],
    topic: str,
    partitions: int,
    replication: int,
    timeout: float,
) -> None:
    """As the cluster admin: SCRAM users, the federation's topics and ACLs.

    \b
    Example:
      corredor deploy init-kafka --bootstrap kafka:9094 --cafile /pki/ca.pem \\
        --admin-password-file /run/secrets/kafka_admin \\
        --user secretariat=/run/secrets/kafka_secretariat --user PAN=/run/secrets/kafka_pan
    """
    result = deploy.init_kafka(
        bootstrap,
        admin_user=admin_user,
        admin_password_file=admin_password_file,
        users=_user_files(users),
        protocol=protocol,
        admin_mechanism=admin_mechanism,
        cafile=cafile,
        shared_topic=topic,
        partitions=partitions,
        replication=replication,
        timeout_s=timeout,
    )
    console.print(
        f"users {', '.join(result.users)}; {result.acls} ACLs; topics created: "
        f"{', '.join(result.topics_created) or 'none (all existed)'}"
    )


@deploy_group.command("init-home")
@click.option("--country", metavar="ISO3", help="A member's home (omit for the Secretariat).")
@click.option(
    "--exchange",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory where public keys are traded.",
)
@click.option(
    "--enrol",
    multiple=True,
    metavar="ISO3",
    help="Secretariat: members to add to the manifest once their keys arrive.",
)
@click.option("--bootstrap", required=True, metavar="HOST:PORT")
@click.option("--topic", default=EVENTS_TOPIC, show_default=True)
@click.option(
    "--security-protocol",
    default="SASL_SSL",
    show_default=True,
    type=click.Choice(("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
)
@click.option("--username", help="SASL user (ISO3 or secretariat).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cafile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-sync", is_flag=True, help="Member: do not wait for the manifest.")
@click.option("--timeout", type=float, default=300.0, show_default=True, metavar="SECONDS")
@click.pass_context
@handle_errors
def init_home(
    ctx: click.Context,
    country: str | None,
    exchange: Path,
    enrol: tuple[str, ...],
    bootstrap: str,
    topic: str,
    security_protocol: str,
    username: str | None,
    password_file: Path | None,
    cafile: Path | None,
    no_sync: bool,
    timeout: float,
) -> None:
    """Create or reconnect --home and trade public keys through --exchange: the
    Secretariat publishes its key and enrols members; a member pins the
    Secretariat's key, offers its own and waits until the manifest lists it.

    \b
    Example:
      corredor --home /var/lib/corredor/home deploy init-home --country PAN \\
        --exchange /exchange --bootstrap kafka:9092 --username PAN \\
        --password-file /run/secrets/kafka_pan --cafile /pki/ca.pem
    """
    path = ctx.find_root().obj.get("home") if ctx.find_root().obj else None
    if path is None:
        raise ConfigError("give the home: --home DIR or CORREDOR_HOME")
    try:
        kafka = KafkaSettings(
            bootstrap=bootstrap,
            topic=topic,
            security_protocol=security_protocol,
            username=username,
            password_file=str(password_file) if password_file else None,
            ssl_cafile=str(cafile) if cafile else None,
        )
    except ValueError as exc:
        raise ConfigError(f"kafka settings: {exc}") from exc
    setup = deploy.init_home(
        path,
        kafka=kafka,
        exchange=exchange,
        country=country,
        enrol=enrol,
        sync=not no_sync,
        timeout_s=timeout,
    )
    what = "created" if setup.created else "reconnected"
    console.print(
        f"{what} {setup.home.path}"
        + (f"; enrolled {', '.join(setup.enrolled)}" if setup.enrolled else "")
    )


COMMANDS: tuple[click.Command, ...] = (deploy_group,)
