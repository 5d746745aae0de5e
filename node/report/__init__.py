"""Renderers of the regional picture: views for an audience, as tables, JSON, CSV,
SDMX and HTML (``dispatch`` chooses; the others draw or serialise).

Import the module you need (``from node.report import dispatch``): this file
imports none of them.
"""

__all__ = [
    "alerts",
    "audience",
    "charts",
    "corridors",
    "demo_summary",
    "dispatch",
    "flows",
    "html",
    "reference",
    "regional",
    "sdmx",
    "sdmx_observations",
    "sdmx_structure",
    "svg",
    "tables",
    "trends",
    "views",
]
