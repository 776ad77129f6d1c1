"""web service: the pages, their static files and the front-end libraries from npm."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.web import bulk, collections, people, processing, reels, reports, uploads
from services.web.api import WebDeps, open_router, page, router
from services.web.backend import ApiRefused
from services.web.session import CSRF_COOKIE, clear_session, secure_cookies, set_session
from shared.http import UserError, error_response, service_app
from shared.settings import Settings

STATIC = Path(__file__).parent / "static"
# The files the pages load from node_modules (npm ci at `make install`), never a CDN.
VENDOR = {
    "htmx": "htmx.org/dist",
    "tus": "tus-js-client/dist",
    "axe": "axe-core",
}


async def build_deps(settings: Settings) -> WebDeps:
    # One pool for the APIs and the S3 server; media streams may last long, a call should not.
    timeout = httpx.Timeout(30.0, connect=5.0)
    return WebDeps(settings, httpx.AsyncClient(timeout=timeout, follow_redirects=False))


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def install_page_errors(app: FastAPI) -> None:
    """A browser gets pages: sign-in for 401, a Vietnamese error page otherwise; a script
    (no ``text/html`` in Accept) keeps the APIs' JSON errors."""

    async def user_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UserError)
        if not _wants_html(request) and request.headers.get("HX-Request") != "true":
            return error_response(exc)
        if exc.status == 401:
            target = f"/sign-in?next={quote(request.url.path)}"
            if request.headers.get("HX-Request") == "true":
                return Response(status_code=204, headers={"HX-Redirect": target})
            answer = RedirectResponse(target, status_code=303)
            clear_session(answer)
            return answer
        return page(request, "error.html", exc.status, message=(exc.message_vi, exc.message_en))

    async def api_refused(request: Request, exc: Exception) -> Response:
        """An API's 4xx that no page handled itself: shown as that page's answer, same status."""
        assert isinstance(exc, ApiRefused)
        return await user_error(request, UserError(exc.status, exc.code, exc.message_vi, exc.message_en))

    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(ApiRefused, api_refused)


def install_session_cookies(app: FastAPI) -> None:
    """Cookies decided while answering (a refreshed pair, an ended sign-in, a first CSRF
    value) are set on whatever response the page returns."""

    @app.middleware("http")
    async def session_cookies(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        state = request.state
        if getattr(state, "new_tokens", None) is not None:
            set_session(request, response, state.new_tokens)
        elif getattr(state, "clear_session", False):
            clear_session(response)
        new_csrf = getattr(state, "new_csrf", "")
        if new_csrf:
            response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, secure=secure_cookies(request), samesite="strict")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def create_app(settings: Settings) -> FastAPI:
    app = service_app(
        "web",
        settings,
        build_deps,
        [
            open_router,
            router,
            reels.router,
            uploads.router,
            collections.router,
            reports.router,
            people.router,
            bulk.router,
            processing.router,
        ],
        streams=uploads.streams_its_body,
    )
    install_page_errors(app)
    install_session_cookies(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = settings.resolved_web_assets_dir
    for name, folder in VENDOR.items():
        app.mount(f"/vendor/{name}", StaticFiles(directory=assets / folder, check_dir=False), name=f"vendor-{name}")
    return app
