"""The online folder: the Secretariat's regional picture as a signed-in web
application (``corredor serve``), scoped by audience.

    accounts   users (Argon2id hashes), home settings, the access log, the
               session secret: ``folder.db`` beside the picture, never in it
    snapshot   a private copy of the picture, refreshed, with per-audience caches
    pages      HTML of the pages (no script; charts are SVG from node.report.html)
    app        the Starlette application: sign-in, sessions, CSRF, headers, routes
    server     uvicorn with the options of ``corredor serve``

Every number the folder shows or serves comes through ``node.report`` (the same
functions ``corredor report`` calls), so the admission rule of the exports
(``node.report.audience.admits``) is the folder's rule too; docs/folder.md.
"""

__all__ = [
    "accounts",
    "api_routes",
    "app",
    "auth",
    "chart_specs",
    "data",
    "downloads",
    "folder_pages",
    "inputs",
    "layout",
    "middleware",
    "openapi",
    "page_routes",
    "pages",
    "session",
    "signin_routes",
    "snapshot",
    "stat_pages",
]
