"""`corredor publish` and `corredor aggregate`: the exchange over the shared topic, once or
following it (with the metrics endpoint while a loop runs). Registered with the
daily-work commands in ``node_cmds``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.table import Table

from node.aggregator.rebuild import rebuild_picture
from node.aggregator.run import aggregate_follow, aggregate_once
from node.aggregator.stats import ApplyStats
from node.cli.common import (
    bootstrap_option,
    console,
    counting_progress,
    format_option,
    handle_errors,
    home_of,
    metrics_options,
    progress,
)
from node.cli.rebuild_view import rebuild_progress
from node.config import Home
from node.loops import stop_on_signals
from node.member import publish as member_publish
from node.member.follow import PublishCounters, publish_follow
from node.member.staging import privacy_budget
from node.operator.metrics import FollowMetrics, MetricsServer

# -- member node: publish -----------------------------------------------------------


@click.command()
@bootstrap_option
@format_option("table", "json")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep publishing as records arrive; retry while Kafka is down; stop on SIGTERM.",
)
@click.option(
    "--interval",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds between cycles with --follow.",
)
@click.option(
    "--overlap",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Drain from a second process while staging: 'auto' does so from "
    "20,000 rows of work (two cores help); 'off' stages, then drains.",
)
@metrics_options
@click.pass_context
@handle_errors
def publish(
    ctx: click.Context,
    bootstrap: str | None,
    fmt: str,
    follow: bool,
    interval: float,
    overlap: str,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Publish what the policy lets out: signed events to Kafka.

    Cells below the policy's minimum size are suppressed and not sent. Cells
    that changed since the last publish go out as new revisions, never as
    extra counts. An outbox row is marked sent only on the broker's
    acknowledgement.

    \b
    Example:
      corredor --home ./pan publish --bootstrap 127.0.0.1:9092
      corredor --home ./pan publish --follow --metrics-port 9464
      corredor --home ./usa publish --overlap on --format json
    """
    home = home_of(ctx)
    if metrics_port is not None and not follow:
        raise click.UsageError("--metrics-port needs --follow")
    if follow:
        _publish_follow(home, bootstrap, interval, metrics_port, metrics_address)
        return
    with counting_progress("Publishing", "acknowledged") as advance:
        result = member_publish.publish(
            home,
            bootstrap=bootstrap,
            progress=advance,
            overlap=None if overlap == "auto" else overlap == "on",
        )
    plan = result.plan
    summary = {
        "country": home.country,
        "policy_version": result.policy_version,
        "topic": result.topic,
        "cells": plan.cells,
        "published_cells": plan.published_cells,
        "suppressed_cells": plan.suppressed_cells,
        "secondary_suppressed": plan.secondary_suppressed,
        "coarsened_cells": plan.coarsened_cells,
        "refused": plan.refused,
        "new": plan.new,
        "revised": plan.revised,
        "withdrawn": plan.withdrawn,
        "encounter_records": plan.encounters.staged if plan.encounters is not None else 0,
        "staged": plan.staged,
        "sent": result.drain.sent,
        "acknowledged": result.drain.acknowledged,
        "outbox_pending": result.outbox.pending,
    }
    if plan.privacy is not None:
        summary["privacy"] = privacy_budget(home)
    exchanges = result.reference.as_dict() if result.reference is not None else {}
    if fmt == "json":
        click.echo(json.dumps({**summary, "exchanges": exchanges}, indent=2))
        return
    table = Table(title=f"{home.country}: publish", title_justify="left", show_header=False)
    for k, v in summary.items():
        table.add_row(k.replace("_", " "), str(v))
    console.print(table)
    if exchanges:
        _render_exchanges(exchanges)


def _render_exchanges(exchanges: dict[str, dict[str, object]]) -> None:
    """Reference exchanges of one publish: what each kind sent, or why not."""
    table = Table(title="Reference exchanges", title_justify="left")
    columns = ("new", "revised", "withdrawn", "unchanged", "held_restricted")
    table.add_column("kind")
    table.add_column("shared")
    for col in columns:
        table.add_column(col.replace("_", " "), justify="right")
    for kind, counts in exchanges.items():
        table.add_row(kind, "yes" if counts["shared"] else "no", *(str(counts[c]) for c in columns))
    console.print(table)


# -- aggregator ----------------------------------------------------------------------


@click.command()
@click.option("--once", is_flag=True, help="Consume up to the topic's end, then stop.")
@click.option("--follow", is_flag=True, help="Keep consuming until SIGTERM or Ctrl-C.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Build the picture again from the beginning of the topic in a new "
    "store file; swap it in once caught up.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=2000,
    show_default=True,
    help="Messages applied per SQLite transaction (and offset commit).",
)
@bootstrap_option
@format_option("table", "json")
@metrics_options
@click.pass_context
@handle_errors
def aggregate(
    ctx: click.Context,
    once: bool,
    follow: bool,
    rebuild: bool,
    batch_size: int,
    bootstrap: str | None,
    fmt: str,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Consume the shared topic, verify and apply events to the picture.

    Undecodable, unsigned, unknown-key or forged messages are set aside with a
    reason and never applied. Offsets are committed only after the picture's
    transaction, so a restart resumes exactly where it stopped.

    --rebuild reads the topic again from its beginning into a new store file
    and swaps it in only once caught up: the live picture is never half-built.
    Stop a running aggregate --follow first; it resumes where the rebuild ended.

    \b
    Example:
      corredor --home ./ts aggregate --once
      corredor --home ./ts aggregate --follow --metrics-port 9464
      corredor --home ./ts aggregate --rebuild
    """
    if once + follow + rebuild != 1:
        raise click.UsageError("give exactly one of --once, --follow or --rebuild")
    if metrics_port is not None and not follow:
        raise click.UsageError("--metrics-port needs --follow")
    home = home_of(ctx)
    if rebuild:
        _aggregate_rebuild(home, bootstrap, batch_size, fmt)
        return
    if follow:
        _aggregate_follow(home, bootstrap, batch_size, metrics_port, metrics_address)
        return
    with console.status("Aggregating…"):
        stats = aggregate_once(home, bootstrap=bootstrap, max_records=batch_size)
    if fmt == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
        return
    console.print(
        f"{stats.messages} messages: [green]{stats.applied} applied[/], "
        f"{stats.duplicates} duplicates, {stats.stale} superseded, "
        f"[{'red' if stats.rejected_total else 'green'}]{stats.rejected_total} rejected[/]"
    )
    for reason, n in sorted(stats.rejected.items()):
        console.print(f"  [red]{reason}[/]: {n}")


def _aggregate_rebuild(home: Home, bootstrap: str | None, batch_size: int, fmt: str) -> None:
    with rebuild_progress() as show:
        result = rebuild_picture(home, bootstrap=bootstrap, max_records=batch_size, progress=show)
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    stats = result.stats
    rate = result.as_dict()["events_per_s"]
    console.print(
        f"rebuilt {result.picture} from {stats.messages} messages in {result.seconds:.1f} s "
        f"({rate} ev/s): [green]{stats.applied} applied[/], {stats.duplicates} duplicates, "
        f"{stats.stale} superseded, "
        f"[{'red' if stats.rejected_total else 'green'}]{stats.rejected_total} rejected[/]"
    )
    for reason, n in sorted(stats.rejected.items()):
        console.print(f"  [red]{reason}[/]: {n}")
    if result.previous is not None:
        console.print(f"The picture it replaced is kept in {result.previous}")


@contextmanager
def _serving(metrics: FollowMetrics, port: int | None, address: str) -> Iterator[None]:
    """The metrics endpoint while the loop runs, or nothing without --metrics-port."""
    if port is None:
        yield
        return
    with MetricsServer(metrics, port, address) as server:
        url = f"http://{address}:{server.port}/metrics"
        progress(f"metrics on {url}", metrics_url=url)
        yield


def _publish_follow(
    home: Home,
    bootstrap: str | None,
    interval: float,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    metrics = FollowMetrics("member", home.country)

    shown: list[tuple[int, int, int]] = [(0, 0, 0)]

    def report(c: PublishCounters) -> None:
        metrics.on_cycle(c)
        # One line per cycle that changed something, not one per idle cycle.
        if (c.staged, c.acknowledged, c.errors) != shown[0]:
            shown[0] = (c.staged, c.acknowledged, c.errors)
            progress(
                f"cycle {c.cycles}: staged {c.staged}, acknowledged {c.acknowledged}, "
                f"errors {c.errors}{' (' + c.last_error + ')' if c.last_error else ''}",
                cycles=c.cycles,
                staged=c.staged,
                acknowledged=c.acknowledged,
                errors=c.errors,
                outbox_pending=c.outbox_pending,
            )

    with (
        _serving(metrics, metrics_port, metrics_address),
        stop_on_signals(threading.Event()) as stop,
    ):
        counters = publish_follow(
            home, stop, interval_s=interval, bootstrap=bootstrap, on_cycle=report
        )
    progress(
        f"stopped: {counters.acknowledged} acknowledged over {counters.cycles} cycles",
        stdout=True,
        acknowledged=counters.acknowledged,
        cycles=counters.cycles,
    )


def _aggregate_follow(
    home: Home,
    bootstrap: str | None,
    batch_size: int,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    metrics = FollowMetrics("aggregator")

    def report(stats: ApplyStats) -> None:
        progress(
            f"{stats.messages} messages: {stats.applied} applied, "
            f"{stats.duplicates} duplicates, {stats.rejected_total} set aside",
            messages=stats.messages,
            applied=stats.applied,
            duplicates=stats.duplicates,
            set_aside=stats.rejected_total,
        )

    with (
        _serving(metrics, metrics_port, metrics_address),
        stop_on_signals(threading.Event()) as stop,
    ):
        total = aggregate_follow(
            home,
            stop,
            bootstrap=bootstrap,
            max_records=batch_size,
            on_batch=report,
            on_report=metrics.on_report,
        )
    progress(
        f"stopped: {total.applied} applied, {total.rejected_total} set aside",
        stdout=True,
        applied=total.applied,
        set_aside=total.rejected_total,
    )
