"""web pages: thin handlers that call the APIs as the signed-in user and render templates.

Every page declares the policy action it serves (``page_requires``), like every API
route, so the permission matrix covers the pages too; the APIs they call decide again.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask

from services.web import i18n
from services.web.backend import ApiRefused, Backend
from services.web.session import (
    CSRF_FIELD,
    REFRESH_COOKIE,
    Tokens,
    User,
    check_csrf,
    clear_session,
    csrf_token,
    current_user,
    page_requires,
    renewed_user,
    set_session,
)
from shared.auth import ROLE_LABELS_VI, Principal, Role
from shared.http import UserError
from shared.policy import Action, Restriction, allowed
from shared.settings import Settings
from shared.taxonomy import activity_label, activity_types, terms

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters["vn_date"] = i18n.vn_date
TEMPLATES.env.filters["duration"] = i18n.duration
TEMPLATES.env.filters["activity_label"] = lambda code: _activity_label(code)
TEMPLATES.env.globals["ROLE_LABELS_VI"] = {r.value: label for r, label in ROLE_LABELS_VI.items()}
TEMPLATES.env.globals["ACTIVITY_TYPES"] = activity_types()
TEMPLATES.env.globals["TERMS"] = terms()
TEMPLATES.env.globals["CSRF_FIELD"] = CSRF_FIELD


def _activity_label(code: object) -> str:
    """The Vietnamese name of an activity type code (the code itself if unknown)."""
    try:
        return activity_label(str(code)) if code else ""
    except KeyError:
        return str(code)


@dataclass
class WebDeps:
    settings: Settings
    http: httpx.AsyncClient  # one pool for every call to the APIs and to S3

    @property
    def urls(self) -> dict[str, str]:
        s = self.settings
        local = {
            "accounts": s.accounts_url,
            "ingest": s.ingest_url,
            "search": s.search_url,
            "catalogue": s.catalogue_url,
            "reels": s.reels_url,
        }
        return {name: s.web_api_urls.get(name, url).rstrip("/") for name, url in local.items()}

    async def readiness(self) -> dict[str, bool]:
        try:
            response = await self.http.get(f"{self.urls['accounts']}/healthz", timeout=2.0)
        except httpx.HTTPError:
            return {"accounts": False}
        return {"accounts": response.status_code == 200}

    async def close(self) -> None:
        await self.http.aclose()


router = APIRouter()
# Signing in and out and choosing a language need no account (the CSRF token still applies).
open_router = APIRouter()


def backend(request: Request) -> Backend:
    deps: WebDeps = request.app.state.deps
    return Backend(deps.http, deps.urls, current_user(request), renew=lambda: renewed_user(request))


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A template with what every page needs: language, user, CSRF token, translation."""
    lang = i18n.language(request)
    user: User | None = getattr(request.state, "user", None)

    def t(vi: str, en: str) -> str:
        return en if lang == "en" else vi

    def num(value: float | int | None, decimals: int = 0) -> str:
        return i18n.number(value, lang, decimals)

    base = {
        "lang": lang,
        "t": t,
        "num": num,
        "size": lambda b: i18n.size(b, lang),
        "user": user,
        "csrf": csrf_token(request),
        "path": request.url.path,
        "Action": Action,
    }
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- signing in and out, language ---------------------------------------------------------------

_SAFE_NEXT = re.compile(r"^/[A-Za-z0-9/_\-?=&%.]*$")


def _safe_next(value: str | None) -> str:
    """Only a path of this site (never ``//other.site`` or a full URL) after signing in."""
    if value and _SAFE_NEXT.match(value) and not value.startswith("//"):
        return value
    return "/"


@open_router.get("/sign-in", response_class=HTMLResponse, include_in_schema=False)
async def sign_in_page(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "sign_in.html", next=_safe_next(next), error=None, username="")


@open_router.post("/sign-in", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    username = str(form.get("username", ""))[:256].strip()
    password = str(form.get("password", ""))[:1024]
    target = _safe_next(str(form.get("next", "/")))
    errors: dict[str, tuple[str, str]] = {}
    if not username:
        errors["username"] = ("Hãy nhập tên đăng nhập.", "Enter your user name.")
    if not password:
        errors["password"] = ("Hãy nhập mật khẩu.", "Enter your password.")
    if errors:
        return page(request, "sign_in.html", 422, next=target, error=None, errors=errors, username=username)
    deps: WebDeps = request.app.state.deps
    try:
        response = await deps.http.post(
            f"{deps.urls['accounts']}/v1/auth/token", data={"username": username, "password": password}
        )
    except httpx.HTTPError as exc:
        raise UserError(
            502,
            "service_unavailable",
            "Dịch vụ tài khoản đang không trả lời; vui lòng thử lại sau ít phút.",
            "The accounts service is not answering; please try again in a few minutes.",
        ) from exc
    if response.status_code != 200:
        refused = ApiRefused.of(response)
        error = (refused.message_vi, refused.message_en)
        return page(request, "sign_in.html", 401, next=target, error=error, errors={}, username=username)
    answer = RedirectResponse(target, status_code=303)
    set_session(request, answer, Tokens.of(response.json()))
    return answer


@open_router.post("/sign-out", include_in_schema=False)
async def sign_out(request: Request) -> Response:
    await check_csrf(request)
    refresh = request.cookies.get(REFRESH_COOKIE)
    deps: WebDeps = request.app.state.deps
    if refresh:
        try:  # the refresh token dies now; the access token within its few minutes
            await deps.http.post(f"{deps.urls['accounts']}/v1/auth/logout", json={"refresh_token": refresh})
        except httpx.HTTPError:
            pass  # the cookies go anyway
    answer = RedirectResponse("/sign-in", status_code=303)
    clear_session(answer)
    return answer


@open_router.post("/language", include_in_schema=False)
async def choose_language(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    lang = "en" if form.get("lang") == "en" else "vi"
    answer = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
    answer.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    return answer


# --- home ---------------------------------------------------------------------------------------

Searcher = Annotated[Principal, Depends(page_requires(Action.SEARCH))]
Reader = Annotated[Principal, Depends(page_requires(Action.ASSET_READ))]
Editor = Annotated[Principal, Depends(page_requires(Action.ASSET_EDIT))]
Corrector = Annotated[Principal, Depends(page_requires(Action.ASSET_CORRECT))]
Publisher = Annotated[Principal, Depends(page_requires(Action.ASSET_PUBLISH))]
ActivityReader = Annotated[Principal, Depends(page_requires(Action.ACTIVITY_READ))]
Uploader = Annotated[Principal, Depends(page_requires(Action.ASSET_UPLOAD))]
AccountsAdmin = Annotated[Principal, Depends(page_requires(Action.ACCOUNTS))]
Operator = Annotated[Principal, Depends(page_requires(Action.OPERATIONS))]


@router.get("/", include_in_schema=False)
async def home(who: Searcher) -> RedirectResponse:
    """Each role lands where its work is: broadcasters on their uploads, others on search."""
    return RedirectResponse("/upload" if who.role is Role.PHONG_VIEN else "/search", status_code=303)


# --- search -------------------------------------------------------------------------------------

FILTER_NAMES = ("activity_type", "term", "kind", "organisation", "person", "activity", "collection")
FACET_TITLES = {
    "activity_type": ("Loại hoạt động", "Activity type"),
    "term": ("Nhiệm kỳ", "Term"),
    "year": ("Năm", "Year"),
    "kind": ("Loại tư liệu", "Kind"),
    "organisation": ("Cơ quan", "Organisation"),
    "person": ("Người", "Person"),
}
KIND_LABELS = {"video": ("Video", "Video"), "photo": ("Ảnh", "Photo"), "audio": ("Âm thanh", "Audio")}
PAGE_SIZE = 20
MAX_OFFSET = 10_000 - PAGE_SIZE  # the search API pages deeper with its cursor only


def _search_params(request: Request) -> tuple[dict[str, Any], int]:
    """What the search page passes on to the search API (repeated filters kept as lists), and
    the position of the page's first result. Pages up to 10 000 use offsets; deeper ones the
    API's signed cursor (``at`` only tells the page where it is)."""
    query = request.query_params
    params: dict[str, Any] = {"q": query.get("q", "")[:500]}
    for name in FILTER_NAMES:
        values = [v for v in query.getlist(name) if v][:20]
        if values:
            params[name] = values
    year = query.get("year", "")
    if year.isdigit() and len(year) == 4:
        params["date_from"], params["date_to"] = f"{year}-01-01", f"{year}-12-31"
    for name in ("sort", "order"):
        if query.get(name):
            params[name] = query[name][:20]

    def position(name: str) -> int:
        value = query.get(name, "0")
        return int(value) if value.isdigit() and len(value) < 9 else 0

    if query.get("cursor"):
        params["cursor"] = query["cursor"][:2000]
        return params, position("at")
    params["offset"] = min(position("offset"), MAX_OFFSET)
    return params, params["offset"]


def _link(request: Request, **changes: Any) -> str:
    """This search with some parameters changed (None removes one); a new filter starts at page one."""
    paging = ("cursor", "at", "offset")
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes and k not in paging]
    for key, value in changes.items():
        if value is None:
            continue
        for one in value if isinstance(value, list) else [value]:
            items.append((key, str(one)))
    return "/search?" + urlencode(items)


def _toggle(request: Request, name: str, value: str) -> str:
    chosen = request.query_params.getlist(name)
    if name == "year":
        return _link(request, year=None if value in chosen else value)
    new = [v for v in chosen if v != value] if value in chosen else [*chosen, value]
    return _link(request, **{name: new})


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
async def search_page(request: Request, who: Searcher) -> HTMLResponse:
    api = backend(request)
    params, shown = _search_params(request)
    result: dict[str, Any] = {"total": 0, "hits": [], "facets": {}, "next_cursor": None}
    error: tuple[str, str] | None = None
    try:
        result = await api.get("search", "/v1/search", size=PAGE_SIZE, **params)
    except ApiRefused as refused:
        error = (refused.message_vi, refused.message_en)
    chosen = {name: request.query_params.getlist(name) for name in (*FILTER_NAMES, "year")}
    context = {
        "q": params["q"],
        "result": result,
        "error": error,
        "chosen": chosen,
        "facet_titles": FACET_TITLES,
        "kind_labels": KIND_LABELS,
        "toggle": lambda name, value: _toggle(request, name, str(value)),
        "link": lambda **changes: _link(request, **changes),
        "offset": shown,
        "deep": "cursor" in params,
        "max_offset": MAX_OFFSET,
        "page_size": PAGE_SIZE,
        "sort": params.get("sort", ""),
        "suggestion": _suggestion(params["q"], result),
        "is_filtered": any(chosen.values()),
    }
    template = "search_results.html" if is_htmx(request) else "search.html"
    return page(request, template, **context)


def _suggestion(q: str, result: dict[str, Any]) -> str | None:
    """No results: the query without its diacritics (the index matches both), else nothing."""
    if result.get("total") or not q.strip():
        return None
    from shared.text import fold

    folded = fold(q)
    return folded if folded != q else None


# --- one asset ----------------------------------------------------------------------------------


@router.get("/assets/{asset_id}", response_class=HTMLResponse, include_in_schema=False)
async def asset_page(request: Request, asset_id: str, who: Reader) -> HTMLResponse:
    return await _asset_view(request, asset_id)


async def _asset_view(request: Request, asset_id: str, status: int = 200, **extra: Any) -> HTMLResponse:
    """The asset page: the asset and its events (ingest), tags (catalogue), renditions and
    history (search), fetched side by side; a section the user may not see is left out."""
    api = backend(request)
    path = quote(asset_id)
    try:
        asset = await api.get("ingest", f"/v1/assets/{path}")
    except ApiRefused as refused:
        return page(request, "error.html", refused.status, message=(refused.message_vi, refused.message_en))
    user = current_user(request)
    nothing = asyncio.sleep(0, None)
    tags, renditions, history, activities, collections = await asyncio.gather(
        api.optional("catalogue", f"/v1/assets/{path}/tags"),
        api.optional("search", f"/v1/assets/{path}/renditions"),
        api.optional("search", f"/v1/assets/{path}/history"),
        api.optional("catalogue", "/v1/activities") if user.may(Action.ASSET_EDIT) else nothing,
        api.optional("catalogue", "/v1/collections") if user.may(Action.COLLECTION_EDIT) else asyncio.sleep(0, None),
    )
    events = (history or {}).get("events", [])
    publication = publication_of(events)
    context: dict[str, Any] = {
        "may_correct": may_correct(user.principal, asset, publication),
        "publication": publication,
        "asset": asset,
        "asset_id": asset_id,
        "tags": tags or {},
        "renditions": (renditions or {}).get("renditions", {}),
        "processing": renditions or {},
        "history": events,
        "activities": (activities or {}).get("activities", []),
        "collections": (collections or {}).get("collections", []),
        "saved": request.query_params.get("saved"),
        "errors": {},
        "message": None,
        "form": {},
        "restrictions": [r.value for r in Restriction],
    }
    return page(request, "asset.html", status, **{**context, **extra})


def may_correct(who: Principal, asset: dict[str, Any], publication: dict[str, Any]) -> bool:
    """Whether the edit form is offered: to archivists, and to a broadcaster on their own
    upload until it is published (the catalogue decides again on every edit)."""
    if allowed(who, Action.ASSET_EDIT):
        return True
    own = asset.get("ingested_by") == who.subject
    return allowed(who, Action.ASSET_CORRECT) and own and not publication.get("published")


def publication_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the asset is published, and its window, as its last publishing event says;
    ``published_since``: when it went out (its ``publish_at``, else — published at once — when
    that was recorded; a new window without a start keeps the old date), as shared.publication folds it."""
    state: dict[str, Any] = {"published": False}
    for event in events:
        if event.get("type") == "asset.published":
            payload = event.get("payload") or {}
            kept = state.get("published_since") if state["published"] and not payload.get("publish_at") else None
            state = {
                "published": True,
                **{k: payload.get(k) for k in ("publish_at", "unpublish_at", "restriction")},
                "published_since": payload.get("publish_at") or kept or event.get("occurred_at"),
            }
        elif event.get("type") == "asset.unpublished":
            state = {"published": False}
    return state


MEDIA_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges", "etag", "last-modified")


@router.get("/media/{asset_id}/{rendition}", include_in_schema=False)
async def media(request: Request, asset_id: str, rendition: str, who: Reader) -> Response:
    """A rendition's bytes through this service, byte ranges included (seeking): the
    browser never needs to reach the S3 server, whose address may be internal. The
    search API decides whether this user may see the asset and presigns the URL."""
    api = backend(request)
    listing = await api.optional("search", f"/v1/assets/{quote(asset_id)}/renditions")
    item = ((listing or {}).get("renditions") or {}).get(rendition)
    if not item or not item.get("url"):
        raise UserError(404, "rendition_not_found", "Không có bản xem này.", "No such rendition.")
    return await stream_through(request, item["url"])


async def stream_through(request: Request, url: str, **extra_headers: str) -> Response:
    """An S3 object at a presigned ``url`` streamed to the browser, byte ranges included."""
    deps: WebDeps = request.app.state.deps
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("range", "if-none-match", "if-range")}
    upstream = await deps.http.send(deps.http.build_request("GET", url, headers=headers), stream=True)
    if upstream.status_code >= 400 and upstream.status_code != 416:
        await upstream.aclose()
        raise UserError(502, "media_unavailable", "Không đọc được tệp media.", "The media file cannot be read.")
    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() in MEDIA_HEADERS}
    out_headers["Cache-Control"] = "private, max-age=300"
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers={**out_headers, **extra_headers},
        background=BackgroundTask(upstream.aclose),
    )


def _form_text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _asset_action(request: Request, asset_id: str, call: Any, saved: str) -> Response:
    """Run one edit through the API; back to the asset page, or the page again with the API's
    message next to the field it names and what was typed kept."""
    try:
        await call
    except ApiRefused as refused:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        message = (refused.message_vi, refused.message_en)
        return await _asset_view(request, asset_id, 422, errors=refused.fields, message=message, form=form)
    return RedirectResponse(f"/assets/{quote(asset_id)}?saved={saved}", status_code=303)


@router.post("/assets/{asset_id}/metadata", include_in_schema=False)
async def edit_metadata(request: Request, asset_id: str, who: Corrector) -> Response:
    form = await request.form()
    body: dict[str, Any] = {}
    # Only what the archivist (or the broadcaster, on their own upload) changed — each form
    # field carries the value it was shown with: an untouched field stays automatic, free
    # to follow a later re-tag.
    for name in ("title", "caption", "activity_type", "people"):
        value = _form_text(form, name)
        if value == _form_text(form, f"shown_{name}"):
            continue
        if name == "people":
            body[name] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            body[name] = value
    if not body:
        return RedirectResponse(f"/assets/{quote(asset_id)}?saved=unchanged", status_code=303)
    if _form_text(form, "note"):
        body["note"] = _form_text(form, "note")
    call = backend(request).json("catalogue", "PATCH", f"/v1/assets/{quote(asset_id)}/metadata", json=body)
    return await _asset_action(request, asset_id, call, "metadata")


@router.post("/assets/{asset_id}/activity", include_in_schema=False)
async def assign_activity(request: Request, asset_id: str, who: Editor) -> Response:
    form = await request.form()
    activity = _form_text(form, "activity_id") or None
    call = backend(request).json(
        "catalogue", "PUT", f"/v1/assets/{quote(asset_id)}/activity", json={"activity_id": activity}
    )
    return await _asset_action(request, asset_id, call, "activity")


def _local_moment(day: str, time: str) -> str | None:
    """A date (yyyy-mm-dd from the date picker, or dd/mm/yyyy typed) and time as an ISO
    moment in Vietnam time; the API holds it in UTC."""
    if not day:
        return None
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", day)
    if match:
        day = f"{match[3]}-{int(match[2]):02d}-{int(match[1]):02d}"
    try:
        moment = datetime.fromisoformat(f"{day}T{time or '00:00'}")
    except ValueError:
        return day  # the API says what is wrong with it, next to the field
    return moment.replace(tzinfo=i18n.VIETNAM).isoformat()


@router.post("/assets/{asset_id}/publication", include_in_schema=False)
async def publish(request: Request, asset_id: str, who: Publisher) -> Response:
    form = await request.form()
    api = backend(request)
    if _form_text(form, "unpublish") == "1":
        call = api.json("catalogue", "DELETE", f"/v1/assets/{quote(asset_id)}/publication")
        return await _asset_action(request, asset_id, call, "unpublished")
    body: dict[str, Any] = {}
    publish_at = _local_moment(_form_text(form, "publish_day"), _form_text(form, "publish_time"))
    unpublish_at = _local_moment(_form_text(form, "unpublish_day"), _form_text(form, "unpublish_time"))
    if publish_at:
        body["publish_at"] = publish_at
    if unpublish_at:
        body["unpublish_at"] = unpublish_at
    if _form_text(form, "restriction"):
        body["restriction"] = _form_text(form, "restriction")
    call = api.json("catalogue", "PUT", f"/v1/assets/{quote(asset_id)}/publication", json=body)
    return await _asset_action(request, asset_id, call, "published")


# --- activities by term ---------------------------------------------------------------------------


@router.get("/activities", response_class=HTMLResponse, include_in_schema=False)
async def activities_page(request: Request, who: ActivityReader) -> HTMLResponse:
    api = backend(request)
    term = request.query_params.get("term", "")
    listing = await api.get("catalogue", "/v1/activities", term=term or None)
    return page(request, "activities.html", activities=listing.get("activities", []), term=term)


# --- uploads (the ingest API's one-request upload; resumable uploads replace it when they land) ---


@router.get("/upload", response_class=HTMLResponse, include_in_schema=False)
async def upload_page(request: Request, who: Uploader) -> HTMLResponse:
    api = backend(request)
    newest, uploads = await asyncio.gather(
        api.optional("search", "/v1/search", sort="uploaded", size=20, uploader="me"),
        api.optional("ingest", "/v1/uploads"),
    )
    mine = (newest or {}).get("hits", [])
    # ``chunk_kib``: a smaller tus chunk (the browser tests' dropped connection and reload).
    chunk = request.query_params.get("chunk_kib", "")
    chunk_bytes = int(chunk) * 1024 if chunk.isdigit() and 64 <= int(chunk) <= 65536 else 8 * 1024 * 1024
    return page(
        request, "upload.html", mine=mine[:20], uploads=(uploads or {}).get("uploads", [])[:20], chunk=chunk_bytes
    )


# --- administration -----------------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
async def users_page(request: Request, who: AccountsAdmin) -> HTMLResponse:
    return await _users(request)


async def _users(
    request: Request,
    status: int = 200,
    errors: dict[str, tuple[str, str]] | None = None,
    message: tuple[str, str] | None = None,
    form: dict[str, Any] | None = None,
    created_key: dict[str, Any] | None = None,
) -> HTMLResponse:
    api = backend(request)
    users, keys = await asyncio.gather(api.get("accounts", "/v1/users"), api.get("accounts", "/v1/api-keys"))
    return page(
        request,
        "admin_users.html",
        status,
        users=users.get("users", []),
        api_keys=keys.get("api_keys", []),
        roles=[r for r in Role if r is not Role.PUBLIC],
        errors=errors or {},
        message=message,
        form=form or {},
        created_key=created_key,
        saved=request.query_params.get("saved"),
    )


@router.post("/admin/users", include_in_schema=False)
async def create_user(request: Request, who: AccountsAdmin) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str) and k != CSRF_FIELD}
    errors: dict[str, tuple[str, str]] = {}
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,63}", form.get("username", "").strip().lower()):
        errors["username"] = (
            "Tên đăng nhập gồm 2–64 chữ thường không dấu, số, dấu chấm, gạch ngang.",
            "A user name is 2–64 lower-case letters without diacritics, digits, dots, dashes.",
        )
    if not form.get("display_name", "").strip():
        errors["display_name"] = ("Hãy nhập họ và tên.", "Enter the person's name.")
    if len(form.get("password", "")) < 12:
        errors["password"] = ("Mật khẩu cần ít nhất 12 ký tự.", "A password needs at least 12 characters.")
    if errors:
        return await _users(request, 422, errors, None, form)
    body = {
        "username": form["username"].strip().lower(),
        "display_name": form["display_name"].strip(),
        "role": form.get("role", ""),
        "password": form["password"],
    }
    try:
        await backend(request).json("accounts", "POST", "/v1/users", json=body)
    except ApiRefused as refused:
        return await _users(request, 422, refused.fields, (refused.message_vi, refused.message_en), form)
    return RedirectResponse("/admin/users?saved=user", status_code=303)


@router.post("/admin/users/{username}", include_in_schema=False)
async def edit_user(request: Request, username: str, who: AccountsAdmin) -> Response:
    form = await request.form()
    body: dict[str, Any] = {}
    if _form_text(form, "role"):
        body["role"] = _form_text(form, "role")
    if _form_text(form, "active") in ("true", "false"):
        body["active"] = _form_text(form, "active") == "true"
    try:
        await backend(request).json("accounts", "PATCH", f"/v1/users/{quote(username)}", json=body)
    except ApiRefused as refused:
        return await _users(request, 422, {}, (refused.message_vi, refused.message_en))
    return RedirectResponse("/admin/users?saved=user", status_code=303)


@router.post("/admin/api-keys", include_in_schema=False)
async def create_api_key(request: Request, who: AccountsAdmin) -> Response:
    form = await request.form()
    body = {"name": _form_text(form, "name"), "role": _form_text(form, "role")}
    if not body["name"]:
        return await _users(request, 422, {"key_name": ("Hãy đặt tên cho khóa.", "Name the key.")})
    try:
        created = await backend(request).json("accounts", "POST", "/v1/api-keys", json=body)
    except ApiRefused as refused:
        return await _users(request, 422, {}, (refused.message_vi, refused.message_en))
    return await _users(request, created_key=created)


@router.post("/admin/api-keys/{key_id}/revoke", include_in_schema=False)
async def revoke_api_key(request: Request, key_id: str, who: AccountsAdmin) -> Response:
    try:
        await backend(request).json("accounts", "DELETE", f"/v1/api-keys/{quote(key_id)}")
    except ApiRefused as refused:
        return await _users(request, 422, {}, (refused.message_vi, refused.message_en))
    return RedirectResponse("/admin/users?saved=key", status_code=303)
