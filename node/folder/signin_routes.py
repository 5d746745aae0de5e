"""The sign-in form, signing in and signing out (docs/folder.md)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from node.folder import pages
from node.folder.auth import Folder
from node.folder.inputs import read_form


def signin_routes(f: Folder) -> list[Route]:
    """Signing in and out with the forms' CSRF token; a new session on each."""

    def signin_form(request: Request) -> Response:
        session = f.sessions.decode(request.cookies.get(f.sessions.cookie)) or f.sessions.fresh()
        body = pages.layout(
            "Sign in",
            pages.signin_page(f.sessions.csrf(session), None, f.db.public_enabled),
            user=None,
            audience=None,
            csrf=None,
        )
        response = HTMLResponse(body)
        f.sessions.set(response, session)
        return response

    async def signin(request: Request) -> Response:
        session = f.sessions.decode(request.cookies.get(f.sessions.cookie))
        form = await read_form(request)
        if not f.sessions.csrf_ok(session, form.get("csrf", "")):
            f.db.log_access(None, None, "csrf-refused", "/signin", 403, f.client(request))
            raise HTTPException(403, "the form's CSRF token does not match: reload the page")
        assert session is not None
        try:
            user = await run_in_threadpool(
                f.sign_in, request, form.get("username", ""), form.get("password", "")
            )
        except HTTPException as exc:
            body = pages.layout(
                "Sign in",
                pages.signin_page(f.sessions.csrf(session), str(exc.detail), f.db.public_enabled),
                user=None,
                audience=None,
                csrf=None,
            )
            return HTMLResponse(body, status_code=exc.status_code)
        response = RedirectResponse("/", status_code=303)
        f.sessions.set(response, f.sessions.fresh(user))  # a new nonce: no fixation
        return response

    async def signout(request: Request) -> Response:
        session = f.sessions.decode(request.cookies.get(f.sessions.cookie))
        form = await read_form(request)
        if not f.sessions.csrf_ok(session, form.get("csrf", "")):
            f.db.log_access(None, None, "csrf-refused", "/signout", 403, f.client(request))
            raise HTTPException(403, "the form's CSRF token does not match: reload the page")
        assert session is not None
        f.db.log_access(session.user, None, "signout", "/signout", 303, f.client(request))
        response = RedirectResponse("/signin", status_code=303)
        f.sessions.set(response, f.sessions.fresh())
        return response

    return [
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
    ]
