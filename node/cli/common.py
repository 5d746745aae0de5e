"""Shared pieces of the command line: consoles, error handling, common options."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from node.config import Home
from node.errors import CorredorError
from node.home import open_home

F = TypeVar("F", bound=Callable[..., Any])

# No emoji codes: an encryption key id such as GTM:x:... must print as it is.
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)
progress_log = logging.getLogger("corredor.progress")


def json_logs() -> bool:
    """Whether this invocation writes JSON log lines (--log-format json)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and str(ctx.find_root().params.get("log_format", "")).lower() == "json"


def progress(message: str, *, stdout: bool = False, **fields: object) -> None:
    """A long-running command's progress: dim text for a terminal or, with JSON
    logs, an INFO record with ``fields``, so a container's output stays one JSON
    object per line."""
    if json_logs():
        progress_log.info(message, extra=fields)
    elif stdout:
        console.print(message)
    else:
        err_console.print(f"[dim]{message}[/]")


@contextmanager
def counting_progress(description: str, unit: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for work whose total is not known up front:
    the count so far and the time taken. Yields ``advance(n)``.
    Nothing is drawn with JSON logs or when stderr is not a terminal, so
    scripts and containers see only the command's output."""
    if json_logs() or not err_console.is_terminal:
        yield lambda n: None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        TextColumn("{task.completed:,} " + unit),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda n: bar.advance(task, n)


def handle_errors(func: F) -> F:
    """Turn CorredorError into click's clean error output."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CorredorError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def bootstrap_option(func: F) -> F:
    return click.option(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap address; overrides the home's config and CORREDOR_KAFKA_BOOTSTRAP.",
    )(func)


def metrics_options(func: F) -> F:
    """--metrics-port and --metrics-address of the follow loops (node.operator.metrics)."""
    func = click.option(
        "--metrics-address",
        default="127.0.0.1",
        show_default=True,
        metavar="ADDR",
        help="Address the metrics endpoint binds (0.0.0.0 in a container).",
    )(func)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        metavar="PORT",
        help="With --follow: serve Prometheus metrics at http://ADDR:PORT/metrics.",
    )(func)


def format_option(*choices: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=choices[0],
            show_default=True,
            help="Output format.",
        )(func)

    return decorate


def home_of(ctx: click.Context) -> Home:
    """The home named by the top-level --home option (or CORREDOR_HOME)."""
    home: Path | None = ctx.find_root().obj.get("home") if ctx.find_root().obj else None
    return open_home(home)
