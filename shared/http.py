"""HTTP mechanisms every service API shares: bilingual errors and authentication.

Users read Vietnamese first, so every error a user can cause carries a
Vietnamese ``message`` and an English ``message_en``, plus a stable ``code``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import elastic_transport
import nats.errors
import nats.js.errors
import urllib3.exceptions
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from minio.error import S3Error
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.api_keys import open_api_key_store, verify_api_key
from shared.eventstore import EventStore
from shared.fields import text_problem
from shared.objectstore import is_storage_full
from shared.revocations import TokenRevocations, open_revocations_bucket
from shared.settings import Settings
from shared.subjects import SubjectError, aggregate_filter

log = logging.getLogger("mam.http")


class UserError(Exception):
    """An error caused by the request; reported as JSON with a 4xx status."""

    def __init__(self, status: int, code: str, message_vi: str, message_en: str, **extra: Any) -> None:
        super().__init__(message_en)
        self.status = status
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message_vi, "message_en": self.message_en, **self.extra}}


class ErrorBody(BaseModel):
    code: str
    message: str
    message_en: str


def _validation_problem(err: dict[str, Any]) -> dict[str, str]:
    location = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form"))
    kind = str(err.get("type", ""))
    reason = text_problem(err)
    if reason is not None:  # the input contract says why, in both languages
        return {
            "field": location,
            "code": reason.code,
            "message": f"{location}: {reason.message_vi}",
            "message_en": f"{location}: {reason.message_en}",
        }
    if kind == "missing":
        vi = f"Thiếu trường bắt buộc: {location}"
    else:
        vi = f"Giá trị không hợp lệ ở trường {location}"
    return {"field": location, "message": vi, "message_en": f"{location}: {err.get('msg', 'invalid')}"}


def error_response(exc: UserError) -> JSONResponse:
    """A :class:`UserError` as the JSON every API answers with."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if exc.status in (408, 413):  # answered before the whole body was read: it never will be
        headers = {"Connection": "close"}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def _user_error(_: Request, exc: UserError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_validation_problem(dict(e)) for e in exc.errors()]
        error = UserError(
            422,
            "invalid_request",
            "Yêu cầu không hợp lệ: " + "; ".join(p["message"] for p in problems),
            "Invalid request: " + "; ".join(p["message_en"] for p in problems),
            problems=problems,
        )
        return JSONResponse(error.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own errors (unknown route, wrong method, unreadable body) in the same shape."""
        code, vi, en = _FRAMEWORK_ERRORS.get(exc.status_code, _FRAMEWORK_ERRORS[0])
        error = UserError(exc.status_code, code, vi, en)
        return JSONResponse(error.body(), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # Expected failures get handlers of their own exception classes: Starlette answers those in
    # its ExceptionMiddleware and is done. A handler of ``Exception`` runs in ServerErrorMiddleware,
    # which re-raises after answering, so uvicorn logs "Exception in ASGI application" with a
    # traceback — right for a bug, wrong for a NATS leader election or a full bucket.
    for unavailable in SERVER_UNAVAILABLE:
        app.add_exception_handler(unavailable, _server_unavailable)
    app.add_exception_handler(S3Error, _storage_full_or_unexpected)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Last resort: the trace goes to the log under a correlation id the client gets back."""
        correlation = _correlation_id(request)
        log.error("unhandled error on %s %s [%s]", request.method, request.url.path, correlation, exc_info=exc)
        error = UserError(
            500,
            "internal_error",
            f"Lỗi hệ thống. Vui lòng thử lại sau; nếu lỗi còn, báo quản trị mã {correlation}.",
            f"Internal error. Please retry later; if it persists, give the administrator the code {correlation}.",
            correlation_id=correlation,
        )
        return JSONResponse(error.body(), status_code=500, headers={_CORRELATION_HEADER: correlation})


async def _server_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A server elsewhere is briefly away (a NATS leader election, an Elasticsearch node
    restarting): the request was fine and a retry will do, so 503 and one warning line."""
    correlation = _correlation_id(request)
    log.warning("server unavailable on %s %s [%s]: %r", request.method, request.url.path, correlation, exc)
    busy = UserError(
        503,
        "server_unavailable",
        "Máy chủ lưu trữ tạm thời chưa sẵn sàng; vui lòng thử lại sau ít giây.",
        "A storage server is briefly unavailable; please retry in a few seconds.",
        correlation_id=correlation,
    )
    return JSONResponse(busy.body(), status_code=503, headers={_CORRELATION_HEADER: correlation, "Retry-After": "5"})


async def _storage_full_or_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """The object store refused the bytes (quota or full drives): nothing was stored, the
    client may send again once an administrator made room. Any other S3 error is a bug
    or an outage nobody expected: raised on to the last-resort handler (500, traceback)."""
    if not is_storage_full(exc):
        raise exc
    correlation = _correlation_id(request)
    log.warning("storage full on %s %s [%s]: %s", request.method, request.url.path, correlation, exc)
    full = UserError(
        507,
        "storage_full",
        "Kho lưu trữ đã đầy nên tệp chưa được lưu (không có gì được ghi dở). "
        "Hãy báo quản trị viên giải phóng dung lượng rồi gửi lại.",
        "Object storage is full, so the file was not stored (nothing was half-written). "
        "Ask an administrator to make room, then send it again.",
        correlation_id=correlation,
    )
    return JSONResponse(full.body(), status_code=507, headers={_CORRELATION_HEADER: correlation})


_CORRELATION_HEADER = "X-Correlation-Id"

# Errors that mean "a server is away for now", not "this request is wrong" or "a bug".
SERVER_UNAVAILABLE: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,  # a JetStream publish while the stream elects a leader
    elastic_transport.ConnectionError,
    elastic_transport.ConnectionTimeout,
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.ProtocolError,
)
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

# status → (code, Vietnamese, English); 0 is the fallback for any other status.
_FRAMEWORK_ERRORS: dict[int, tuple[str, str, str]] = {
    0: ("http_error", "Yêu cầu không thực hiện được.", "The request could not be carried out."),
    400: (
        "unreadable_body",
        "Không đọc được nội dung yêu cầu (JSON hoặc biểu mẫu không hợp lệ).",
        "The request body could not be read (invalid JSON or form).",
    ),
    404: ("not_found", "Không có địa chỉ này.", "No such address."),
    405: ("method_not_allowed", "Địa chỉ này không nhận phương thức đó.", "This address does not accept that method."),
    413: ("too_large", "Yêu cầu quá lớn.", "The request is too large."),
    415: ("unsupported_media_type", "Kiểu nội dung không được hỗ trợ.", "Unsupported content type."),
}


def _correlation_id(request: Request) -> str:
    """The caller's ``X-Correlation-Id`` when it is a sane token, else a new one."""
    given = request.headers.get(_CORRELATION_HEADER, "")
    return given if _CORRELATION_ID.match(given) else uuid.uuid4().hex


def checked_id(aggregate: str, value: str, what_vi: str, what_en: str) -> str:
    """An id from a request, refused (400) unless it is a valid subject token of ``aggregate``."""
    try:
        aggregate_filter(aggregate, value)
    except SubjectError as exc:
        raise UserError(
            400, f"invalid_{aggregate}_id", f"Mã {what_vi} không hợp lệ.", f"Invalid {what_en} id."
        ) from exc
    return value


class ServiceDeps(Protocol):
    """What a service's wiring function builds: adapters it checks and closes."""

    async def readiness(self) -> dict[str, bool]:
        """Each server this service needs (``nats``, ``s3``, ``elasticsearch``) → answering now."""
        ...

    async def close(self) -> None: ...


# A readiness check that takes longer than this counts as failed.
READINESS_TIMEOUT_S = 3.0


def service_app(
    title: str,
    settings: Settings,
    build: Callable[[Settings], Awaitable[ServiceDeps]],
    routers: Iterable[APIRouter] = (),
    streams: Callable[[str, str], bool] = lambda method, path: False,
) -> FastAPI:
    """The FastAPI app every service starts from: it only assembles.

    Adapters are built by ``build`` in the lifespan (nothing connects at import
    time), kept in ``app.state.deps`` and closed on shutdown; the settings are
    in ``app.state.settings``; bilingual error handlers and the unauthenticated
    ``/healthz`` the launcher polls are installed here; the routes come from
    the service's ``api.py`` routers. Every request body is bounded in size and
    time before a route reads it (:mod:`shared.request_bodies`), except on the
    routes ``streams(method, path)`` names, which read theirs under limits of their own.
    """
    # Here, not at the top: request_bodies answers with this module's UserError.
    from shared.request_bodies import BoundedBodies, body_pace

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = await build(settings)
        app.state.deps = deps
        await _accept_api_keys(app, deps, settings)
        try:
            yield
        finally:
            await deps.close()

    docs = settings.serves_api_docs
    app = FastAPI(
        title=f"HĐND media archive — {title}",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served below from local files: FastAPI's own page loads them from a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(
        BoundedBodies, max_bytes=settings.max_request_body_bytes, pace=body_pace(settings), streams=streams
    )
    if docs:
        install_offline_docs(app, settings)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process and its event loop answer (connections heal by themselves)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: every server this service needs answers now (503 with which one does not)."""
        deps: ServiceDeps = request.app.state.deps
        try:
            checks = await asyncio.wait_for(deps.readiness(), READINESS_TIMEOUT_S)
        except TimeoutError:
            checks = {"timeout": False}
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        down = ", ".join(name for name, ok in checks.items() if not ok)
        error = UserError(
            503,
            "not_ready",
            f"Dịch vụ chưa sẵn sàng: không kết nối được {down}.",
            f"Not ready: cannot reach {down}.",
            checks=checks,
        )
        return JSONResponse(error.body(), status_code=503)

    for router in routers:
        app.include_router(router)
    return app


DOCS_ASSETS = "/docs-assets"


def install_offline_docs(app: FastAPI, settings: Settings) -> None:
    """``/docs`` with swagger-ui from the npm package ``make install`` put in node_modules,
    so the page works on a machine without internet (FastAPI's default uses a CDN)."""
    app.mount(
        DOCS_ASSETS,
        StaticFiles(directory=settings.resolved_web_assets_dir / "swagger-ui-dist", check_dir=False),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


async def _accept_api_keys(app: FastAPI, deps: ServiceDeps, settings: Settings) -> None:
    """Services that hold an event store also accept machines' API keys (``shared.access``):
    the keys' KV bucket is read on the same NATS connection, cached briefly so a
    revoked key stops working within ``api_key_cache_ttl_s``; so are the users' token
    revocations (``shared.revocations``)."""
    events = getattr(deps, "events", None)
    if isinstance(events, EventStore):
        js = await events.jetstream()
        store = await open_api_key_store(js, settings.api_key_cache_ttl_s, settings.nats_replicas)
        app.state.api_key_verifier = functools.partial(verify_api_key, store)
        # Disabled users' access tokens, refused within token_revocation_cache_ttl_s.
        revocations = await open_revocations_bucket(js, settings.nats_replicas)
        app.state.token_revocations = TokenRevocations(revocations, settings.token_revocation_cache_ttl_s)


async def app_deps(request: Request) -> Any:
    """The deps object built by :func:`service_app`'s lifespan.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker
    thread, a thread hop on every request for a dictionary lookup.
    """
    return request.app.state.deps
