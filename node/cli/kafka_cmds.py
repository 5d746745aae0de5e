"""`corredor kafka up|connect|status|tool|down` and `corredor demo`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from node import config
from node.cli.common import bootstrap_option, console, err_console, handle_errors, home_of
from node.devkafka.jars import ensure_jars
from node.devkafka.manage import home_settings, local_down, local_status, local_up, running_cluster
from node.devkafka.secure import DEFAULT_SHARED_TOPIC, RCM_COUNTRIES
from node.devkafka.tools import run_tool
from node.errors import ConfigError


def _echo(message: str) -> None:
    # soft_wrap: paths and addresses stay on one line, for copying.
    err_console.print(f"[dim]{message}[/]", soft_wrap=True)


@click.group()
def kafka() -> None:
    """Run a real Apache Kafka 4.4 broker on 127.0.0.1 from Maven Central jars.

    \b
    Example:
      corredor kafka up
      corredor kafka status
      corredor kafka down
    """


@kafka.command("up")
@click.option(
    "--nodes",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="1 broker, or 3 for replication and failover tests.",
)
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait until a client can fetch metadata.",
)
@click.option(
    "--secure",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512 over TLS) with the federation's ACLs; "
    "credentials are generated into files.",
)
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="ISO3",
    help="With --secure: a member country's principal (repeat). Default: the RCM countries.",
)
@click.option(
    "--topic",
    default=DEFAULT_SHARED_TOPIC,
    show_default=True,
    help="With --secure: the shared topic the ACLs protect.",
)
@handle_errors
def kafka_up(
    nodes: str, timeout: float, secure: bool, members: tuple[str, ...], topic: str
) -> None:
    """Fetch the jars once, format KRaft storage, start the broker(s), print the
    bootstrap address. Reuses the running local cluster if there is one.

    With --secure, clients must authenticate: stderr names the CA file and the
    credentials directory (one mode-0600 password file per user); no password
    is ever printed. `corredor --home DIR kafka connect` points a home at it.

    \b
    Example:
      export CORREDOR_KAFKA_BOOTSTRAP=$(corredor kafka up)
      corredor kafka up --secure --member PAN --member GTM
    """
    info, started = local_up(
        config.kafka_dir(),
        config.kafka_pom(),
        nodes=int(nodes),
        timeout=timeout,
        echo=_echo,
        secure=secure,
        members=[m.upper() for m in members] or RCM_COUNTRIES,
        shared_topic=topic,
    )
    _echo("started" if started else "already running")
    if info.security is not None:
        sec = info.security
        _echo(f"SASL_SSL, {sec.mechanism}; TLS CA: {sec.ca_file}")
        _echo(f"credentials (one password file per user, mode 0600): {sec.credentials_dir}")
        _echo(
            f"users: {', '.join(sec.users)}; topics: {sec.shared_topic}, "
            f"{sec.control_topic}, {sec.picture_topic}"
        )
    click.echo(info.bootstrap)


@kafka.command("connect")
@click.option(
    "--user",
    metavar="NAME",
    help="Principal to connect as. Default: the home's country, or secretariat for the aggregator.",
)
@click.pass_context
@handle_errors
def kafka_connect(ctx: click.Context, user: str | None) -> None:
    """Point a home at the running local Kafka: bootstrap, and on a secure
    cluster SASL_SSL with the user's password file and the CA (paths only).

    \b
    Example:
      corredor --home ./pan kafka connect
      corredor --home ./ts kafka connect --user secretariat
    """
    home = home_of(ctx)
    info = running_cluster(config.kafka_dir())
    if info is None:
        raise ConfigError("no local Kafka is running; start it with `corredor kafka up`")
    if user is None and info.security is not None:
        user = info.security.secretariat if home.is_aggregator else home.country
    settings = home_settings(info, user or "")
    home.config.kafka = home.config.kafka.model_validate(
        {**home.config.kafka.model_dump(), **settings}
    )
    home.save()
    who = f" as {user} ({settings['security_protocol']})" if info.security else ""
    console.print(f"{home.path} now connects to {info.bootstrap}{who}")


@kafka.command("status")
@handle_errors
def kafka_status() -> None:
    """Show the brokers `kafka up` started; exit 1 if none runs or one is down.

    \b
    Example:
      corredor kafka status
    """
    found = local_status(config.kafka_dir())
    if found is None:
        err_console.print("No local Kafka was started with `corredor kafka up`.")
        raise SystemExit(1)
    info, statuses = found
    mode = f" (SASL_SSL; credentials in {info.security.credentials_dir})" if info.security else ""
    table = Table(title=f"Local Kafka {info.bootstrap}{mode}", title_justify="left")
    for col in ("node", "pid", "port", "state"):
        table.add_column(col)
    for s in statuses:
        table.add_row(str(s.node_id), str(s.pid), str(s.port), "up" if s.alive else "[red]DOWN[/]")
    console.print(table)
    if not all(s.alive for s in statuses):
        raise SystemExit(1)


@kafka.command(
    "tool",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("name", metavar="NAME")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[ARGS]...")
@bootstrap_option
@click.pass_context
@handle_errors
def kafka_tool(ctx: click.Context, name: str, args: tuple[str, ...], bootstrap: str | None) -> None:
    """Run one of Kafka's own tools with this home's broker and credentials.

    NAME is a tool of Kafka's bin/ (kafka-topics, kafka-acls, kafka-configs,
    kafka-console-consumer, kafka-consumer-groups, kafka-get-offsets, ...; the
    `kafka-` prefix and `.sh` may be left out). ARGS go to the tool as they are;
    --bootstrap-server is the home's unless given, and on a SASL home the
    credentials reach the tool in a private --command-config file, removed when
    it exits. Exit code: the tool's. Options of this command come before NAME.

    \b
    Example:
      corredor --home ./ts kafka tool kafka-topics --list
      corredor --home ./ts kafka tool kafka-topics --describe --topic corredor.events
      corredor --home ./admin kafka tool kafka-acls --list
      corredor --home ./ts kafka tool kafka-console-consumer --topic corredor.events \\
          --from-beginning --max-messages 5 --formatter-property print.key=true
    """
    home = home_of(ctx)
    jars = ensure_jars(config.kafka_pom(), config.kafka_dir(), echo=_echo)
    code = run_tool(
        name,
        args,
        jars=jars,
        bootstrap=bootstrap or home.bootstrap,
        security=home.kafka_security(),
    )
    ctx.exit(code)


@kafka.command("down")
@handle_errors
def kafka_down() -> None:
    """Stop the brokers `kafka up` started and delete their data; nothing else.

    \b
    Example:
      corredor kafka down
    """
    info = local_down(config.kafka_dir())
    if info is None:
        err_console.print("No local Kafka was started with `corredor kafka up`.")
        return
    console.print(f"Stopped local Kafka at {info.bootstrap}")


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-federation"),
    show_default=True,
    help="Where the demo's homes go (recreated on each run).",
)
@click.option(
    "--bootstrap", metavar="HOST:PORT", help="Use this broker instead of starting the local one."
)
@click.option("--seed", type=int, default=2016, show_default=True, help="Synthetic data seed.")
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply the demo's record volumes.",
)
@click.option(
    "--last", type=int, default=4, show_default=True, help="Weeks of the picture to print."
)
@handle_errors
def demo(directory: Path, bootstrap: str | None, seed: int, scale: float, last: int) -> None:
    """Run a demo federation: four member nodes and the Secretariat on a local broker.

    Starts (or reuses) the local Kafka, creates homes for PAN, CRI, GTM and MEX
    and the Secretariat, generates seeded synthetic raw records along the
    corridor, then ingests, publishes, aggregates and prints the picture.

    \b
    Example:
      corredor demo
      corredor demo --dir /tmp/demo --bootstrap 127.0.0.1:9092
    """
    from node.demo.federation import run_demo, summary_table
    from node.report.demo_summary import render_demo_picture

    address = bootstrap or config.bootstrap_override()
    if address is None:
        with console.status("Starting the local Kafka broker…"):
            info, started = local_up(config.kafka_dir(), config.kafka_pom(), echo=_echo)
        address = info.bootstrap
        console.print(
            f"Kafka at {address} ({'started' if started else 'reused'}; "
            "`corredor kafka down` stops it)"
        )
    result = run_demo(directory, address, seed=seed, scale=scale, console=console)
    console.print(summary_table(result))
    assert result.aggregator is not None and result.stats is not None
    stats = result.stats
    console.print(
        f"Aggregator: {stats.applied} events verified and applied, "
        f"{stats.rejected_total} set aside, topic {result.topic}"
    )
    render_demo_picture(console, result.aggregator.store_path, last=last)
    for country, opened in result.inbox.items():
        for producer, n in sorted(opened.items()):
            console.print(
                f"{country} opened {n} restricted intelligence report(s) from {producer} "
                "(sealed to it; the Secretariat relayed them unread)"
            )
    for country, subject, action in result.revisions:
        console.print(
            f"{country} {'corrected' if action == 'correct' else 'withdrew'} {subject}: "
            f"corredor --home {directory}/secretariat history '{subject}'"
        )
    console.print(
        f"Homes are in {directory}/. Try: corredor --home {directory}/secretariat report "
        "--format json"
    )
    if result.report is not None:
        console.print(f"HTML report: {result.report}")


COMMANDS: tuple[click.Command, ...] = (kafka, demo)
