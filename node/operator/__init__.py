"""The operator's tools: what runs a node rather than what a node does.

- ``doctor``: is this node fit to run, and how far behind is it;
- ``backup``: back up and restore a home while the node runs;
- ``deploy``: the idempotent set-up steps of a deployed federation;
- ``metrics``: Prometheus metrics of the follow loops;
- ``serve``: the online folder (``node.folder``) on uvicorn.

Import the module you need (``from node.operator import doctor``): this file
imports none of them, so importing one does not load the others.
"""

__all__ = [
    "backup",
    "deploy",
    "doctor",
    "metrics",
    "serve",
    "status",
]
