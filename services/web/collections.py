"""Collections (bộ sưu tập): list and create (catalogue API), a collection's page and its
ZIP export (search API), adding an asset from its page."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web.api import _asset_view, _form_text, backend, page, stream_through
from services.web.backend import ApiRefused
from services.web.session import page_requires
from shared.auth import Principal
from shared.http import UserError
from shared.policy import Action

router = APIRouter()
CollectionReader = Annotated[Principal, Depends(page_requires(Action.COLLECTION_READ))]
CollectionEditor = Annotated[Principal, Depends(page_requires(Action.COLLECTION_EDIT))]
KINDS = {
    "annual": ("Tổng kết năm", "Annual review"),
    "thematic": ("Chuyên đề", "Thematic"),
    "term": ("Nhiệm kỳ", "Term"),
    "other": ("Khác", "Other"),
}
EXPORT_STATES = {
    "queued": ("Đang chờ", "Queued"),
    "running": ("Đang xuất", "Exporting"),
    "ready": ("Sẵn sàng tải về", "Ready to download"),
    "failed": ("Xuất thất bại", "Failed"),
    "expired": ("Đã hết hạn", "Expired"),
}


@router.get("/collections", response_class=HTMLResponse, include_in_schema=False)
async def collections_page(request: Request, who: CollectionReader) -> HTMLResponse:
    return await _collections(request)


async def _collections(
    request: Request,
    status: int = 200,
    errors: dict[str, tuple[str, str]] | None = None,
    message: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    listing = await backend(request).get("catalogue", "/v1/collections")
    return page(
        request,
        "collections.html",
        status,
        collections=listing.get("collections", []),
        kinds=KINDS,
        errors=errors or {},
        message=message,
        form=form or {},
    )


@router.post("/collections", include_in_schema=False)
async def create_collection(request: Request, who: CollectionEditor) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    errors: dict[str, tuple[str, str]] = {}
    if not form.get("title", "").strip():
        errors["title"] = ("Hãy đặt tên bộ sưu tập.", "Give the collection a title.")
    year = form.get("year", "").strip()
    if year and not (year.isdigit() and len(year) == 4):
        errors["year"] = ("Năm phải là số có 4 chữ số, ví dụ 2024.", "The year is four digits, e.g. 2024.")
    if errors:
        return await _collections(request, 422, errors, None, form)
    body: dict[str, Any] = {
        "kind": form.get("kind", "other"),
        "title": form["title"].strip(),
        "description": form.get("description", "").strip(),
    }
    if year:
        body["year"] = int(year)
    try:
        made = await backend(request).json("catalogue", "POST", "/v1/collections", json=body)
    except ApiRefused as refused:
        return await _collections(request, 422, refused.fields, (refused.message_vi, refused.message_en), form)
    return RedirectResponse(f"/collections/{quote(made['collection_id'])}", status_code=303)


@router.get("/collections/{collection_id}", response_class=HTMLResponse, include_in_schema=False)
async def collection_page(request: Request, collection_id: str, who: CollectionReader) -> HTMLResponse:
    offset = request.query_params.get("offset", "0")
    start = int(offset) if offset.isdigit() and len(offset) < 7 else 0
    try:
        shown = await backend(request).get(
            "search", f"/v1/collections/{quote(collection_id)}/page", size=50, offset=start
        )
    except ApiRefused as refused:
        return page(request, "error.html", refused.status, message=(refused.message_vi, refused.message_en))
    return page(
        request,
        "collection.html",
        shown=shown,
        collection_id=collection_id,
        kinds=KINDS,
        offset=start,
        export_id=request.query_params.get("export", ""),
    )


@router.post("/collections/{collection_id}/exports", include_in_schema=False)
async def start_export(request: Request, collection_id: str, who: CollectionReader) -> Response:
    form = await request.form()
    media = _form_text(form, "media") or "web"
    path = f"/v1/collections/{quote(collection_id)}/exports"
    try:
        started = await backend(request).json("search", "POST", path, json={"media": media})
    except ApiRefused as refused:
        return page(request, "error.html", refused.status, message=(refused.message_vi, refused.message_en))
    return RedirectResponse(
        f"/collections/{quote(collection_id)}?export={quote(started['export_id'])}", status_code=303
    )


@router.get("/collections/{collection_id}/exports/{export_id}", response_class=HTMLResponse, include_in_schema=False)
async def export_status(request: Request, collection_id: str, export_id: str, who: CollectionReader) -> HTMLResponse:
    """The export's progress (polled by the page while it runs)."""
    status = await backend(request).get("search", f"/v1/collections/{quote(collection_id)}/exports/{quote(export_id)}")
    return page(request, "collection_export.html", export=status, collection_id=collection_id, states=EXPORT_STATES)


@router.get("/collections/{collection_id}/exports/{export_id}/zip", include_in_schema=False)
async def export_download(request: Request, collection_id: str, export_id: str, who: CollectionReader) -> Response:
    status = await backend(request).get("search", f"/v1/collections/{quote(collection_id)}/exports/{quote(export_id)}")
    if status.get("state") != "ready" or not status.get("url"):
        raise UserError(404, "export_not_ready", "Bản xuất chưa sẵn sàng.", "The export is not ready.")
    name = f"{collection_id}.zip"
    return await stream_through(request, status["url"], **{"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/assets/{asset_id}/collection", include_in_schema=False)
async def add_to_collection(request: Request, asset_id: str, who: CollectionEditor) -> Response:
    form = await request.form()
    collection_id = _form_text(form, "collection_id")
    if not collection_id:
        errors = {"collection_id": ("Hãy chọn một bộ sưu tập.", "Choose a collection.")}
        return await _asset_view(request, asset_id, 422, errors=errors)
    body = {"items": [{"asset_id": asset_id, "note": _form_text(form, "collection_note")}]}
    try:
        await backend(request).json("catalogue", "POST", f"/v1/collections/{quote(collection_id)}/assets", json=body)
    except ApiRefused as refused:
        message = (refused.message_vi, refused.message_en)
        return await _asset_view(request, asset_id, 422, errors=refused.fields, message=message)
    return RedirectResponse(f"/assets/{quote(asset_id)}?saved=collection", status_code=303)
