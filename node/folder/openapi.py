"""The OpenAPI 3.1 description of the folder's API, served at
``/api/openapi.json``."""

from __future__ import annotations

from typing import Any


def _api_path(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "security": [{"session": []}, {"basic": []}],
            "responses": {
                "200": {
                    "description": "filtered for the caller's audience",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": {"description": "not signed in"},
                "403": {"description": "outside the caller's audience"},
            },
        }
    }


def _q(name: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": desc,
        "schema": {"type": "string"},
    }


def _p(name: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": desc,
        "schema": {"type": "string"},
    }


_FLOW_PARAMS = [
    _q("from", "first period, e.g. 2026-W03"),
    _q("to", "last period"),
    _q("country", "reporting country, ISO3"),
    _q("nationality", "ISO3"),
    _q("region", "UN M49 sub-region of the nationality"),
]
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Corredor online folder API",
        "version": "1",
        "description": "Every answer is filtered server-side for the caller's audience "
        "by the exports' admission rule (docs/folder.md).",
    },
    "components": {
        "securitySchemes": {
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": "corredor",
                "description": "set by signing in at /signin; named __Host-corredor under TLS",
            },
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "only over TLS or from loopback",
            },
        }
    },
    "paths": {
        "/api/flows": _api_path("flows: the fields of `report --format json`", _FLOW_PARAMS),
        "/api/corridors": _api_path("corridors: route legs and shared routes"),
        "/api/alerts": _api_path("alerts of the latest week"),
        "/api/trends": _api_path("weekly totals, change, top nationalities, origins"),
        "/api/reference/{kind}": _api_path(
            "a reference view: legislation, consulates, health, focal-points",
            [_p("kind", "legislation | consulates | health | focal-points")],
        ),
        "/api/releases/{country}": _api_path(
            "what a country released: latest revision of each subject", [_p("country", "ISO3")]
        ),
        "/healthz": {
            "get": {
                "summary": "200 once a snapshot of the picture is readable",
                "responses": {"200": {"description": "ok"}, "503": {"description": "no snapshot"}},
            }
        },
    },
}
