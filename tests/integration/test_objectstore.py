"""The object-store adapter against two real S3 servers: MinIO and SeaweedFS."""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.stack import LocalStack
from shared.objectstore import ObjectNotFound, ObjectStore, content_key, sha256_file
from tests.conftest import object_store_for

pytestmark = pytest.mark.integration
BUCKET = "mam-test-objects"


@pytest.fixture(params=["minio", "seaweedfs"])
async def store(request: pytest.FixtureRequest, stack: LocalStack) -> Iterator[ObjectStore]:
    s3 = object_store_for(stack.settings, request.param, part_size=5 * 1024 * 1024)
    await s3.ensure_buckets(BUCKET)
    yield s3


async def test_a_small_file_round_trips_under_its_content_key(store: ObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff" + os.urandom(5000))
    digest = sha256_file(path)
    key = content_key(digest)
    assert key == f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    info = await store.put_file(BUCKET, key, path, "image/jpeg")
    assert info.size == path.stat().st_size
    assert await store.get_bytes(BUCKET, key) == path.read_bytes()
    stat = await store.stat(BUCKET, key)
    assert stat is not None and stat.size == info.size and stat.content_type == "image/jpeg"


async def test_a_file_larger_than_one_part_goes_up_as_multipart_and_comes_back_intact(
    store: ObjectStore, tmp_path: Path
) -> None:
    path = tmp_path / "clip.mp4"
    with path.open("wb") as out:
        for _ in range(12):
            out.write(os.urandom(1024 * 1024))
    key = content_key(sha256_file(path))
    info = await store.put_file(BUCKET, key, path, "video/mp4")
    # S3 multipart ETags end in -<number of parts>: 12 MiB in 5 MiB parts = 3.
    assert info.etag.strip('"').endswith("-3")
    downloaded = tmp_path / "back.mp4"
    await store.download(BUCKET, key, downloaded)
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_range_get_returns_exactly_the_requested_bytes(store: ObjectStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    path = tmp_path / "range.bin"
    path.write_bytes(data)
    key = content_key(sha256_file(path))
    await store.put_file(BUCKET, key, path, "application/octet-stream")
    assert await store.get_bytes(BUCKET, key, offset=1000, length=300) == data[1000:1300]


async def test_presigned_get_works_and_the_object_is_not_public(store: ObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "private.jpg"
    path.write_bytes(os.urandom(2048))
    key = content_key(sha256_file(path))
    await store.put_file(BUCKET, key, path, "image/jpeg")
    url = await store.presigned_get(BUCKET, key, expiry_s=60)
    assert "X-Amz-Expires=60" in url
    async with httpx.AsyncClient() as client:
        signed = await client.get(url)
        anonymous = await client.get(url.split("?", 1)[0])
    assert signed.status_code == 200 and signed.content == path.read_bytes()
    assert anonymous.status_code in (401, 403)


async def test_missing_objects_are_reported_as_not_found(store: ObjectStore) -> None:
    assert await store.stat(BUCKET, "sha256/00/00/missing") is None
    with pytest.raises(ObjectNotFound):
        await store.get_bytes(BUCKET, "sha256/00/00/missing")
