"""Resumable uploads from the browser: tus-js-client talks tus 1.0 to ``/tus`` here, and
each request goes on, streamed, to the ingest service's ``/v1/uploads`` as the signed-in
user. The browser never holds a token (the session cookies are HttpOnly) and needs no
cross-origin access to the ingest service; ``Location`` is rewritten to this site.
"""

from __future__ import annotations

import re
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request, Response

from services.web.api import WebDeps, backend
from services.web.session import current_user, page_requires
from shared.auth import Principal
from shared.http import UserError
from shared.policy import Action

router = APIRouter()
Uploader = Annotated[Principal, Depends(page_requires(Action.ASSET_UPLOAD))]

# What a tus client sends and reads (the ingest service's own lists, less CORS's).
FORWARDED_REQUEST = (
    "tus-resumable",
    "upload-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
    "upload-defer-length",
    "upload-concat",
    "content-type",
    "content-length",
)
FORWARDED_RESPONSE = (
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "content-type",
    "cache-control",
)
TUS_PATH = "/tus"


def streams_its_body(method: str, path: str) -> bool:
    """The tus routes: their bodies go on to ingest as they arrive (ingest bounds them)."""
    return path == TUS_PATH or path.startswith(f"{TUS_PATH}/")


_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _checked(upload_id: str) -> str:
    if not _UPLOAD_ID.match(upload_id):
        raise UserError(404, "upload_not_found", "Không có lượt tải lên này.", "No such upload.")
    return upload_id


async def _forward(request: Request, path: str) -> Response:
    deps: WebDeps = request.app.state.deps
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST}
    headers.update(current_user(request).headers)
    body = request.stream() if request.method in ("POST", "PATCH") else None
    try:
        answer = await deps.http.request(
            request.method,
            f"{deps.urls['ingest']}/v1/uploads{path}",
            headers=headers,
            content=body,
            timeout=httpx.Timeout(None, connect=5.0),
        )
    except httpx.HTTPError as exc:
        raise UserError(
            502,
            "service_unavailable",
            "Dịch vụ tiếp nhận đang không trả lời; việc tải lên sẽ tự tiếp tục khi có lại kết nối.",
            "The ingest service is not answering; the upload resumes by itself once it is back.",
        ) from exc
    out = {k: v for k, v in answer.headers.items() if k.lower() in FORWARDED_RESPONSE}
    location = answer.headers.get("location")
    if location:
        out["Location"] = f"{TUS_PATH}/{location.rstrip('/').rsplit('/', 1)[-1]}"
    return Response(answer.content, status_code=answer.status_code, headers=out)


@router.post(TUS_PATH, include_in_schema=False)
async def create(request: Request, who: Uploader) -> Response:
    return await _forward(request, "")


@router.head(TUS_PATH + "/{upload_id}", include_in_schema=False)
async def offset(request: Request, upload_id: str, who: Uploader) -> Response:
    return await _forward(request, f"/{_checked(upload_id)}")


@router.patch(TUS_PATH + "/{upload_id}", include_in_schema=False)
async def append(request: Request, upload_id: str, who: Uploader) -> Response:
    return await _forward(request, f"/{_checked(upload_id)}")


@router.delete(TUS_PATH + "/{upload_id}", include_in_schema=False)
async def cancel(request: Request, upload_id: str, who: Uploader) -> Response:
    return await _forward(request, f"/{_checked(upload_id)}")


@router.get(TUS_PATH + "/{upload_id}", include_in_schema=False)
async def status(request: Request, upload_id: str, who: Uploader) -> Response:
    """The upload's state once sent (verifying → stored with its asset id, or rejected and why)."""
    answer = await backend(request).call("ingest", "GET", f"/v1/uploads/{_checked(upload_id)}")
    return Response(answer.content, status_code=answer.status_code, media_type="application/json")
