"""The ``corredor`` command line: thin commands over the library's role modules.

Each command parses its options, calls one library function and renders the
result. A CorredorError becomes a clean one-line error and exit status 1.
Commands live in one module per area; this module assembles the group.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from node import __version__
from node.cli import (
    audit_cmds,
    deploy_cmds,
    folder_cmds,
    kafka_cmds,
    node_cmds,
    operate_cmds,
    pki_cmds,
    policy_cmds,
    reference_cmds,
    schema_cmds,
    store_cmds,
    trust_cmds,
)
from node.config import ENV_HOME, ENV_LOG_FORMAT
from node.logging_setup import LOG_FORMATS, configure_logging

__all__ = [
    "audit_cmds",
    "common",
    "deploy_cmds",
    "exchange_cmds",
    "federation_cmds",
    "folder_cmds",
    "kafka_cmds",
    "main",
    "node_cmds",
    "operate_cmds",
    "pki_cmds",
    "policy_cmds",
    "rebuild_view",
    "reference_cmds",
    "report_cmds",
    "schema_cmds",
    "store_cmds",
    "trust_cmds",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_HOME,
    help="The node's home directory (or set CORREDOR_HOME).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS, case_sensitive=False),
    default="text",
    envvar=ENV_LOG_FORMAT,
    show_default=True,
    help="Log lines as text, or as one JSON object per line (or set CORREDOR_LOG_FORMAT).",
)
@click.version_option(version=__version__, prog_name="corredor")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool, log_format: str) -> None:
    """Corredor: share what your law allows about extraregional migration flows,
    provably nothing more, and see the regional picture.

    \b
    Example:
      corredor init --country PAN --home ./pan
      corredor --home ./pan ingest encounters.csv
      corredor --home ./pan publish
    """
    configure_logging(
        logging.INFO if verbose else logging.WARNING,
        "json" if log_format.lower() == "json" else "text",
        sys.stderr,
    )
    if log_format.lower() == "json":
        # Progress of the follow loops and serve becomes INFO records, not text.
        logging.getLogger("corredor.progress").setLevel(logging.INFO)
    ctx.ensure_object(dict)
    ctx.obj["home"] = home


for _module in (
    node_cmds,
    kafka_cmds,
    trust_cmds,
    audit_cmds,
    pki_cmds,
    schema_cmds,
    reference_cmds,
    policy_cmds,
    operate_cmds,
    deploy_cmds,
    folder_cmds,
    store_cmds,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)
