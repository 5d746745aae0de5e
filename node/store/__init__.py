"""The SQLite stores: a node's raw records, ledger and outbox (``node_store``),
the picture (``picture``, ``picture_writes``), reference records, the audit log.

Import the module you need (``from node.store import picture``): this file
imports none of them.
"""

__all__ = [
    "audit",
    "audit_check",
    "identity",
    "node_schema",
    "node_store",
    "picture",
    "picture_reads",
    "picture_revocation",
    "picture_schema",
    "picture_writes",
    "raw_records",
    "reference",
    "sqlite",
]
