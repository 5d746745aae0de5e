"""HTML of the folder's pages. Every value is escaped; no page carries a script
or an inline style (the CSP forbids both); charts are the SVG of the HTML
report (``node.report.html``), drawn on the server from the same admitted
cells as the tables beside them, with a tooltip (``<title>``) per mark.

The pages live by family: the shared frame in ``node.folder.layout``, the
statistical pages in ``node.folder.stat_pages``, the pages of record in
``node.folder.folder_pages``, the chart specifications in
``node.folder.chart_specs``; this module is their one surface.
"""

from __future__ import annotations

from node.folder.chart_specs import country_spec, nationality_spec
from node.folder.folder_pages import (
    access_log_page,
    countries_page,
    country_page,
    downloads_page,
    history_page,
    intelligence_page,
    received_page,
    reference_page,
)
from node.folder.layout import e, layout, vl_chart
from node.folder.stat_pages import (
    alerts_page,
    corridors_page,
    flows_page,
    overview,
    signin_page,
    trends_page,
)

__all__ = [
    "access_log_page",
    "alerts_page",
    "corridors_page",
    "countries_page",
    "country_page",
    "country_spec",
    "downloads_page",
    "e",
    "flows_page",
    "history_page",
    "intelligence_page",
    "layout",
    "nationality_spec",
    "overview",
    "received_page",
    "reference_page",
    "signin_page",
    "trends_page",
    "vl_chart",
]
