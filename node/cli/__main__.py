"""``python -m node.cli``: the same as the ``corredor`` command."""

from node.cli import main

main(prog_name="corredor")
