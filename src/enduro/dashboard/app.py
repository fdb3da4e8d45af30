"""The dashboard application: pages, login, static assets and the API, over one database.

Pages are static HTML shells shipped in the package (`static/`); their scripts fetch the
API and build the DOM with `textContent` only, so no model- or user-written string is ever
parsed as HTML, and the Content-Security-Policy forbids inline script besides. Nothing is
loaded from a CDN (FastAPI's Swagger and ReDoc pages, which are, are turned off;
/openapi.json stays).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from enduro.client import Client
from enduro.dashboard import api
from enduro.dashboard.actions import Runs
from enduro.dashboard.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    Guard,
    csrf_ok,
    new_csrf,
)

STATIC = resources.files("enduro.dashboard") / "static"
POLL_SECONDS = 1.0


def create_app(client: Client, access: Access, *, poll_seconds: float = POLL_SECONDS) -> Any:
    """The ASGI app over a connected `enduro.Client`: FastAPI wrapped in the security `Guard`.

    `poll_seconds`: how often a live stream looks for new events and status.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runs: Runs = app.state.runs
        yield
        for task in list(runs.tasks):
            task.cancel()  # stops reaping only; the resumed runs go on in their own session

    app = FastAPI(
        title="enduro dashboard",
        version="1",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        description="Threads, their status (the `enduro status --json` contract with its "
        "forecast), events, spend, and actions. With a token: `Authorization: Bearer TOKEN`. "
        "POSTs without a token need the enduro_csrf cookie echoed in X-CSRF-Token.",
    )
    app.state.poll_seconds = poll_seconds
    app.state.client = client
    app.state.runs = Runs()
    app.state.token_required = access.token is not None
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _pages(app, access)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return Guard(app, access)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,  # pages are include_in_schema=False
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema


def _page(request: Request, name: str) -> HTMLResponse:
    response = HTMLResponse((STATIC / name).read_text(encoding="utf-8"))
    if not request.cookies.get(CSRF_COOKIE):
        _set_csrf(response, request)
    response.headers["cache-control"] = "no-store"
    return response


def _set_csrf(response: Response, request: Request, value: str | None = None) -> str:
    value = value or new_csrf()
    response.set_cookie(
        CSRF_COOKIE,
        value,
        httponly=False,  # the page's script echoes it in X-CSRF-Token
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return value


def _pages(app: FastAPI, access: Access) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def threads_page(request: Request) -> Response:
        return _page(request, "threads.html")

    @app.api_route("/threads/{thread_id}", methods=["GET", "HEAD"], include_in_schema=False)
    async def thread_page(request: Request, thread_id: str) -> Response:
        return _page(request, "thread.html")

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        if access.token is None:
            return RedirectResponse("/", status_code=303)
        csrf = request.cookies.get(CSRF_COOKIE) or new_csrf()
        # The only value put into markup: hex we generated ourselves.
        html = (STATIC / "login.html").read_text(encoding="utf-8").replace("{{csrf}}", csrf)
        response = HTMLResponse(html)
        _set_csrf(response, request, csrf)
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        target = _safe_next(form.get("next") or request.query_params.get("next"))
        if access.token is None:
            return RedirectResponse(target, status_code=303)
        if not csrf_ok(request, form.get("csrf", "")):
            return RedirectResponse("/login?error=expired", status_code=303)
        if not access.valid_token(form.get("token")):
            return RedirectResponse("/login?error=token", status_code=303)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            access.session_value(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never `//evil.example` or a full URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
