"""Normalised segments kept in S3 by content key, so an edit re-renders only what changed.

The renderer (``services.reels.render``) calls the cache synchronously from its
worker threads; the minio SDK is synchronous, so this adapter uses it directly.
A segment is one object under ``segments/<key>.mov``; S3 makes an object
visible only once complete, so a renderer killed mid-store leaves nothing a
later render could take for a segment.
"""

from __future__ import annotations

from pathlib import Path

from minio import Minio
from minio.error import S3Error

from shared.settings import Settings

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


class S3SegmentCache:
    """:class:`services.reels.render.SegmentCache` on an S3 bucket."""

    def __init__(self, client: Minio, bucket: str, prefix: str = "segments/") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> S3SegmentCache:
        client = Minio(
            settings.resolved_s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return cls(client, settings.bucket_reel_cache)

    def object_key(self, key: str) -> str:
        return f"{self.prefix}{key}.mov"

    def fetch(self, key: str, dest: Path) -> bool:
        try:
            self.client.fget_object(self.bucket, self.object_key(key), str(dest))
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                return False
            raise
        return True

    def store(self, key: str, path: Path) -> None:
        self.client.fput_object(self.bucket, self.object_key(key), str(path), content_type="video/quicktime")

    def keys(self) -> set[str]:
        """Every cached segment's key (tests and operators)."""
        found = self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True)
        return {str(o.object_name).removeprefix(self.prefix).removesuffix(".mov") for o in found}
