"""Resumable uploads (tus 1.0) against real servers: tuspy as the client, MinIO and SeaweedFS.

A dedicated ingest process runs on the quiet NATS (no worker reacts to its
events, so histories are exact) with 5 MiB parts and a 3 s lock lease, against
each S3 server in turn. The big test sends ``MAM_TEST_UPLOAD_MB`` (300 by
default on MinIO, 64 on SeaweedFS; ``MAM_TEST_UPLOAD_MB_SEAWEEDFS``) through
three interruptions — the client dropping the connection at a random offset,
ingest killed with -9, the S3 server restarted — and checks the SHA-256 of the
asset and that no resume sent again more than one part.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from deploy.local.processes import ProcessSpec, running_pid, start, stop
from deploy.local.stack import LocalStack, settings_env
from shared.auth import Role
from shared.eventstore import EventStore
from shared.objectstore import ObjectStore, content_key
from shared.settings import Settings
from tests.conftest import ADMIN, ARCHIVIST, AUTH, object_store_for, role_headers, run, wait_for
from tests.uploads import (
    METADATA,
    MIB,
    Attempt,
    RawUpload,
    head_offset,
    ingest_settings,
    running_ingest,
    tus_metadata,
    upload_with_tuspy,
    write_padded_jpeg,
)

pytestmark = pytest.mark.integration

PART = 5 * MIB
LEASE_S = 2.0
TUS = {"Tus-Resumable": "1.0.0"}
BACKENDS = ["minio", "seaweedfs"]
# What depends on the S3 server (multipart uploads, restarts, copies) runs on both; the
# protocol's rules, once (the default run stays within its time budget).
on_both_s3_servers = pytest.mark.parametrize("ingest", BACKENDS, indirect=True)


def big_upload_bytes(backend: str) -> int:
    default = "300" if backend == "minio" else "64"
    return (
        int(os.environ.get(f"MAM_TEST_UPLOAD_MB_{backend.upper()}", os.environ.get("MAM_TEST_UPLOAD_MB", default)))
        * MIB
    )


class Ingest:
    """A dedicated ingest process the tests may kill and restart."""

    def __init__(self, settings: Settings, spec: ProcessSpec) -> None:
        self.settings = settings
        self.spec = spec

    @property
    def endpoint(self) -> str:
        return f"{self.settings.ingest_url}/v1/uploads"

    def kill_9(self) -> None:
        pid = running_pid(self.spec)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: running_pid(self.spec) is None, 10, 0.05, "ingest to die")

    def restart(self) -> None:
        start(self.spec)

    def s3(self) -> ObjectStore:
        return object_store_for(self.settings, self.settings.s3_backend)


def _dedicated_ingest(
    request: pytest.FixtureRequest, quiet: Settings, port_shift: int, label: str, **overrides: Any
) -> Iterator[Ingest]:
    """An ingest of its own (5 MiB parts, a short lock lease, its own bucket and state) on MinIO,
    or on the S3 server a test names with ``@on_both_s3_servers``."""
    backend = str(getattr(request, "param", "minio"))
    suffix = f"-{label}" if label else ""
    settings = ingest_settings(
        quiet,
        backend,
        port_shift + BACKENDS.index(backend),
        upload_part_size=PART,
        upload_lock_lease_s=LEASE_S,
        upload_s3_timeout_s=5.0,
        bucket_uploads=f"mam-uploads{suffix}-{backend}",
        upload_state_bucket=f"MAM_UPLOADS{suffix.replace('-', '_').upper()}_{backend.upper()}",
        **overrides,
    )
    with running_ingest(settings, f"ingest-tus{suffix}-{backend}") as spec:
        yield Ingest(settings, spec)


@pytest.fixture(scope="module")
def ingest(request: pytest.FixtureRequest, stack: LocalStack, quiet_nats: Settings) -> Iterator[Ingest]:
    yield from _dedicated_ingest(request, quiet_nats, 70, "", upload_sweep_interval_s=1.0)


@pytest.fixture(scope="module")
def impatient(request: pytest.FixtureRequest, stack: LocalStack, quiet_nats: Settings) -> Iterator[Ingest]:
    """A body silent for 2 s, or under 64 KiB/s on average after 3 s, is too slow."""
    yield from _dedicated_ingest(
        request,
        quiet_nats,
        73,
        "impatient",
        upload_body_idle_timeout_s=2.0,
        upload_body_grace_s=3.0,
        upload_body_min_rate_bytes_s=64 * 1024,
    )


@pytest.fixture(scope="module")
def short_lived(request: pytest.FixtureRequest, stack: LocalStack, quiet_nats: Settings) -> Iterator[Ingest]:
    """Uploads expire after 4 s and users may have 20 MiB in flight."""
    yield from _dedicated_ingest(
        request,
        quiet_nats,
        75,
        "expiry",
        upload_expiry_s=4,
        upload_sweep_interval_s=0.5,
        upload_quota_bytes=20 * MIB,
        max_upload_bytes=64 * MIB,
    )


def create(
    ingest: Ingest, length: int, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        ingest.endpoint,
        headers={
            **(headers or AUTH),
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": tus_metadata(fields or METADATA),
        },
        timeout=30.0,
    )


def status(url: str, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    response = httpx.get(url, headers=headers, timeout=10.0)
    assert response.status_code == 200, response.text
    return dict(response.json())


def settled(url: str, within: float = 120.0, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (s := status(url, headers))["state"] in ("stored", "rejected") and s,
            within,
            0.2,
            f"{url} to settle",
        )
    )


def multipart_keys(ingest: Ingest) -> list[str]:
    return [u.key for u in run(ingest.s3().list_multipart(ingest.settings.bucket_uploads))]


def staged_keys(ingest: Ingest) -> list[str]:
    return run(ingest.s3().list_keys(ingest.settings.bucket_uploads))


class DroppedPatch:
    """A PATCH that sends ``count`` bytes of ``path`` from ``offset`` and then drops the connection,
    as a provincial link does."""

    def __init__(self, url: str, path: Path, offset: int, count: int) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.putrequest("PATCH", parts.path)
        for name, value in {
            **AUTH,
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(path.stat().st_size - offset),
        }.items():
            conn.putheader(name, value)
        conn.endheaders()
        with path.open("rb") as handle:
            handle.seek(offset)
            left = count
            while left:
                block = handle.read(min(MIB, left))
                conn.send(block)
                left -= len(block)
        conn.sock.close()  # type: ignore[union-attr]
        conn.close()


@on_both_s3_servers
def test_a_large_upload_survives_a_dropped_link_a_killed_ingest_and_a_restarted_s3_server(
    ingest: Ingest, stack: LocalStack, quiet_nats: Settings, tmp_path: Path
) -> None:
    size = big_upload_bytes(ingest.settings.s3_backend)
    path = tmp_path / "phien-khai-mac.jpg"
    expected = write_padded_jpeg(path, size)
    chunk = PART  # one PATCH per part: what a client on an unreliable link does
    rng = random.Random()
    # Where each interruption strikes: during the PATCH at these attempt numbers.
    total_chunks = size // chunk
    kill_at, restart_at = sorted(rng.sample(range(3, total_chunks - 2), 2))
    s3_spec = stack.server_spec(ingest.settings.s3_backend)
    events: list[str] = []
    interrupters: list[threading.Thread] = []

    def interrupt_later(action: str, delay: float) -> None:
        def act() -> None:
            time.sleep(delay)
            if action == "kill":
                ingest.kill_9()
            else:
                stop(s3_spec)
            events.append(action)

        interrupters.append(threading.Thread(target=act, daemon=True))
        interrupters[-1].start()

    def on_attempt(attempt: Attempt, number: int) -> None:
        if number == kill_at:
            interrupt_later("kill", rng.uniform(0.0, 0.05))
        elif number == restart_at:
            interrupt_later("s3", rng.uniform(0.0, 0.05))

    def recover(exc: BaseException) -> None:
        for thread in interrupters:
            thread.join(60)
            assert not thread.is_alive()
        if "s3" in events and "s3-started" not in events:
            start(s3_spec)
            events.append("s3-started")
        if running_pid(ingest.spec) is None:
            ingest.restart()
            time.sleep(LEASE_S + 0.5)  # the killed process's lock lapses

    # First, a link that drops at a random offset: what the server received is kept.
    created = create(ingest, size)
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    assert url.startswith(f"{ingest.settings.ingest_url}/v1/uploads/")  # absolute, as tus clients expect
    dropped_at = rng.randrange(PART // 2, 3 * PART)
    DroppedPatch(url, path, 0, dropped_at)
    offset = wait_for(
        lambda: head_offset(url, AUTH) == dropped_at and dropped_at, 30, 0.2, "the dropped bytes to be kept"
    )
    assert offset == dropped_at  # nothing the link delivered is sent again
    _, attempts = upload_with_tuspy(
        ingest.endpoint, AUTH, path, METADATA, chunk, url=url, on_attempt=on_attempt, recover=recover
    )
    assert "kill" in events and "s3" in events, events
    failed = [a for a in attempts if a.failed]
    assert failed, "an interruption must have hit a PATCH"
    for attempt in failed:
        # What the failed PATCH sent and the server did not keep is sent again: at most one part.
        resent = attempt.sent - (attempt.offset_after - attempt.offset_before)
        assert resent <= PART, (attempt, PART)
        assert attempt.offset_after >= attempt.offset_before  # nothing stored earlier was lost
    assert sum(a.sent for a in attempts) + dropped_at <= size + len(failed) * PART
    final = settled(url)
    assert final["state"] == "stored", final
    assert final["duplicate"] is False and final["offset"] == size == final["length"]

    async def ingested() -> list[Any]:
        store = await EventStore.connect(quiet_nats.resolved_nats_url, quiet_nats.event_stream)
        try:
            return [e.envelope for e in await store.history("asset", final["asset_id"])]
        finally:
            await store.close()

    history = run(ingested())
    assert [e.type for e in history] == ["asset.ingested"]
    payload = history[0].payload
    assert payload["sha256"] == expected and payload["size_bytes"] == size
    assert payload["activity_type"] == "ky-hop" and payload["title"] == METADATA["title"]
    stored = run(ingest.s3().stat(payload["bucket"], payload["object_key"]))
    assert stored is not None and stored.size == size
    # Nothing is left in the staging bucket: no multipart upload, no tail, no staging object.
    wait_for(lambda: not [k for k in multipart_keys(ingest) if final["id"] in k], 10, 0.2, "no multipart upload")
    assert not [k for k in staged_keys(ingest) if final["id"] in k]


def test_two_patches_on_one_upload_at_once_one_wins_and_the_other_is_refused(ingest: Ingest, tmp_path: Path) -> None:
    size = 3 * PART
    path = tmp_path / "song-song.jpg"
    write_padded_jpeg(path, size)
    created = create(ingest, size)
    url = created.headers["Location"]
    parts = urlsplit(url)
    # The first PATCH announces the whole file and sends a little: it holds the upload.
    first = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    first.putrequest("PATCH", parts.path)
    headers = {
        **AUTH,
        **TUS,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(size),
    }
    for name, value in headers.items():
        first.putheader(name, value)
    first.endheaders()
    data = path.read_bytes()
    first.send(data[: PART // 2])
    time.sleep(0.5)
    second = httpx.patch(url, headers=headers, content=data, timeout=30.0)
    assert second.status_code in (409, 423), second.text
    error = second.json()["error"]
    assert error["code"] == "upload_locked" and error["message"] and error["message_en"]
    first.send(data[PART // 2 :])
    answer = first.getresponse()
    assert answer.status == 204, answer.read()
    assert int(answer.getheader("Upload-Offset") or 0) == size
    first.close()
    assert settled(url)["state"] == "stored"


def test_an_upload_over_the_size_limit_is_refused_before_any_byte_is_stored(short_lived: Ingest) -> None:
    before = multipart_keys(short_lived)
    response = create(short_lived, short_lived.settings.max_upload_bytes + 1)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "too_large" and f"{short_lived.settings.max_upload_bytes:,}" in error["message"]
    assert multipart_keys(short_lived) == before
    listed = httpx.get(short_lived.endpoint, headers=ADMIN, timeout=10).json()["uploads"]
    assert not [u for u in listed if u["length"] > short_lived.settings.max_upload_bytes]


def test_a_bad_activity_code_is_refused_at_creation_in_both_languages(short_lived: Ingest) -> None:
    before = multipart_keys(short_lived)
    response = create(short_lived, 50 * MIB, {**METADATA, "activity_type": "hop-bao"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_metadata"
    assert (
        "hop-bao" in error["message"]
        and "Loại hoạt động" in error["message"]
        and "activity type" in error["message_en"]
    )
    assert multipart_keys(short_lived) == before
    no_title = create(short_lived, MIB, {"activity_type": "ky-hop"})
    assert no_title.status_code == 422 and no_title.json()["error"]["problems"][0]["field"] == "title"


def test_a_user_over_the_quota_of_bytes_in_flight_is_refused_and_others_are_not(
    short_lived: Ingest, unique: str
) -> None:
    user = role_headers(Role.PHONG_VIEN, f"pv-{unique}")
    first = create(short_lived, 15 * MIB, headers=user)
    assert first.status_code == 201, first.text
    over = create(short_lived, 10 * MIB, headers=user)
    assert over.status_code == 413 and over.json()["error"]["code"] == "quota_exceeded", over.text
    archivist = create(short_lived, 10 * MIB, headers=ARCHIVIST)
    assert archivist.status_code == 201, archivist.text
    # A user sees only their own uploads; another's is "not found", an administrator sees all.
    assert httpx.get(first.headers["Location"], headers=ARCHIVIST, timeout=10).status_code == 404
    assert httpx.head(first.headers["Location"], headers={**ARCHIVIST, **TUS}, timeout=10).status_code == 404
    mine = {u["id"] for u in httpx.get(short_lived.endpoint, headers=user, timeout=10).json()["uploads"]}
    every = {u["id"] for u in httpx.get(short_lived.endpoint, headers=ADMIN, timeout=10).json()["uploads"]}
    first_id, other_id = first.headers["Location"].rsplit("/", 1)[-1], archivist.headers["Location"].rsplit("/", 1)[-1]
    assert first_id in mine and other_id not in mine and {first_id, other_id} <= every
    for url in (first.headers["Location"], archivist.headers["Location"]):
        gone = httpx.delete(url, headers={**ADMIN, **TUS}, timeout=10)
        assert gone.status_code == 204, gone.text
    assert create(short_lived, 15 * MIB, headers=user).status_code == 201


@pytest.mark.parametrize("short_lived", BACKENDS, indirect=True)
def test_expired_uploads_leave_no_multipart_upload_tail_or_record_behind(short_lived: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "bo-do.jpg"
    write_padded_jpeg(path, 12 * MIB)
    created = create(short_lived, 12 * MIB, headers=ARCHIVIST)
    url = created.headers["Location"]
    upload_id = url.rsplit("/", 1)[-1]
    sent = PART + MIB  # one part and a tail
    response = httpx.patch(
        url,
        headers={**ARCHIVIST, **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        content=path.read_bytes()[:sent],
        timeout=30,
    )
    assert response.status_code == 204 and int(response.headers["Upload-Offset"]) == sent
    assert "Upload-Expires" in response.headers
    assert any(upload_id in k for k in multipart_keys(short_lived))
    assert any(k.endswith(f"{upload_id}.tail") for k in staged_keys(short_lived))
    # Abandoned: after the expiry the sweeper aborts the multipart upload and removes everything.
    wait_for(
        lambda: not [k for k in multipart_keys(short_lived) if upload_id in k],
        40,
        0.5,
        "the multipart upload to be aborted",
    )
    assert not [k for k in staged_keys(short_lived) if upload_id in k]
    assert httpx.head(url, headers={**ARCHIVIST, **TUS}, timeout=10).status_code == 404
    assert httpx.get(url, headers=ARCHIVIST, timeout=10).status_code == 404


@on_both_s3_servers
def test_the_same_file_uploaded_twice_ends_as_the_existing_asset_and_its_parts_are_removed(
    ingest: Ingest, tmp_path: Path
) -> None:
    path = tmp_path / "lan-hai.jpg"
    expected = write_padded_jpeg(path, 2 * PART + 12345)
    first_url, _ = upload_with_tuspy(ingest.endpoint, AUTH, path, METADATA, 64 * MIB)
    first = settled(first_url)
    second_url, _ = upload_with_tuspy(ingest.endpoint, ARCHIVIST, path, {**METADATA, "title": "Bản sao"}, 3 * MIB)
    second = settled(second_url, 60, ARCHIVIST)
    assert first["state"] == second["state"] == "stored"
    assert first["duplicate"] is False and second["duplicate"] is True
    assert first["asset_id"] == second["asset_id"] == "a" + expected[:32]
    second_id = second["id"]
    assert not [k for k in multipart_keys(ingest) if second_id in k]
    assert not [k for k in staged_keys(ingest) if second_id in k]


@pytest.fixture(scope="module")
def full_originals(stack: LocalStack, quiet_nats: Settings) -> Iterator[Ingest]:
    """An ingest whose originals bucket has a hard quota of one byte: every finalisation fails
    at the copy of the original (a real refusal by MinIO), and is given up after 3 attempts."""
    settings = ingest_settings(
        quiet_nats,
        "minio",
        78,
        upload_part_size=PART,
        upload_lock_lease_s=LEASE_S,
        upload_sweep_interval_s=0.5,
        upload_s3_timeout_s=5.0,
        upload_finalise_max_attempts=3,
        bucket_originals="mam-originals-full",
        bucket_uploads="mam-uploads-full",
        upload_state_bucket="MAM_UPLOADS_FULL",
    )
    admin = MinioAdmin(
        endpoint=settings.resolved_s3_endpoint,
        credentials=StaticProvider(settings.s3_access_key, settings.s3_secret_key.get_secret_value()),
        secure=False,
    )
    with running_ingest(settings, "ingest-tus-full") as spec:  # its start makes the buckets
        admin.bucket_quota_set(settings.bucket_originals, 1)
        try:
            yield Ingest(settings, spec)
        finally:
            admin.bucket_quota_clear(settings.bucket_originals)


def test_a_finalisation_that_keeps_failing_is_given_up_with_its_reason_and_nothing_half_stored(
    full_originals: Ingest, quiet_nats: Settings, tmp_path: Path
) -> None:
    ingest = full_originals
    path = tmp_path / "kho-day.jpg"
    sha = write_padded_jpeg(path, PART + 4321)
    url, _ = upload_with_tuspy(ingest.endpoint, AUTH, path, METADATA, 64 * MIB)
    final = settled(url, 90)  # without a bound it stays "verifying", retried for ever
    assert final["state"] == "rejected" and final["asset_id"] is None, final
    error = final["error"]
    assert error["code"] == "finalise_failed", error
    assert "3 lần thử" in error["message_vi"] and "đầy" in error["message_vi"], error
    assert "3 attempts" in error["message_en"] and "full" in error["message_en"], error
    # Nothing half-stored: no multipart upload, staging or tail object, no original, no event.
    upload_id = final["id"]
    assert not [k for k in multipart_keys(ingest) if upload_id in k]
    assert not [k for k in staged_keys(ingest) if upload_id in k]
    assert run(ingest.s3().stat(ingest.settings.bucket_originals, content_key(sha))) is None

    async def asset_events() -> list[str]:
        store = await EventStore.connect(quiet_nats.resolved_nats_url, quiet_nats.event_stream)
        try:
            return [e.envelope.type for e in await store.history("asset", "a" + sha[:32])]
        finally:
            await store.close()

    assert run(asset_events()) == []


def test_unsupported_content_ends_rejected_with_the_reason_and_no_asset(ingest: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "khong-phai-media.bin"
    path.write_bytes(os.urandom(PART + 100))
    url, _ = upload_with_tuspy(ingest.endpoint, AUTH, path, METADATA, 64 * MIB)
    final = settled(url)
    assert final["state"] == "rejected" and final["asset_id"] is None
    assert (
        final["error"]["code"] == "unsupported_media" and final["error"]["message_vi"] and final["error"]["message_en"]
    )


def test_the_tus_protocol_is_advertised_and_a_checksum_mismatch_discards_the_bytes(ingest: Ingest) -> None:
    options = httpx.options(ingest.endpoint, headers=AUTH, timeout=10)
    assert options.status_code == 204
    assert options.headers["Tus-Version"] == "1.0.0"
    assert set(options.headers["Tus-Extension"].split(",")) >= {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    }
    assert "sha256" in options.headers["Tus-Checksum-Algorithm"].split(",")
    assert int(options.headers["Tus-Max-Size"]) == ingest.settings.max_upload_bytes
    preflight = httpx.options(
        ingest.endpoint,
        headers={
            "Origin": ingest.settings.web_url,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "upload-offset,tus-resumable,authorization",
        },
        timeout=10,
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ingest.settings.web_url
    created = create(ingest, 1000)
    url = created.headers["Location"]
    body = os.urandom(1000)
    wrong = httpx.patch(
        url,
        headers={
            **AUTH,
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(b"other").digest()).decode(),
        },
        content=body,
        timeout=10,
    )
    assert wrong.status_code == 460 and wrong.json()["error"]["code"] == "checksum_mismatch"
    assert head_offset(url, AUTH) == 0
    right = httpx.patch(
        url,
        headers={
            **AUTH,
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(body[:600]).digest()).decode(),
        },
        content=body[:600],
        timeout=10,
    )
    assert right.status_code == 204 and right.headers["Upload-Offset"] == "600"
    with_origin = httpx.head(url, headers={**AUTH, **TUS, "Origin": ingest.settings.web_url}, timeout=10)
    assert "upload-offset" in with_origin.headers["access-control-expose-headers"].lower()


def test_a_second_replica_carries_on_an_upload_the_first_one_began(
    ingest: Ingest, quiet_nats: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "hai-may.jpg"
    expected = write_padded_jpeg(path, 3 * PART + 777)
    settings = ingest.settings.model_copy(update={"ingest_port": ingest.settings.ingest_port + 10})
    with running_ingest(settings, f"ingest-tus-{settings.s3_backend}-replica"):
        created = create(ingest, path.stat().st_size)
        first_url = created.headers["Location"]
        DroppedPatch(first_url, path, 0, PART + 1234)
        upload_id = first_url.rsplit("/", 1)[-1]
        second_url = f"{settings.ingest_url}/v1/uploads/{upload_id}"
        offset = wait_for(
            lambda: head_offset(second_url, AUTH) == PART + 1234, 30, 0.2, "the replica to see the offset"
        )
        assert offset
        upload_with_tuspy(f"{settings.ingest_url}/v1/uploads", AUTH, path, METADATA, 64 * MIB, url=second_url)
        final = settled(second_url)
    assert final["state"] == "stored" and final["asset_id"] == "a" + expected[:32]


def test_a_finalisation_cut_by_kill_9_is_resumed_and_appends_asset_ingested_exactly_once(
    ingest: Ingest, quiet_nats: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chot.jpg"
    expected = write_padded_jpeg(path, 40 * MIB)
    url, _ = upload_with_tuspy(ingest.endpoint, AUTH, path, METADATA, 64 * MIB)
    ingest.kill_9()  # right after the last byte: finalisation had just begun, or not yet
    assert status_when_back(ingest, url)["state"] == "verifying"  # its lock has not lapsed yet
    final = settled(url, 60)
    assert final["state"] == "stored" and final["duplicate"] is False
    asset_id = "a" + expected[:32]
    assert final["asset_id"] == asset_id

    async def ingested_events() -> list[str]:
        store = await EventStore.connect(quiet_nats.resolved_nats_url, quiet_nats.event_stream)
        try:
            return [e.envelope.type for e in await store.history("asset", asset_id)]
        finally:
            await store.close()

    # Counted after the sweeper has had time to pass again: a late second append would show.
    time.sleep(2 * ingest.settings.upload_sweep_interval_s + 0.5)
    assert run(ingested_events()) == ["asset.ingested"]


def status_when_back(ingest: Ingest, url: str) -> dict[str, Any]:
    ingest.restart()
    return status(url)


def test_mam_uploads_lists_the_uploads_in_flight_with_their_owner_and_progress(ingest: Ingest, unique: str) -> None:
    owner = f"lt-{unique}"
    created = create(
        ingest, 3 * MIB, {**METADATA, "filename": "phong-van.mp4"}, headers=role_headers(Role.LUU_TRU, owner)
    )
    upload_id = created.headers["Location"].rsplit("/", 1)[-1]
    env = {**os.environ, **settings_env(ingest.settings)}

    def mam(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "uploads", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = {row["id"]: row for row in map(json.loads, mam("--json").splitlines())}
    assert rows[upload_id]["state"] == "receiving" and rows[upload_id]["owner"] == owner
    assert rows[upload_id]["offset"] == 0 and rows[upload_id]["length"] == 3 * MIB
    table = mam("--user", owner)
    assert upload_id in table and "phong-van.mp4" in table and "receiving" in table
    assert upload_id not in mam("--user", "phong-vien")


def test_a_patch_too_slow_for_the_pace_ends_with_408_and_keeps_what_arrived(impatient: Ingest, tmp_path: Path) -> None:
    # A provincial link that fades to a trickle: the connection is not held for ever (a few
    # such requests would tie the service up), and the bytes it did carry are not lost.
    path = tmp_path / "cham.jpg"
    expected = write_padded_jpeg(path, 600 * 1024)
    data = path.read_bytes()
    url = create(impatient, len(data)).headers["Location"]
    headers = {**AUTH, **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    patch = RawUpload(
        impatient.settings.ingest_port,
        {**headers, "Content-Length": str(len(data))},
        timeout=30.0,
        method="PATCH",
        path=urlsplit(url).path,
    )
    burst = 300 * 1024
    began = time.monotonic()
    try:
        patch.send(data[:burst])
        # 100 bytes every 0.5 s: never silent for 2 s, far under 64 KiB/s. Without a pace the
        # answer would be a socket timeout after 30 s.
        status, body, trickled = patch.response_while_trickling(
            data[at : at + 100] for at in range(burst, len(data), 100)
        )
    finally:
        patch.close()
    assert status == 408 and body["error"]["code"] == "body_timeout", body
    assert time.monotonic() - began < 20
    kept = head_offset(url, AUTH)
    assert burst <= kept <= burst + trickled  # what arrived before the 408 is saved
    rest = httpx.patch(url, headers={**headers, "Upload-Offset": str(kept)}, content=data[kept:], timeout=30.0)
    assert rest.status_code == 204, rest.text
    final = settled(url)
    assert final["state"] == "stored", final

    async def ingested() -> list[Any]:
        store = await EventStore.connect(impatient.settings.resolved_nats_url, impatient.settings.event_stream)
        try:
            return [e.envelope.payload for e in await store.history("asset", final["asset_id"])]
        finally:
            await store.close()

    [payload] = run(ingested())
    assert payload["sha256"] == expected and payload["size_bytes"] == len(data)
