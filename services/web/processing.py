"""The processing queue page (what is being transcoded or tagged, what failed and why, retry)
and the index rebuild button with its progress: pages over the search API's ``/v1/processing``
and ``/v1/projection/rebuild`` and the catalogue's retry and re-tag commands."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web.api import backend, is_htmx, page
from services.web.backend import ApiRefused
from services.web.session import page_requires
from shared.auth import Principal
from shared.http import UserError
from shared.policy import Action

router = APIRouter()
QueueReader = Annotated[Principal, Depends(page_requires(Action.PROCESSING_READ))]
Editor = Annotated[Principal, Depends(page_requires(Action.ASSET_EDIT))]
Operator = Annotated[Principal, Depends(page_requires(Action.OPERATIONS))]

STATES = {
    "all": ("Đang xử lý và lỗi", "In progress and failed"),
    "transcoding": ("Đang chuyển mã", "Transcoding"),
    "tagging": ("Đang gắn nhãn", "Tagging"),
    "failed": ("Lỗi", "Failed"),
    "transcode_failed": ("Chuyển mã lỗi", "Transcoding failed"),
    "tagging_failed": ("Gắn nhãn lỗi", "Tagging failed"),
}
KINDS = {"video": ("Video", "Video"), "photo": ("Ảnh", "Photo"), "audio": ("Âm thanh", "Audio")}
STATUS_LABELS = {
    "pending": ("Đang chờ xử lý", "Waiting"),
    "ready": ("Xong", "Done"),
    "tagged": ("Đã gắn nhãn", "Tagged"),
    "failed": ("Lỗi", "Failed"),
}
SAVED = {
    "retry": (
        "Đã yêu cầu xử lý lại; trạng thái sẽ cập nhật trong giây lát.",
        "Retry requested; the status updates shortly.",
    ),
    "retag": ("Đã yêu cầu gắn nhãn lại.", "Re-tagging requested."),
}


def _query(request: Request) -> dict[str, Any]:
    params = request.query_params
    state = params.get("state", "all")
    kind = params.get("kind", "")
    try:
        number = max(1, int(params.get("page", "1")))
    except ValueError:
        number = 1
    return {"state": state if state in STATES else "all", "kind": kind if kind in KINDS else "", "page": number}


@router.get("/processing", response_class=HTMLResponse, include_in_schema=False)
async def processing_page(request: Request, who: QueueReader) -> HTMLResponse:
    after = request.query_params.get("after", "")
    return await _queue_view(
        request,
        _query(request),
        saved=SAVED.get(request.query_params.get("saved", "")),
        after_seq=int(after) if after.isdigit() and len(after) < 19 else None,
    )


async def _queue_view(
    request: Request,
    query: dict[str, Any],
    status: int = 200,
    problem: tuple[str, str] | None = None,
    saved: tuple[str, str] | None = None,
    after_seq: int | None = None,
) -> HTMLResponse:
    result: dict[str, Any] = {"items": [], "counts": {}, "total": 0, "pages": 0}
    api = backend(request)
    params = {"state": query["state"], "kind": query["kind"], "page": query["page"], "size": 25}
    try:
        try:
            # The command just sent is shown (read your writes) …
            result = await api.get("search", "/v1/processing", **params, after_seq=after_seq)
        except UserError:
            if after_seq is None:
                raise
            # … unless the index is slow to catch up: then the queue as it is (the page refreshes).
            result = await api.get("search", "/v1/processing", **params)
    except ApiRefused as refused:
        problem = problem or (refused.message_vi, refused.message_en)
    counts = result.get("counts", {})
    filters = {k: v for k, v in query.items() if v and (k, v) not in (("state", "all"), ("page", 1))}
    context = {
        "query": query,
        "result": result,
        "counts": counts,
        # Refresh on its own while anything is still being transcoded or tagged (or was just sent).
        "in_flight": bool(counts.get("transcoding") or counts.get("tagging") or saved),
        "problem": problem,
        "saved": saved,
        "states": STATES,
        "kinds": KINDS,
        "status_labels": STATUS_LABELS,
        "self_url": "/processing" + ("?" + urlencode(filters) if filters else ""),
        "page_url": lambda n: "/processing?" + urlencode({**filters, "page": n}),
    }
    template = "processing_table.html" if is_htmx(request) else "processing.html"
    return page(request, template, status, **context)


async def _command(request: Request, call: Any, saved: str) -> Response:
    """Run one catalogue command; back to the queue with the same filters, or the queue again
    with the API's refusal (e.g. already retried) in Vietnamese."""
    form = await request.form()
    query = _query(request)
    for name in ("state", "kind"):
        value = form.get(name)
        if isinstance(value, str) and value in (STATES if name == "state" else KINDS):
            query[name] = value
    try:
        answer = await call
    except ApiRefused as refused:
        return await _queue_view(request, query, refused.status, problem=(refused.message_vi, refused.message_en))
    filters = {k: v for k, v in query.items() if v and k != "page" and (k, v) != ("state", "all")}
    after = {"after": answer["sequence"]} if isinstance(answer.get("sequence"), int) else {}
    return RedirectResponse("/processing?" + urlencode({**filters, "saved": saved, **after}), status_code=303)


@router.post("/processing/{asset_id}/retry", include_in_schema=False)
async def retry_processing(request: Request, asset_id: str, who: Editor) -> Response:
    call = backend(request).json("catalogue", "POST", f"/v1/assets/{quote(asset_id)}/processing/retry", json={})
    return await _command(request, call, "retry")


@router.post("/processing/{asset_id}/retag", include_in_schema=False)
async def retag(request: Request, asset_id: str, who: Editor) -> Response:
    call = backend(request).json(
        "catalogue", "POST", f"/v1/assets/{quote(asset_id)}/retag", json={"reason": "gắn nhãn lỗi, thử lại"}
    )
    return await _command(request, call, "retag")


# --- the index rebuild (admins) ---------------------------------------------------------------------

REBUILD_PHASES = {
    "starting": ("Đang bắt đầu", "Starting"),
    "replay": ("Đang đọc lại luồng sự kiện", "Replaying the event stream"),
    "catch-up": ("Đang bắt kịp sự kiện mới", "Catching up with new events"),
    "swap": ("Đang chuyển sang chỉ mục mới", "Switching to the new index"),
    "swapped": ("Đã chuyển sang chỉ mục mới", "Switched to the new index"),
    "after-swap": ("Đang ghi các sự kiện cuối", "Writing the last events"),
}
REBUILD_STATES = {
    "never": ("Chưa dựng lại lần nào từ giao diện.", "No rebuild started from here yet."),
    "running": ("Đang dựng lại chỉ mục…", "Rebuilding the index…"),
    "done": ("Lần dựng lại gần nhất đã xong.", "The last rebuild finished."),
    "failed": ("Lần dựng lại gần nhất thất bại.", "The last rebuild failed."),
    "interrupted": (
        "Lần dựng lại gần nhất bị gián đoạn (dịch vụ đã dừng); có thể bắt đầu lại.",
        "The last rebuild was interrupted (its service stopped); you may start again.",
    ),
}


async def rebuild_context(request: Request) -> dict[str, Any]:
    rebuild = await backend(request).optional("search", "/v1/projection/rebuild")
    return {"rebuild": rebuild, "rebuild_phases": REBUILD_PHASES, "rebuild_states": REBUILD_STATES}


@router.get("/admin/index", response_class=HTMLResponse, include_in_schema=False)
async def projection_page(request: Request, who: Operator) -> HTMLResponse:
    return await projection_view(request)


async def projection_view(request: Request, status: int = 200, problem: tuple[str, str] | None = None) -> HTMLResponse:
    """The index's health (parked writes), and the rebuild button with its progress."""
    health: dict[str, Any] | None = None
    try:
        health = await backend(request).get("search", "/v1/projection")
    except ApiRefused as refused:
        problem = problem or (refused.message_vi, refused.message_en)
    saved = request.query_params.get("saved") == "rebuild"
    context = await rebuild_context(request)
    return page(request, "admin_index.html", status, health=health, problem=problem, saved=saved, **context)


@router.get("/admin/index/rebuild", response_class=HTMLResponse, include_in_schema=False)
async def rebuild_progress(request: Request, who: Operator) -> HTMLResponse:
    return page(request, "rebuild_progress.html", **await rebuild_context(request))


@router.post("/admin/index/rebuild", include_in_schema=False)
async def start_rebuild(request: Request, who: Operator) -> Response:
    try:
        await backend(request).json("search", "POST", "/v1/projection/rebuild")
    except ApiRefused as refused:
        return await projection_view(request, refused.status, (refused.message_vi, refused.message_en))
    return RedirectResponse("/admin/index?saved=rebuild", status_code=303)
