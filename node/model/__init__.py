"""The data models: encounter records, events, reference records, the manifest,
identifiers and code lists.

Import the module you need (``from node.model import records``): this file
imports none of them.
"""

__all__ = [
    "codes",
    "events",
    "ids",
    "manifest",
    "records",
    "reference",
]
