"""Object storage over the S3 API, through the ``minio`` SDK.

The SDK is synchronous, so every call runs in a worker thread. The code uses
only plain S3 (no MinIO admin API) and is tested against MinIO and SeaweedFS.
Nothing is public: readers get short-lived presigned URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.datatypes import Part
from minio.error import S3Error

from shared.ports import ObjectInfo, ObjectNotFound
from shared.settings import Settings

__all__ = [
    "MultipartUpload",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "content_key",
    "is_storage_full",
    "sha256_file",
]

_HASH_CHUNK = 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "NotFound"}
# "No room": MinIO's hard bucket quota, its drives past their free-space reserve (HTTP 507),
# and the generic S3 names other servers use. Nothing was stored when these come back.
_STORAGE_FULL = {"XMinioAdminBucketQuotaExceeded", "XMinioStorageFull", "QuotaExceeded", "InsufficientStorage"}
# S3's limit of one CopyObject; larger objects are copied part by part (UploadPartCopy).
_MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024


def _bounded_http(timeout_s: float) -> urllib3.PoolManager:
    """The SDK's HTTP client with short timeouts: its default waits five minutes on a
    socket, and a request caught by an S3 server going down can hang that long. A
    request-serving path would rather fail fast (503) and let the client resume."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(10.0, timeout_s), read=timeout_s),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504], respect_retry_after_header=False
        ),
    )


@dataclass(frozen=True)
class MultipartUpload:
    """One unfinished S3 multipart upload, as the server lists it."""

    key: str
    upload_id: str
    initiated: datetime | None


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the object store refusing a write for want of space (a quota or full drives)."""
    return isinstance(exc, S3Error) and exc.code in _STORAGE_FULL


def content_key(sha256_hex: str) -> str:
    """Content-addressed key: identical bytes always land on the same key.

    Two fan-out levels keep listings manageable on any S3 server.
    """
    return f"sha256/{sha256_hex[:2]}/{sha256_hex[2:4]}/{sha256_hex}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ObjectStore:
    """Small async facade over one S3 endpoint."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        part_size: int = 16 * 1024 * 1024,
        presign_expiry_s: int = 900,
        request_timeout_s: float | None = None,
    ) -> None:
        # The region is fixed so the SDK never makes a location lookup per bucket.
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_bounded_http(request_timeout_s) if request_timeout_s else None,
        )
        # Server-side copies and joins of GB-sized objects legitimately take minutes:
        # they go through a client with the SDK's own (five-minute) timeouts.
        self._patient_client = (
            Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
            if request_timeout_s
            else self._client
        )
        self._part_size = part_size
        self._presign_expiry = timedelta(seconds=presign_expiry_s)

    @classmethod
    def from_settings(cls, settings: Settings, request_timeout_s: float | None = None) -> ObjectStore:
        """The object store every service wires: the configured S3 endpoint (with
        ``request_timeout_s``, no S3 call waits longer than that, retries included)."""
        return cls(
            settings.resolved_s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
            presign_expiry_s=settings.presign_expiry_s,
            request_timeout_s=request_timeout_s,
        )

    async def ready(self) -> bool:
        """The S3 server answers with these credentials (for readiness checks)."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self._client.list_buckets), timeout=2.0)
        except Exception:
            return False
        return True

    async def ensure_buckets(self, *buckets: str) -> None:
        def _ensure() -> None:
            for bucket in buckets:
                if not self._client.bucket_exists(bucket):
                    try:
                        self._client.make_bucket(bucket)
                    except S3Error as exc:  # created concurrently by another service
                        if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                            raise

        await asyncio.to_thread(_ensure)

    async def put_file(
        self, bucket: str, key: str, path: Path, content_type: str, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        """Stream a local file up; files over one part go up as S3 multipart."""

        def _put() -> ObjectInfo:
            size = path.stat().st_size
            with path.open("rb") as handle:
                result = self._client.put_object(
                    bucket,
                    key,
                    handle,
                    length=size,
                    content_type=content_type,
                    metadata=metadata,  # type: ignore[arg-type]
                    part_size=self._part_size,
                )
            return ObjectInfo(bucket, key, size, content_type, str(result.etag or ""))

        return await asyncio.to_thread(_put)

    async def put_stream(
        self, bucket: str, key: str, stream: BinaryIO, content_type: str, length: int = -1, parallel_parts: int = 3
    ) -> ObjectInfo:
        """Stream from a file-like object of unknown length (always multipart).

        ``parallel_parts`` 1 holds one part in memory at a time: the SDK queues every part
        it has read for its upload threads, so a source faster than the upload piles up."""

        def _put() -> ObjectInfo:
            result = self._client.put_object(
                bucket,
                key,
                stream,
                length=length,
                content_type=content_type,
                part_size=self._part_size,
                num_parallel_uploads=parallel_parts,
            )
            info = self._client.stat_object(bucket, key)
            return ObjectInfo(bucket, key, int(info.size or 0), content_type, str(result.etag or ""))

        return await asyncio.to_thread(_put)

    async def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        def _stat() -> ObjectInfo | None:
            try:
                info = self._client.stat_object(bucket, key)
            except S3Error as exc:
                if exc.code in _NOT_FOUND:
                    return None
                raise
            return ObjectInfo(bucket, key, int(info.size or 0), str(info.content_type or ""), str(info.etag or ""))

        return await asyncio.to_thread(_stat)

    async def get_bytes(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> bytes:
        """Whole object, or ``length`` bytes from ``offset`` (HTTP range GET)."""

        def _get() -> bytes:
            try:
                response = self._client.get_object(bucket, key, offset=offset, length=length)
            except S3Error as exc:
                if exc.code in _NOT_FOUND:
                    raise ObjectNotFound(f"{bucket}/{key}") from exc
                raise
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(_get)

    def iter_chunks(self, bucket: str, key: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object's bytes as they arrive, ``chunk_size`` at a time. Blocking: for code
        that already runs in a worker thread (a ZIP streamed into another upload)."""
        try:
            response = self._client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                raise ObjectNotFound(f"{bucket}/{key}") from exc
            raise
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    async def download(self, bucket: str, key: str, path: Path) -> None:
        """Stream an object to a local file (workers process local files only)."""

        def _download() -> None:
            try:
                self._client.fget_object(bucket, key, str(path))
            except S3Error as exc:
                if exc.code in _NOT_FOUND:
                    raise ObjectNotFound(f"{bucket}/{key}") from exc
                raise

        await asyncio.to_thread(_download)

    async def presigned_get(
        self, bucket: str, key: str, expiry_s: int | None = None, signed_at: datetime | None = None
    ) -> str:
        """Signed locally (no request to the server); valid ``expiry_s`` from ``signed_at``
        (default now): the same ``signed_at`` gives the same URL."""
        expires = timedelta(seconds=expiry_s) if expiry_s else self._presign_expiry
        return await asyncio.to_thread(self._client.presigned_get_object, bucket, key, expires, request_date=signed_at)

    async def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        def _list() -> list[str]:
            return [str(o.object_name) for o in self._client.list_objects(bucket, prefix=prefix, recursive=True)]

        return await asyncio.to_thread(_list)

    # --- S3 multipart uploads, part by part (resumable uploads keep their state themselves).
    # The SDK keeps these S3 calls private (its put_object drives them); their signatures
    # have been stable since minio 7.0 and are pinned by tests/integration/test_objectstore.py.

    async def create_multipart(self, bucket: str, key: str, content_type: str) -> str:
        """Start a multipart upload; its upload id."""
        return await asyncio.to_thread(
            self._client._create_multipart_upload, bucket, key, {"Content-Type": content_type}
        )

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Store part ``number`` (1-based; a re-sent number replaces the part); its ETag."""
        etag = await asyncio.to_thread(self._client._upload_part, bucket, key, data, None, upload_id, number)
        return str(etag).strip('"')

    async def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Join the parts (number, ETag) into the object ``key``."""
        listed = [Part(number, etag) for number, etag in parts]
        await asyncio.to_thread(self._patient_client._complete_multipart_upload, bucket, key, upload_id, listed)

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts; an upload already gone is no error."""

        def _abort() -> None:
            try:
                self._client._abort_multipart_upload(bucket, key, upload_id)
            except S3Error as exc:
                if exc.code not in {"NoSuchUpload", *_NOT_FOUND}:
                    raise

        await asyncio.to_thread(_abort)

    async def list_multipart(self, bucket: str, prefix: str = "") -> list[MultipartUpload]:
        """Every unfinished multipart upload under ``prefix`` (all pages)."""

        def _list() -> list[MultipartUpload]:
            found: list[MultipartUpload] = []
            key_marker: str | None = None
            upload_marker: str | None = None
            while True:
                page = self._client._list_multipart_uploads(
                    bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker
                )
                for upload in page.uploads:
                    found.append(MultipartUpload(str(upload.object_name), str(upload.upload_id), upload.initiated_time))
                if not page.is_truncated:
                    return found
                key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker

        return await asyncio.to_thread(_list)

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """A small object in one request (a resumable upload's trailing, not yet full part)."""
        await asyncio.to_thread(self._client.put_object, bucket, key, io.BytesIO(data), len(data), content_type)

    async def remove(self, bucket: str, key: str) -> None:
        """Delete one object; a missing one is no error (S3 semantics)."""
        await asyncio.to_thread(self._client.remove_object, bucket, key)

    async def copy(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Server-side copy (no byte passes through this process); over 5 GiB part by part."""

        def _copy() -> None:
            size = int(self._patient_client.stat_object(source_bucket, source_key).size or 0)
            headers: dict[str, str] = {"Content-Type": content_type}
            headers.update({f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()})
            if size <= _MAX_SINGLE_COPY:
                self._patient_client.copy_object(
                    bucket,
                    key,
                    CopySource(source_bucket, source_key),
                    metadata=headers,  # type: ignore[arg-type]
                    metadata_directive="REPLACE",
                )
            else:
                self._patient_client.compose_object(
                    bucket,
                    key,
                    [ComposeSource(source_bucket, source_key)],
                    metadata=headers,  # type: ignore[arg-type]
                )

        await asyncio.to_thread(_copy)
