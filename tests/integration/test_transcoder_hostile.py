"""Hostile and broken files: each ends cleanly, as a 4xx at ingest or as
``asset.processing_failed`` from the transcoder, never a crash or a hang.

Each file goes both ways: through ingest (which may already refuse it), and
straight to the transcoder as an ``asset.ingested`` event over an original we
store ourselves, so the worker's own defences are tested, not only ingest's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.eventstore import EventStore, StoredEvent
from shared.ids import asset_id_for_sha256
from shared.objectstore import content_key
from shared.settings import Settings
from tests.conftest import async_wait_for, object_store_for
from tests.integration.test_transcoder_pipeline import payloads, upload, wait_final
from tests.transcoder_media import make_clip, make_photo, mkv_claiming_16000, png_claiming

pytestmark = pytest.mark.integration


class Canary:
    """A loopback HTTP server that counts every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.requests.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"\x47" * 188 * 10)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.server.shutdown()


async def inject(
    settings: Settings,
    events: EventStore,
    data: bytes,
    kind: AssetKind,
    filename: str,
    *,
    asset_id: str | None = None,
    bucket: str | None = None,
) -> str:
    """Store ``data`` as an original and announce it, bypassing ingest's checks (``asset_id``,
    ``bucket``: what the event says instead of the true ones)."""
    sha = hashlib.sha256(data).hexdigest()
    key = content_key(sha)
    local = Path(os.environ.get("TMPDIR", "/tmp")) / f"inject-{sha}"
    local.write_bytes(data)
    try:
        await object_store_for(settings, "minio").put_file(
            settings.bucket_originals, key, local, "application/octet-stream"
        )
    finally:
        local.unlink()
    asset_id = asset_id or asset_id_for_sha256(sha)
    payload = AssetIngestedV1(
        sha256=sha,
        size_bytes=max(1, len(data)),
        kind=kind,
        media_format="mov",
        mime_type="video/mp4",
        bucket=bucket or settings.bucket_originals,
        object_key=key,
        original_filename=filename,
        title="Tệp thử nghiệm độc hại",
        activity_type="khac",
    )
    await events.append(new_event(payload, aggregate_id=asset_id, actor="test-hostile"))
    return asset_id


def hls_playlist(canary: Canary, secret: Path) -> bytes:
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\nhttp://127.0.0.1:{canary.port}/seg0.ts\n#EXTINF:2.0,\nfile://{secret}\n"
        "#EXT-X-ENDLIST\n"
    ).encode()


def truncated_mp4(tmp: Path, tag: str) -> bytes:
    data = make_clip(tmp / "whole.mp4", tag, seconds=2.0, black_lead_s=0.0, extra=["-movflags", "+faststart"])
    return data.read_bytes()[: int(data.stat().st_size * 0.6)]


HOSTILE: dict[str, Callable[[Path, str, Canary, Path], bytes]] = {
    "hls_playlist_named_mp4": lambda tmp, tag, c, secret: hls_playlist(c, secret) + f"#{tag}\n".encode(),
    "ffconcat": lambda tmp, tag, c, secret: (
        f"ffconcat version 1.0\nfile '{secret}'\nfile 'http://127.0.0.1:{c.port}/x.mp4'\n#{tag}\n"
    ).encode(),
    "truncated_mp4": lambda tmp, tag, c, secret: truncated_mp4(tmp, tag),
    "zero_bytes": lambda tmp, tag, c, secret: b"",
    "random_bytes": lambda tmp, tag, c, secret: os.urandom(64 * 1024),
    "png_20000x20000": lambda tmp, tag, c, secret: png_claiming(20000, 20000) + tag.encode(),
    "video_header_16000x16000": lambda tmp, tag, c, secret: mkv_claiming_16000(tmp / "big.mkv", tag).read_bytes(),
}


def secret_markers(secret: bytes, token: str) -> dict[str, bytes]:
    """The secret file's bytes and what would still betray them inside an output:
    its random token (alone, as hex, as UTF-16 as in some media tags) and its
    base64 at each of the three alignments it can have in a longer encoded text."""
    markers = {
        "content": secret,
        "token": token.encode(),
        "token as hex": token.encode().hex().encode(),
        "token as UTF-16": token.encode("utf-16-le"),
    }
    for shift in range(3):
        # Drop the first and last 4-character groups, which mix in neighbouring bytes.
        markers[f"base64 (alignment {shift})"] = base64.b64encode(b"\0" * shift + secret)[4:-4]
    return markers


async def every_outcome(events: EventStore, asset_id: str, within: float = 360.0) -> list[StoredEvent]:
    """The asset's history once both workers that read its original (the
    transcoder and the tagger, which runs ffmpeg for OCR) recorded an outcome.

    Generous: in the whole suite the tagger may still be reading the photos of
    earlier tests when this asset arrives (test_transcoder_faults' six large photos
    keep Tesseract busy for a whole OCR budget each: 3 minutes of both tagging slots)."""
    wanted = ({"asset.renditions_ready", "asset.processing_failed"}, {"asset.tagged", "asset.tagging_failed"})

    async def done() -> list[StoredEvent] | None:
        history = await events.history("asset", asset_id)
        types = {e.envelope.type for e in history}
        return history if all(types & outcome for outcome in wanted) else None

    result: list[StoredEvent] = await async_wait_for(done, within, 0.5, f"every outcome for {asset_id}")
    return result


async def secret_leaks(
    settings: Settings, events: EventStore, asset_id: str, history: list[StoredEvent], markers: dict[str, bytes]
) -> list[str]:
    """Where a marker of the secret shows up: each rendition object written for
    the asset (read whole) and each of its events as stored in the stream."""
    found = []
    store = object_store_for(settings, "minio")
    for key in await store.list_keys(settings.bucket_renditions, f"{asset_id}/"):
        data = await store.get_bytes(settings.bucket_renditions, key)
        found += [f"rendition {key}: {name}" for name, marker in markers.items() if marker in data]
    assert history, "no event to search"
    for stored in history:
        raw = await events._js.get_msg(events.stream, stored.sequence)
        assert raw.subject == stored.subject  # the very message, as stored
        data = (raw.data or b"") + repr(raw.headers or {}).encode()
        found += [
            f"event {stored.sequence} {stored.envelope.type}: {name}"
            for name, marker in markers.items()
            if marker in data
        ]
    return found


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_a_hostile_file_is_refused_cleanly_and_never_reaches_the_network_or_other_files(
    case: str,
    services: Settings,
    event_store: EventStore,
    http: httpx.Client,
    unique: str,
    tmp_path: Path,
    canary: Canary,
) -> None:
    secret = tmp_path / "secret.txt"
    # Its own random token: the hostile file carries ``unique``, which may show up in events lawfully.
    token = uuid.uuid4().hex
    secret_bytes = f"HDND-SECRET {token} mật khẩu: {token[::-1]}\n".encode()
    secret.write_bytes(secret_bytes)
    data = HOSTILE[case](tmp_path, unique, canary, secret)

    response = upload(http, services, "clip.mp4", data, "video/mp4")
    assert 400 <= response.status_code < 500, f"ingest accepted {case}: {response.status_code} {response.text}"
    assert response.json()["error"]["message"]  # a Vietnamese reason for the user

    asset_id = await inject(services, event_store, data, AssetKind.VIDEO, "clip.mp4")
    history = await wait_final(event_store, asset_id, within=60)
    assert not payloads(history, "asset.renditions_ready")
    [failed] = payloads(history, "asset.processing_failed")
    assert failed.retryable is False and failed.stage.value in {"probe", "fetch"}
    assert failed.reason and failed.reason_en
    # Nothing the workers wrote for the asset holds the secret file, or a trace of it.
    history = await every_outcome(event_store, asset_id)
    leaks = await secret_leaks(services, event_store, asset_id, history, secret_markers(secret_bytes, token))
    assert leaks == [], f"the secret file {secret} leaked into: {leaks}"
    keys = await object_store_for(services, "minio").list_keys(services.bucket_renditions, f"{asset_id}/")
    assert keys == []
    assert canary.requests == [], f"ffmpeg reached the network: {canary.requests}"
    # The injected original is test debris (the zero-byte one has the same key in every
    # run, and the upload tests check that a refused empty file stores nothing).
    minio = object_store_for(services, "minio")
    await asyncio.to_thread(
        minio._client.remove_object, services.bucket_originals, content_key(hashlib.sha256(data).hexdigest())
    )


async def test_a_file_name_with_dot_dot_is_metadata_only_and_never_a_path(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str, tmp_path: Path
) -> None:
    target = Path("/tmp") / f"evil-{unique}.jpg"
    evil_name = f"../../../../tmp/evil-{unique}.jpg"
    response = upload(http, services, evil_name, make_photo(unique, size=(320, 200), orientation=1), "image/jpeg")
    assert response.status_code == 201, response.text
    asset_id = response.json()["asset_id"]
    # And straight to the worker with the raw name kept in the event.
    injected = await inject(
        services, event_store, make_photo(unique + "x", size=(320, 200), orientation=1), AssetKind.PHOTO, evil_name
    )
    for aid in (asset_id, injected):
        history = await wait_final(event_store, aid, within=60)
        [ready] = payloads(history, "asset.renditions_ready")
        assert all(r.key.startswith(f"{aid}/v1/") and ".." not in r.key for r in ready.renditions)
    assert not target.exists()


async def test_an_event_whose_payload_no_model_accepts_is_failed_at_once_with_its_reason_not_retried(
    services: Settings, event_store: EventStore
) -> None:
    # Appended as raw fields, as no service would write it: the same input fails every time.
    asset_id = asset_id_for_sha256(hashlib.sha256(uuid.uuid4().bytes).hexdigest())
    poison = EventEnvelope(
        event_id=str(uuid.uuid4()),
        type=AssetIngestedV1.EVENT_TYPE,
        schema_version=1,
        aggregate_id=asset_id,
        occurred_at=datetime.now(UTC),
        actor="test-hostile",
        correlation_id=str(uuid.uuid4()),
        payload={"bucket": 7, "sha256": ["not", "a", "hash"]},
    )
    await event_store.append(poison)

    async def failed() -> list[StoredEvent] | None:
        history = await event_store.history("asset", asset_id)
        return history if any(e.envelope.type == "asset.processing_failed" for e in history) else None

    await async_wait_for(failed, 120, 0.5, "the transcoder to fail the poison event")
    [failure] = [
        e.envelope.payload
        for e in await event_store.history("asset", asset_id)
        if e.envelope.type == "asset.processing_failed"
    ]
    assert failure["code"] == "invalid_data" and failure["retryable"] is False, failure
    assert failure["attempts"] == 1, failure  # at once: no delivery spent on a hopeless retry
    assert failure["reason"] and failure["reason_en"] and "sha256" in failure["detail"]


@pytest.mark.parametrize(
    ("what", "code"),
    [("asset_id_with_a_dash", "invalid_asset_id"), ("bucket_name_s3_refuses", "invalid_original_address")],
)
async def test_an_event_no_attempt_can_get_past_is_failed_at_once_not_retried(
    services: Settings, event_store: EventStore, what: str, code: str
) -> None:
    # A subject token may hold a dash, an asset id (a rendition key's prefix) may not; a bucket
    # name with capitals and an underscore is one S3 never accepts (checked before any request).
    data = make_photo(f"{what}-{uuid.uuid4().hex}", size=(64, 48), orientation=1)
    sha = hashlib.sha256(data).hexdigest()
    asset_id = await inject(
        services,
        event_store,
        data,
        AssetKind.PHOTO,
        "anh.jpg",
        asset_id=f"a-{sha[:20]}" if what == "asset_id_with_a_dash" else None,
        bucket="Originals_Of_Nobody" if what == "bucket_name_s3_refuses" else None,
    )
    history = await wait_final(event_store, asset_id, within=120)
    [failure] = payloads(history, "asset.processing_failed")
    assert failure.code == code and failure.retryable is False, failure
    assert failure.attempts == 1, failure  # at once: no delivery spent on a hopeless retry
    assert failure.reason and failure.reason_en and failure.detail
    assert not payloads(history, "asset.renditions_ready")
