"""What a request asks, read and checked: its query parameters, a flow
filter, a posted form, a country code in the path. A malformed one is an
HTTPException with the status to answer."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request

from node.errors import ConfigError
from node.folder import data
from node.model.codes import is_iso3


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


def flow_filter(request: Request) -> data.FlowFilter:
    try:
        return data.FlowFilter.parse(_params(request))
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from exc


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if not body:
        return {}
    if (
        request.headers.get("content-type", "").split(";")[0].strip()
        != "application/x-www-form-urlencoded"
    ):
        raise HTTPException(415, "forms are application/x-www-form-urlencoded")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, "malformed form") from exc
    return {k: v[0] for k, v in parsed.items()}


def iso3_param(value: str) -> str:
    upper = value.upper()
    if not is_iso3(upper):
        raise HTTPException(404, "not an ISO 3166 alpha-3 country code")
    return upper
