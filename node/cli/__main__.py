"""``python -m node.cli``: the same as the ``corredor`` command."""

from node.cli import main

# Guarded: the aggregator's check workers (forkserver) import the main module.
if __name__ == "__main__":
    main(prog_name="corredor")
