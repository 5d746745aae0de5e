"""`corredor kafka up|status|down` and `corredor demo`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from node import config
from node.cli.common import console, err_console, handle_errors
from node.devkafka.manage import local_down, local_status, local_up


def _echo(message: str) -> None:
    err_console.print(f"[dim]{message}[/]")


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
    default=90.0,
    show_default=True,
    help="Seconds to wait until a client can fetch metadata.",
)
@handle_errors
def kafka_up(nodes: str, timeout: float) -> None:
    """Fetch the jars once, format KRaft storage, start the broker(s), print the
    bootstrap address. Reuses the running local cluster if there is one.

    \b
    Example:
      export CORREDOR_KAFKA_BOOTSTRAP=$(corredor kafka up)
    """
    info, started = local_up(
        config.kafka_dir(), config.kafka_pom(), nodes=int(nodes), timeout=timeout, echo=_echo
    )
    _echo("started" if started else "already running")
    click.echo(info.bootstrap)


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
    table = Table(title=f"Local Kafka {info.bootstrap}", title_justify="left")
    for col in ("node", "pid", "port", "state"):
        table.add_column(col)
    for s in statuses:
        table.add_row(str(s.node_id), str(s.pid), str(s.port), "up" if s.alive else "[red]DOWN[/]")
    console.print(table)
    if not all(s.alive for s in statuses):
        raise SystemExit(1)


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
    from node.report.flows import flow_rows, render_flow_tables
    from node.store.picture import PictureStore

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
    with PictureStore(result.aggregator.store_path) as store:
        render_flow_tables(console, flow_rows(store), last=last)
    console.print(
        f"Homes are in {directory}/. Try: corredor --home {directory}/secretariat report "
        "--format json"
    )


COMMANDS: tuple[click.Command, ...] = (kafka, demo)
