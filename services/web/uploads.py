"""Resumable uploads from the browser: tus-js-client talks tus 1.0 to ``/tus`` here, and
each request goes on, streamed, to the ingest service's ``/v1/uploads`` as the signed-in
user. The browser never holds a token (the session cookies are HttpOnly) and needs no
cross-origin access to the ingest service; ``Location`` is rewritten to this site.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request, Response

from services.web.api import WebDeps, backend
from services.web.session import current_user, page_requires, renewed_user
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
    user = current_user(request)
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    body = request.stream() if has_body else None
    answer = await _send(deps, request.method, path, {**headers, **user.headers}, body)
    if answer.status_code == 401 and user.from_cookie:
        # The token was revoked before its expiry (another role, a new password): ingest
        # refused it before acting. The session is renewed (the new cookies go out with
        # this answer) and a request without a body is sent again; a body already went
        # (part of it) to ingest, so the client is asked to send it again: tus-js-client
        # retries a 409 by asking for the offset first.
        renewed = await renewed_user(request)
        if renewed is not None and body is None:
            answer = await _send(deps, request.method, path, {**headers, **renewed.headers}, None)
        elif renewed is not None:
            raise UserError(
                409,
                "session_renewed",
                "Phiên đăng nhập vừa được làm mới (quyền của tài khoản đã thay đổi); phần dữ liệu này sẽ được gửi lại.",
                "The sign-in was renewed (the account's role changed); this part of the upload is to be sent again.",
            )
    out = {k: v for k, v in answer.headers.items() if k.lower() in FORWARDED_RESPONSE}
    location = answer.headers.get("location")
    if location:
        out["Location"] = f"{TUS_PATH}/{location.rstrip('/').rsplit('/', 1)[-1]}"
    return Response(answer.content, status_code=answer.status_code, headers=out)


async def _send(
    deps: WebDeps, method: str, path: str, headers: dict[str, str], body: AsyncIterator[bytes] | None
) -> httpx.Response:
    try:
        return await deps.http.request(
            method,
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
