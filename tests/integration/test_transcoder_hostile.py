"""Hostile and broken files: each ends cleanly, as a 4xx at ingest or as
``asset.processing_failed`` from the transcoder, never a crash or a hang.

Each file goes both ways: through ingest (which may already refuse it), and
straight to the transcoder as an ``asset.ingested`` event over an original we
store ourselves, so the worker's own defences are tested, not only ingest's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shared.events.envelope import new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.eventstore import EventStore
from shared.ids import asset_id_for_sha256
from shared.objectstore import content_key
from shared.settings import Settings
from tests.conftest import object_store_for
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


async def inject(settings: Settings, events: EventStore, data: bytes, kind: AssetKind, filename: str) -> str:
    """Store ``data`` as an original and announce it, bypassing ingest's checks."""
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
    asset_id = asset_id_for_sha256(sha)
    payload = AssetIngestedV1(
        sha256=sha,
        size_bytes=max(1, len(data)),
        kind=kind,
        media_format="mov",
        mime_type="video/mp4",
        bucket=settings.bucket_originals,
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
    secret_bytes = f"SECRET-{unique}".encode()
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
