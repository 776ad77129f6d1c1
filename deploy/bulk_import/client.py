"""The archive as a remote client sees it: tus uploads to ingest, and the asset lookups.

Uploads go through the ingest service's resumable endpoint (tus 1.0,
``{ingest}/v1/uploads``) with tuspy, chunk by chunk, each chunk checked with
its SHA-256 (tus checksum extension). After the last byte the server hashes,
probes and stores the file in the background; :meth:`ArchiveClient.wait_final`
polls ``GET`` on the upload until it says stored or rejected.

Credentials: a Bearer access token or an API key (``MAM_TOKEN``), or a sign-in
with user name and password (refreshed before the 5-minute access token ends,
so a long import keeps going).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader.uploader import Uploader

from shared.ids import asset_id_for_sha256

ProgressCallback = Callable[[int, int], None]


class ArchiveProblem(RuntimeError):
    """A problem with one file, in both languages (``code`` for reports)."""

    def __init__(self, code: str, message_vi: str, message_en: str) -> None:
        super().__init__(f"{message_vi} / {message_en}")
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en


class Sha256Uploader(Uploader):
    """tuspy's uploader with the checksum extension's sha256 (tuspy's default is sha1)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


@dataclass(frozen=True)
class Outcome:
    state: str  # "stored" or "rejected"
    asset_id: str = ""
    duplicate: bool = False
    code: str = ""
    message_vi: str = ""
    message_en: str = ""


class Credentials:
    """The ``Authorization`` header; a signed-in user's token is refreshed before it ends."""

    def __init__(self, bearer: str = "", accounts_url: str = "", username: str = "", password: str = "") -> None:
        self._bearer = bearer
        self._accounts_url = accounts_url.rstrip("/")
        self._username, self._password = username, password
        self._refresh_token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def header(self) -> dict[str, str]:
        with self._lock:
            if self._username and time.monotonic() > self._expires_at - 30:
                self._sign_in()
            return {"Authorization": f"Bearer {self._bearer}"} if self._bearer else {}

    def _sign_in(self) -> None:
        with httpx.Client(timeout=30) as http:
            response = None
            if self._refresh_token:
                response = http.post(
                    f"{self._accounts_url}/v1/auth/refresh", json={"refresh_token": self._refresh_token}
                )
            if response is None or response.status_code != 200:
                response = http.post(
                    f"{self._accounts_url}/v1/auth/token",
                    data={"username": self._username, "password": self._password},
                )
        if response.status_code != 200:
            raise ArchiveProblem(
                "signin_failed",
                f"Không đăng nhập được ({response.status_code}): {_reason(response.content)[0]}",
                f"Sign-in failed ({response.status_code}): {_reason(response.content)[1]}",
            )
        body = response.json()
        self._bearer = str(body["access_token"])
        self._refresh_token = str(body.get("refresh_token", ""))
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))


def _reason(content: bytes | str | None) -> tuple[str, str]:
    """(vi, en) from the archive's error bodies (``{"error": {"message", "message_en"}}``
    or an upload's ``{"error": {"message_vi", "message_en"}}``); raw text otherwise."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else (content or "")
    try:
        body: Any = json.loads(text)
    except ValueError:
        return text[:300], text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        vi = str(error.get("message_vi") or error.get("message") or "")
        en = str(error.get("message_en") or vi)
        return vi, en
    return text[:300], text[:300]


def _error_code(content: bytes | str | None) -> str:
    try:
        body = json.loads(content or b"")
        return str(body["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def file_sha256(path: Path, on_progress: ProgressCallback | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as stream:
        while block := stream.read(4 * 1024 * 1024):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done, total)
    return digest.hexdigest()


class ArchiveClient:
    """One archive (its ingest service's URL) and one set of credentials."""

    def __init__(
        self,
        ingest_url: str,
        credentials: Credentials,
        *,
        chunk_size: int = 8 * 1024 * 1024,
        attempts: int = 5,
        poll_interval_s: float = 2.0,
        final_timeout_s: float = 3600.0,
    ) -> None:
        self.ingest_url = ingest_url.rstrip("/")
        self.credentials = credentials
        self.chunk_size = chunk_size
        self.attempts = attempts
        self.poll_interval_s = poll_interval_s
        self.final_timeout_s = final_timeout_s
        self._http = httpx.Client(timeout=60)

    def close(self) -> None:
        self._http.close()

    # --- the archive's answers -----------------------------------------------------
    def existing_asset(self, sha256: str) -> str | None:
        """The asset id if the archive already holds these bytes (and the caller may see it).
        Asset ids derive from content (shared.ids), so one GET answers."""
        asset_id = asset_id_for_sha256(sha256)
        response = self._request("GET", f"{self.ingest_url}/v1/assets/{asset_id}")
        if response.status_code == 200:
            return asset_id
        if response.status_code == 404:
            return None
        raise self._failure(response, "asset_lookup_failed")

    def upload_status(self, url: str) -> dict[str, Any]:
        response = self._request("GET", url, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise self._failure(response, "status_failed")
        body: dict[str, Any] = response.json()
        return body

    def wait_final(self, url: str) -> Outcome:
        """Poll the upload until the server has stored or rejected it."""
        deadline = time.monotonic() + self.final_timeout_s
        failures = 0
        # A small file is verified in a fraction of a second, a 4 GB one in minutes: ask
        # often at first, then less and less (up to ``poll_interval_s``).
        pause = 0.05
        while True:
            try:
                status = self.upload_status(url)
                failures = 0
            except (httpx.TransportError, ArchiveProblem) as exc:
                failures += 1
                if failures >= self.attempts or time.monotonic() > deadline:
                    raise _as_import_error(exc) from exc
                time.sleep(min(30.0, 2.0**failures))
                continue
            state = status.get("state")
            if state == "stored":
                return Outcome("stored", str(status.get("asset_id") or ""), bool(status.get("duplicate")))
            if state == "rejected":
                error = status.get("error") or {}
                return Outcome(
                    "rejected",
                    code=str(error.get("code", "rejected")),
                    message_vi=str(error.get("message_vi") or error.get("message") or ""),
                    message_en=str(error.get("message_en") or ""),
                )
            if time.monotonic() > deadline:
                raise ArchiveProblem(
                    "finalisation_timeout",
                    f"Máy chủ chưa xử lý xong tệp sau {self.final_timeout_s:.0f} giây.",
                    f"The server had not finished the file after {self.final_timeout_s:.0f} s.",
                )
            time.sleep(pause)
            pause = min(self.poll_interval_s, pause * 1.5)

    # --- the transfer ----------------------------------------------------------------
    def upload(
        self,
        path: Path,
        metadata: dict[str, str],
        resume_url: str = "",
        on_url: Callable[[str], None] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Send ``path`` with tus, resuming ``resume_url`` from the server's offset if it
        still exists; return the upload's URL once every byte is there."""
        tus = TusClient(f"{self.ingest_url}/v1/uploads", headers=self.credentials.header())
        uploader = self._resumed(tus, path, resume_url) if resume_url else None
        if uploader is None:
            uploader = Sha256Uploader(
                file_path=str(path), client=tus, chunk_size=self.chunk_size, metadata=metadata, upload_checksum=True
            )
            try:
                url = uploader.create_url()
            except TusCommunicationError as exc:
                raise _refusal(exc) from exc
            uploader.set_url(url)
            if on_url:
                on_url(url)
        total = int(uploader.get_file_size())  # type: ignore[no-untyped-call]
        if on_progress:
            on_progress(uploader.offset, total)
        failures = 0
        while uploader.offset < total:
            try:
                tus.headers = self.credentials.header()
                uploader.upload_chunk()  # type: ignore[no-untyped-call]
                failures = 0
            except (TusCommunicationError, TusUploadFailed) as exc:
                status = getattr(exc, "status_code", None)
                if status is not None and 400 <= status < 500 and status not in (409, 423, 408, 429):
                    raise _refusal(exc) from exc
                failures += 1
                if failures >= self.attempts:
                    raise _refusal(exc) from exc
                time.sleep(min(30.0, 2.0**failures))
                # Where the server really is: a dropped PATCH may have landed in part.
                try:
                    uploader.offset = uploader.get_offset()
                except TusCommunicationError:
                    continue
            if on_progress:
                on_progress(uploader.offset, total)
        return str(uploader.url)

    def _resumed(self, tus: TusClient, path: Path, url: str) -> Uploader | None:
        """An uploader at the server's offset of ``url``; None if that upload is gone
        (expired, removed): the file then starts again as a new upload."""
        try:
            return Sha256Uploader(
                file_path=str(path), client=tus, url=url, chunk_size=self.chunk_size, upload_checksum=True
            )
        except TusCommunicationError:
            return None

    # --- plumbing ----------------------------------------------------------------------
    def _request(self, method: str, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = self._http.request(method, url, headers={**self.credentials.header(), **(headers or {})})
            except httpx.TransportError as exc:
                failures += 1
                if failures >= self.attempts:
                    raise _as_import_error(exc) from exc
                time.sleep(min(30.0, 2.0**failures))
                continue
            if response.status_code in (502, 503, 504) and failures + 1 < self.attempts:
                failures += 1
                time.sleep(min(30.0, 2.0**failures))
                continue
            return response

    @staticmethod
    def _failure(response: httpx.Response, code: str) -> ArchiveProblem:
        vi, en = _reason(response.content)
        return ArchiveProblem(_error_code(response.content) or code, f"{response.status_code}: {vi}", en)


def _refusal(exc: TusCommunicationError | TusUploadFailed) -> ArchiveProblem:
    status = getattr(exc, "status_code", None)
    content = getattr(exc, "response_content", None)
    if status is None:
        return _as_import_error(exc)
    vi, en = _reason(content)
    return ArchiveProblem(_error_code(content) or f"http_{status}", f"{status}: {vi}", f"{status}: {en}")


def _as_import_error(exc: Exception) -> ArchiveProblem:
    if isinstance(exc, ArchiveProblem):
        return exc
    return ArchiveProblem("unreachable", f"Không kết nối được kho tư liệu: {exc}", f"Cannot reach the archive: {exc}")
