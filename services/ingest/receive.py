"""Receiving one upload: the multipart body is read once, as it arrives.

``POST /v1/assets`` is ``multipart/form-data`` with the metadata fields first
and the file part last — the rule of S3's and Google Cloud Storage's browser
form uploads, and the order in which browsers (file input last), ``curl -F``
(fields in command-line order) and ``httpx`` (``data=`` before ``files=``)
send them. So, before a byte of the file is stored:

- the token has been checked (the route's dependency, before the body is read);
- a declared ``Content-Length`` over the limit is refused with 413;
- the metadata has been validated (422 ``invalid_metadata`` otherwise, also
  when it comes after the file: it must come first).

The file part then goes straight into one file in the service's work dir,
hashed while it is written: one copy on disk, never a framework spool plus
ours. A body without ``Content-Length`` (chunked) is bounded while it streams.
A metadata field sent after the file is refused (400 ``field_after_file``)
rather than silently dropped. Whatever fails, the partial file is removed.

A client that sends its headers and then stalls, or trickles a few bytes now and
then, would hold the request (its spool file, its connection) for ever: the body
must keep a :class:`BodyPace` — no silence longer than ``idle_s``, and after a
``grace_s`` start an average of at least ``min_rate`` bytes a second — or the
request ends with 408 ``body_timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Generic, TypeVar

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from shared.http import UserError
from shared.request_bodies import BodyPace, BodyStalled, paced

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

T = TypeVar("T")

FILE_FIELD = "file"
METADATA_FIELDS = frozenset({"title", "caption", "recorded_at", "activity_type", "source_org"})
# What a body may carry besides the file: the fields (a caption of 20 000
# characters is at most 80 KB of UTF-8), part headers and boundaries.
ENVELOPE_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 256 * 1024
# File bytes are handed to a worker thread (hash + write) in batches of this size,
# so the event loop never waits on the disk.
_WRITE_BATCH = 1024 * 1024


@dataclass(frozen=True)
class ReceivedFile:
    """The file part, stored at ``path`` (the caller removes it)."""

    path: Path
    sha256: str
    size: int
    filename: str


def too_large(limit: int) -> UserError:
    return UserError(
        413,
        "too_large",
        f"Tệp vượt quá giới hạn {limit:,} byte.",
        f"File exceeds the limit of {limit:,} bytes.",
        limit_bytes=limit,
    )


def check_declared_size(request: Request, max_bytes: int) -> int | None:
    """The declared ``Content-Length`` (None: chunked, bounded while streaming); 413 before a
    byte of the body is read when it is too large."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
        if size < 0:
            raise ValueError(declared)
    except ValueError:
        raise UserError(
            400, "invalid_content_length", "Độ dài nội dung không hợp lệ.", "Invalid Content-Length header."
        ) from None
    if size > max_bytes + ENVELOPE_BYTES:
        raise too_large(max_bytes)
    return size


def _declares_empty_body(request: Request) -> bool:
    return "transfer-encoding" not in request.headers and request.headers.get("content-length", "0") == "0"


class _Spool:
    """One file in the work dir, hashed as it is written (used from a worker thread)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"upload-{uuid.uuid4().hex}"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle: BinaryIO = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.handle.write(data)

    def close(self) -> None:
        self.handle.close()

    def discard(self) -> None:
        try:
            self.handle.close()
        finally:
            self.path.unlink(missing_ok=True)


@dataclass
class _Parts(Generic[T]):
    """The state python-multipart's callbacks fill in while the body streams through."""

    max_bytes: int
    spool_dir: Path
    check_metadata: Callable[[Mapping[str, str]], T]
    fields: dict[str, str] = field(default_factory=dict)
    metadata: T | None = None
    # The part being parsed: its headers, then what it is.
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # "field", "file" or "skip"
    name: str = ""
    value: bytearray = field(default_factory=bytearray)
    # The file part.
    spool: _Spool | None = None
    filename: str = ""
    size: int = 0
    pending: bytearray = field(default_factory=bytearray)
    file_done: bool = False
    ended: bool = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self.header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.headers.clear()
        self.kind, self.name = "", ""
        self.value.clear()

    def header_end(self) -> None:
        self.headers[self.header_name.decode("latin-1").strip().lower()] = self.header_value.decode("latin-1")
        self.header_name.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        # Field names are ours (title, caption, …): a longer one is no field we read.
        self.name = options.get(b"name", b"")[:64].decode("utf-8", "replace")
        if self.name == FILE_FIELD:
            self.begin_file(options.get(b"filename", b"").decode("utf-8", "replace"))
        elif self.name in METADATA_FIELDS:
            if self.spool is not None:
                raise UserError(
                    400,
                    "field_after_file",
                    f"Trường {self.name} đứng sau tệp: hãy gửi các trường thông tin trước, trường file sau cùng.",
                    f"The field {self.name!r} comes after the file: send the metadata fields first, the file last.",
                    field=self.name,
                )
            self.kind = "field"
        else:
            self.kind = "skip"  # not ours: read past it, keep nothing

    def begin_file(self, filename: str) -> None:
        if self.spool is not None:
            raise UserError(
                400, "multiple_files", "Mỗi lần chỉ tải lên một tệp.", "Upload one file per request.", field=FILE_FIELD
            )
        try:
            self.metadata = self.check_metadata(self.fields)
        except UserError as exc:
            if exc.code != "invalid_metadata":
                raise
            raise UserError(
                exc.status,
                exc.code,
                exc.message_vi + " Các trường thông tin phải được gửi trước tệp (trường file đặt cuối cùng).",
                exc.message_en + " Metadata fields must be sent before the file part (the file last).",
                **exc.extra,
            ) from exc
        # The client's file name is metadata only: the local path is ours.
        self.filename = os.path.basename(filename.replace("\\", "/"))
        self.spool = _Spool(self.spool_dir)
        self.kind = "file"

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.kind == "file":
            self.size += end - start
            if self.size > self.max_bytes:
                raise too_large(self.max_bytes)
            self.pending.extend(data[start:end])
        elif self.kind == "field":
            if len(self.value) + end - start > MAX_FIELD_BYTES:
                raise UserError(
                    413,
                    "field_too_large",
                    f"Trường {self.name} quá dài.",
                    f"The field {self.name!r} is too large.",
                    field=self.name,
                )
            self.value.extend(data[start:end])

    def part_end(self) -> None:
        if self.kind == "file":
            self.file_done = True
        elif self.kind == "field":
            try:
                self.fields[self.name] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(
                    400,
                    "invalid_text_encoding",
                    f"Trường {self.name} không phải văn bản UTF-8.",
                    f"The field {self.name!r} is not UTF-8 text.",
                    field=self.name,
                ) from None

    def end(self) -> None:
        self.ended = True


async def receive_upload(
    request: Request,
    spool_dir: Path,
    max_bytes: int,
    check_metadata: Callable[[Mapping[str, str]], T],
    pace: BodyPace | None = None,
    hold: Callable[[int], None] | None = None,
) -> tuple[T, ReceivedFile]:
    """Stream the multipart body: fields checked by ``check_metadata`` before the file part is
    written, the file part hashed into one file under ``spool_dir``. Raises :class:`UserError`.
    ``hold`` hears how many bytes have arrived, before they are written (the quota)."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        if _declares_empty_body(request):
            check_metadata({})  # nothing at all was sent: say which fields are missing
            raise _missing_file()
        raise UserError(
            415,
            "multipart_required",
            "Hãy gửi dạng multipart/form-data: các trường thông tin trước, trường file sau cùng.",
            "Send multipart/form-data: the metadata fields first, the file part last.",
        )
    parts = _Parts(max_bytes, spool_dir, check_metadata)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
    except ValueError as exc:  # e.g. an absurdly long boundary
        raise _malformed(exc) from exc
    body_limit = max_bytes + ENVELOPE_BYTES
    received = 0
    try:
        async for chunk in request.stream() if pace is None else paced(request.stream(), pace):
            received += len(chunk)
            if received > body_limit:
                raise too_large(max_bytes)
            if hold is not None:
                hold(received)
            parser.write(chunk)
            if parts.spool is not None and len(parts.pending) >= _WRITE_BATCH:
                await _flush(parts, parts.spool)
        if parts.spool is not None:
            await _flush(parts, parts.spool)
            await asyncio.to_thread(parts.spool.close)
    except BaseException as exc:
        if parts.spool is not None:
            parts.spool.discard()  # two syscalls; no await, also when cancelled
        if isinstance(exc, MultipartParseError):
            raise _malformed(exc) from exc
        if isinstance(exc, BodyStalled):
            raise exc.error() from exc
        if isinstance(exc, ClientDisconnect):
            raise UserError(
                400, "upload_interrupted", "Tải lên bị ngắt giữa chừng.", "The upload was interrupted."
            ) from exc
        raise
    spool = parts.spool
    try:
        if not parts.ended or (spool is not None and not parts.file_done):
            raise _malformed("the body ends before its closing boundary")
        if spool is None:
            check_metadata(parts.fields)
            raise _missing_file()
        if parts.size == 0:
            raise UserError(400, "empty_file", "Tệp rỗng: không có dữ liệu để lưu.", "The file is empty.")
    except UserError:
        if spool is not None:
            spool.discard()
        raise
    assert parts.metadata is not None  # checked when the file part began
    return parts.metadata, ReceivedFile(spool.path, spool.digest.hexdigest(), parts.size, parts.filename)


async def _flush(parts: _Parts[T], spool: _Spool) -> None:
    data = bytes(parts.pending)
    parts.pending.clear()
    if data:
        await asyncio.to_thread(spool.write, data)


def _missing_file() -> UserError:
    return UserError(400, "missing_file", "Thiếu tệp tải lên (trường file).", "No file was uploaded (field 'file').")


def _malformed(reason: object) -> UserError:
    return UserError(
        400,
        "malformed_multipart",
        "Nội dung multipart/form-data không hợp lệ hoặc bị cắt cụt.",
        f"Malformed or truncated multipart/form-data body: {reason}",
    )
