"""The ``corredor`` command line: thin commands over ``node.operations``.

Each command parses its options, calls one library function and renders the
result. A CorredorError becomes a clean one-line error and exit status 1.
Commands live in one module per area; this module assembles the group.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from node.cli import (
    audit_cmds,
    kafka_cmds,
    node_cmds,
    pki_cmds,
    policy_cmds,
    reference_cmds,
    schema_cmds,
    trust_cmds,
)
from node.config import ENV_HOME


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_HOME,
    help="The node's home directory (or set CORREDOR_HOME).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.version_option(package_name="corredor")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """Corredor: share what your law allows about extraregional migration flows,
    provably nothing more, and see the regional picture.

    \b
    Example:
      corredor init --country PAN --home ./pan
      corredor --home ./pan ingest encounters.csv
      corredor --home ./pan publish
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr)
    if not verbose:
        # kafka-python logs every refused connection while a broker starts.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
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
):
    for _command in _module.COMMANDS:
        main.add_command(_command)
