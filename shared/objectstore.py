"""Object storage over the S3 API, through the ``minio`` SDK.

The SDK is synchronous, so every call runs in a worker thread. The code uses
only plain S3 (no MinIO admin API) and is tested against MinIO and SeaweedFS.
Nothing is public: readers get short-lived presigned URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.error import S3Error

from shared.ports import ObjectInfo, ObjectNotFound
from shared.settings import Settings

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "content_key", "sha256_file"]

_HASH_CHUNK = 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "NotFound"}


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
    ) -> None:
        # The region is fixed so the SDK never makes a location lookup per bucket.
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self._part_size = part_size
        self._presign_expiry = timedelta(seconds=presign_expiry_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        """The object store every service wires: the configured S3 endpoint."""
        return cls(
            settings.resolved_s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
            presign_expiry_s=settings.presign_expiry_s,
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
