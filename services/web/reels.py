"""The producer's reel builder: pages over the reels service's API (services/reels).

Segments are typed as timecodes ``hh:mm:ss.ff`` (25 frames a second, the reels' frame
rate) or set from the player with the I and O keys; the API holds seconds.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from services.web.api import MEDIA_HEADERS, WebDeps, backend, is_htmx, page
from services.web.backend import ApiRefused
from shared.auth import Principal
from shared.http import UserError
from shared.policy import Action

from services.web.session import page_requires  # isort: skip

router = APIRouter()
ReelReader = Annotated[Principal, Depends(page_requires(Action.REEL_READ))]
ReelEditor = Annotated[Principal, Depends(page_requires(Action.REEL_EDIT))]

FPS = 25
_TIMECODE = re.compile(r"^(\d{1,2}):([0-5]\d):([0-5]\d)(?:[.:](\d{1,2}))?$")
STATUS_LABELS = {
    "draft": ("Bản nháp", "Draft"),
    "queued": ("Đang chờ dựng", "Queued"),
    "rendering": ("Đang dựng", "Rendering"),
    "rendered": ("Đã dựng xong", "Rendered"),
    "failed": ("Dựng thất bại", "Failed"),
}
RUNNING = {"queued", "rendering"}


def timecode(seconds: float | int | None) -> str:
    """hh:mm:ss.ff at 25 frames a second."""
    frames = round(float(seconds or 0) * FPS)
    secs, ff = divmod(frames, FPS)
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{ff:02d}"


def parse_timecode(text: str) -> float | None:
    """Seconds of ``hh:mm:ss.ff`` (or ``hh:mm:ss``); None when it is not one."""
    match = _TIMECODE.match(text.strip())
    if match is None:
        return None
    hours, minutes, secs, frames = match.groups()
    ff = int(frames or 0)
    if ff >= FPS:
        return None
    return round(int(hours) * 3600 + int(minutes) * 60 + int(secs) + ff / FPS, 3)


def _bad_timecode() -> tuple[str, str]:
    return (
        "Mã thời gian phải viết hh:mm:ss.ff (khung hình 00–24), ví dụ 00:01:05.12.",
        "Write the timecode as hh:mm:ss.ff (frames 00–24), e.g. 00:01:05.12.",
    )


def segments_from_form(form: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]], list[dict[str, str]]]:
    """The segments typed in the builder: API items, problems per field (``in-2``), and the rows as typed."""
    ids, ins, outs, captions = (form.getlist(name) for name in ("asset_id", "in", "out", "caption"))
    items: list[dict[str, Any]] = []
    errors: dict[str, tuple[str, str]] = {}
    rows: list[dict[str, str]] = []
    for n, (asset_id, start, end, caption) in enumerate(zip(ids, ins, outs, captions, strict=False)):
        row = {"asset_id": str(asset_id), "in": str(start), "out": str(end), "caption": str(caption)}
        rows.append(row)
        in_s, out_s = parse_timecode(row["in"]), parse_timecode(row["out"])
        if in_s is None:
            errors[f"in-{n}"] = _bad_timecode()
        if out_s is None:
            errors[f"out-{n}"] = _bad_timecode()
        if in_s is not None and out_s is not None and out_s <= in_s:
            errors[f"out-{n}"] = ("Điểm ra phải sau điểm vào.", "The out point must come after the in point.")
        if in_s is not None and out_s is not None:
            items.append({"asset_id": row["asset_id"], "in_s": in_s, "out_s": out_s, "caption": row["caption"].strip()})
    return items, errors, rows


@router.get("/reels", response_class=HTMLResponse, include_in_schema=False)
async def reels_page(request: Request, who: ReelReader) -> HTMLResponse:
    return await _reels(request)


async def _reels(
    request: Request,
    status: int = 200,
    errors: dict[str, tuple[str, str]] | None = None,
    message: tuple[str, str] | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    listing = await backend(request).get("reels", "/v1/reels")
    return page(
        request,
        "reels.html",
        status,
        reels=listing.get("reels", []),
        status_labels=STATUS_LABELS,
        errors=errors or {},
        message=message,
        form=form or {},
    )


def _plain(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/reels", include_in_schema=False)
async def create_reel(request: Request, who: ReelEditor) -> Response:
    form = _plain(await request.form())
    title = form.get("title", "").strip()
    if not title:
        return await _reels(request, 422, {"title": ("Hãy đặt tên phim.", "Give the reel a title.")}, form=form)
    body = {"title": title, "subtitle": form.get("subtitle", "").strip()}
    try:
        reel = await backend(request).json("reels", "POST", "/v1/reels", json=body)
    except ApiRefused as refused:
        return await _reels(request, 422, refused.fields, (refused.message_vi, refused.message_en), form)
    return RedirectResponse(f"/reels/{quote(reel['reel_id'])}", status_code=303)


@router.post("/reels/draft", include_in_schema=False)
async def draft_reel(request: Request, who: ReelEditor) -> Response:
    """A reel drafted from a search: one clip per activity of, say, 2023."""
    form = await request.form()
    plain = _plain(form)
    errors: dict[str, tuple[str, str]] = {}
    title = plain.get("draft_title", "").strip()
    if not title:
        errors["draft_title"] = ("Hãy đặt tên phim.", "Give the reel a title.")
    year = plain.get("year", "").strip()
    if year and not (year.isdigit() and 1945 <= int(year) <= 2100):
        errors["year"] = ("Năm phải là số có 4 chữ số, ví dụ 2023.", "The year is four digits, e.g. 2023.")
    if errors:
        return await _reels(request, 422, errors, form=plain)
    body: dict[str, Any] = {
        "title": title,
        "q": plain.get("q", "").strip(),
        "activity_type": [v for v in form.getlist("activity_type") if isinstance(v, str) and v],
        "rule": "one_per_activity",
    }
    if year:
        body["year"] = int(year)
    try:
        reel = await backend(request).json("reels", "POST", "/v1/reels/draft", json=body)
    except ApiRefused as refused:
        return await _reels(request, 422, refused.fields, (refused.message_vi, refused.message_en), plain)
    return RedirectResponse(f"/reels/{quote(reel['reel_id'])}", status_code=303)


async def _titles(request: Request, asset_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each segment's asset as ingest knows it (title, kind, duration), fetched side by side."""
    api = backend(request)
    unique = list(dict.fromkeys(asset_ids))[:100]
    found = await asyncio.gather(*(api.optional("ingest", f"/v1/assets/{quote(a)}") for a in unique))
    return {a: (f or {}) for a, f in zip(unique, found, strict=True)}


@router.get("/reels/{reel_id}", response_class=HTMLResponse, include_in_schema=False)
async def reel_page(request: Request, reel_id: str, who: ReelReader) -> HTMLResponse:
    return await _reel(request, reel_id)


async def _reel(
    request: Request,
    reel_id: str,
    status: int = 200,
    errors: dict[str, tuple[str, str]] | None = None,
    message: tuple[str, str] | None = None,
    rows: list[dict[str, str]] | None = None,
) -> HTMLResponse:
    api = backend(request)
    try:
        reel = await api.get("reels", f"/v1/reels/{quote(reel_id)}")
    except ApiRefused as refused:
        return page(request, "error.html", refused.status, message=(refused.message_vi, refused.message_en))
    if rows is None:
        rows = [
            {"asset_id": i["asset_id"], "in": timecode(i["in_s"]), "out": timecode(i["out_s"]), "caption": i["caption"]}
            for i in reel.get("items", [])
        ]
    assets = await _titles(request, [r["asset_id"] for r in rows])
    template = "reel_progress.html" if is_htmx(request) else "reel.html"
    return page(
        request,
        template,
        status,
        reel=reel,
        rows=rows,
        assets=assets,
        errors=errors or {},
        message=message,
        status_labels=STATUS_LABELS,
        running=reel.get("status") in RUNNING,
        timecode=timecode,
    )


@router.get("/reels/{reel_id}/progress", response_class=HTMLResponse, include_in_schema=False)
async def reel_progress(request: Request, reel_id: str, who: ReelReader) -> HTMLResponse:
    """The render's progress, polled by the page while it runs (htmx)."""
    reel = await backend(request).get("reels", f"/v1/reels/{quote(reel_id)}")
    return page(
        request,
        "reel_progress.html",
        reel=reel,
        status_labels=STATUS_LABELS,
        running=reel.get("status") in RUNNING,
    )


@router.post("/reels/{reel_id}/items", include_in_schema=False)
async def save_items(request: Request, reel_id: str, who: ReelEditor) -> Response:
    form = await request.form()
    items, errors, rows = segments_from_form(form)
    if errors:
        message = ("Có mã thời gian chưa đúng; xem các ô tô đỏ.", "Some timecodes are wrong; see the fields in red.")
        return await _reel(request, reel_id, 422, errors, message, rows)
    body: dict[str, Any] = {"items": items}
    version = form.get("version")
    if isinstance(version, str) and version.isdigit():
        body["version"] = int(version)
    try:
        await backend(request).json("reels", "PUT", f"/v1/reels/{quote(reel_id)}/items", json=body)
    except ApiRefused as refused:
        return await _reel(request, reel_id, 422, {}, (refused.message_vi, refused.message_en), rows)
    return RedirectResponse(f"/reels/{quote(reel_id)}?saved=1", status_code=303)


@router.post("/reels/{reel_id}/render", include_in_schema=False)
async def render_reel(request: Request, reel_id: str, who: ReelEditor) -> Response:
    try:
        await backend(request).json("reels", "POST", f"/v1/reels/{quote(reel_id)}/render")
    except ApiRefused as refused:
        return await _reel(request, reel_id, 422, {}, (refused.message_vi, refused.message_en))
    return RedirectResponse(f"/reels/{quote(reel_id)}", status_code=303)


@router.get("/reels/{reel_id}/output/{what}", include_in_schema=False)
async def reel_output(request: Request, reel_id: str, what: str, who: ReelReader) -> Response:
    """The rendered reel (``video``) or its chapters (``chapters``) streamed through this service,
    byte ranges included, like the assets' media."""
    reel = await backend(request).get("reels", f"/v1/reels/{quote(reel_id)}")
    output = reel.get("output") or {}
    url = {"video": output.get("url"), "chapters": output.get("chapters_url")}.get(what)
    if not url:
        raise UserError(404, "reel_output_not_found", "Phim chưa được dựng.", "The reel has not been rendered.")
    deps: WebDeps = request.app.state.deps
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("range", "if-none-match", "if-range")}
    upstream = await deps.http.send(deps.http.build_request("GET", url, headers=headers), stream=True)
    if upstream.status_code >= 400 and upstream.status_code != 416:
        await upstream.aclose()
        raise UserError(502, "media_unavailable", "Không đọc được tệp phim.", "The reel's file cannot be read.")
    out = {k: v for k, v in upstream.headers.items() if k.lower() in MEDIA_HEADERS}
    if request.query_params.get("download"):
        name = f"{reel_id}.mp4" if what == "video" else f"{reel_id}-chapters.txt"
        out["Content-Disposition"] = f'attachment; filename="{name}"'
    return StreamingResponse(
        upstream.aiter_raw(), status_code=upstream.status_code, headers=out, background=BackgroundTask(upstream.aclose)
    )


@router.get("/reels/{reel_id}/clips", response_class=HTMLResponse, include_in_schema=False)
async def clip_picker(request: Request, reel_id: str, who: ReelReader) -> HTMLResponse:
    """Search results to pick clips from (a partial the builder swaps in)."""
    q = request.query_params.get("q", "")[:500]
    found = await backend(request).optional("search", "/v1/search", q=q, size=20, facets="kind")
    return page(request, "reel_clips.html", hits=(found or {}).get("hits", []), q=q, reel_id=reel_id)
