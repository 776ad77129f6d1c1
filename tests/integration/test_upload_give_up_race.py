"""A resumable upload giving up while another ingest of the same bytes goes on, or once
its own ingest landed unbeknown to it (real NATS, MinIO).

The give-up removes the content-addressed original it copied when no asset holds it;
another ingest of the same bytes may have found that original in place (and so not
stored it again) and append its ``asset.ingested`` around the removal. Both orders
of "the other ingest appends" and "the give-up looks and removes" are driven here
deterministically; in each, the asset must end with its original.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from services.ingest.domain import validate_metadata
from services.ingest.finalise import Finaliser, ingested_event_id
from services.ingest.originals import record_original
from services.ingest.upload_store import UploadStore
from services.ingest.uploads import UploadRecord, staging_key
from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.ids import asset_id_for_sha256
from shared.media.probe import Limits, probe_file
from shared.objectstore import ObjectStore, content_key
from shared.settings import Settings
from tests.conftest import object_store_for
from tests.transcoder_media import make_photo

pytestmark = pytest.mark.integration


@dataclass
class Race:
    settings: Settings
    events: EventStore
    objects: ObjectStore
    store: UploadStore
    finaliser: Finaliser
    record: UploadRecord
    data: bytes
    local: Path

    @property
    def sha256(self) -> str:
        return self.record.sha256 or ""

    async def other_ingest(self) -> None:
        """``POST /v1/assets`` of the same bytes: the original from a local file."""
        limits = Limits()
        probe = await asyncio.to_thread(probe_file, self.local, limits)

        async def put_original(bucket: str, key: str, content_type: str, metadata: dict[str, str]) -> None:
            await self.objects.put_file(bucket, key, self.local, content_type)

        await record_original(
            self.events,
            self.objects,
            self.settings.bucket_originals,
            put_original,
            actor="luu-tru",
            meta=self.record.meta,
            probe=probe,
            sha256=self.sha256,
            size=len(self.data),
            filename="anh.jpg",
        )

    async def original_after_the_dust_settles(self) -> bytes | None:
        key = content_key(self.sha256)
        if await self.objects.stat(self.settings.bucket_originals, key) is None:
            return None
        return await self.objects.get_bytes(self.settings.bucket_originals, key)


@pytest.fixture
async def race(quiet_nats: Settings, quiet_event_store: EventStore, tmp_path: Path, unique: str) -> AsyncIterator[Race]:
    # One failed attempt is the last: the upload gives up at its first failure.
    settings = quiet_nats.model_copy(update={"upload_finalise_max_attempts": 1})
    objects = object_store_for(settings, "minio")
    await objects.ensure_buckets(settings.bucket_originals, settings.bucket_uploads)
    connection = await nats.connect(settings.resolved_nats_url)
    store = await UploadStore.open(connection.jetstream(), lease_s=20, bucket=f"UPLOADS_{unique}")
    data = make_photo(f"give-up-race-{unique}", size=(320, 200), orientation=1)
    local = tmp_path / "anh.jpg"
    local.write_bytes(data)
    upload_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    record = UploadRecord(
        id=upload_id,
        owner="phong-vien",
        length=len(data),
        meta=validate_metadata("Tiếp xúc cử tri phường Hạc Thành", None, None, "tiep-xuc-cu-tri", None),
        s3_key=staging_key(upload_id),
        s3_upload_id="joined",
        state="verifying",
        completed=True,  # its parts joined into the staging object
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=1),
    )
    await objects.put_bytes(settings.bucket_uploads, record.s3_key, data)
    await store.create(record)
    # What the upload's earlier work left: its copy of the original, without an asset yet.
    await objects.copy(
        settings.bucket_uploads,
        record.s3_key,
        settings.bucket_originals,
        content_key(record.sha256 or ""),
        "image/jpeg",
        {"sha256": record.sha256 or ""},
    )
    finaliser = Finaliser(settings, quiet_event_store, objects, store, Limits(), tmp_path)
    try:
        yield Race(settings, quiet_event_store, objects, store, finaliser, record, data, local)
    finally:
        await connection.close()


def failing_its_own_append(
    race: Race, monkeypatch: pytest.MonkeyPatch, before_the_others: Callable[[], Awaitable[None]] | None = None
) -> None:
    """The upload's own ``asset.ingested`` cannot be appended (NATS away, for it only);
    ``before_the_others`` runs once, just before the other ingest's append."""
    real_append = race.events.append
    own = ingested_event_id(race.record.id)
    pending = [before_the_others] if before_the_others else []

    async def append(event: EventEnvelope, *args: Any, **kwargs: Any) -> Any:
        if event.event_id == own:
            raise ConnectionError("NATS unreachable (test)")
        if pending:
            await pending.pop()()
        return await real_append(event, *args, **kwargs)

    monkeypatch.setattr(race.events, "append", append)


def landing_its_own_append_reported_failed(race: Race, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload's own ``asset.ingested`` lands, and its append is reported failed all the
    same (the server's answer lost: a timeout on a slow server)."""
    real_append = race.events.append
    own = ingested_event_id(race.record.id)

    async def append(event: EventEnvelope, *args: Any, **kwargs: Any) -> Any:
        result = await real_append(event, *args, **kwargs)
        if event.event_id == own:
            raise nats.errors.TimeoutError
        return result

    monkeypatch.setattr(race.events, "append", append)


async def given_up(race: Race) -> UploadRecord:
    got = await race.store.get(race.record.id)
    assert got is not None
    return got[0]


async def test_an_ingest_that_found_the_original_before_a_give_up_removed_it_puts_it_back(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other ingest finds the original in place (no copy of its own), then the upload
    # gives up (no asset yet: it removes the original), then the other ingest appends.
    failing_its_own_append(race, monkeypatch, before_the_others=lambda: race.finaliser.finalise(race.record.id))
    await race.other_ingest()
    assert (await given_up(race)).state == "rejected"
    history = await race.events.history("asset", asset_id_for_sha256(race.sha256))
    assert [e.envelope.type for e in history] == ["asset.ingested"]
    assert await race.original_after_the_dust_settles() == race.data


async def test_a_give_up_that_removed_an_original_an_asset_took_meanwhile_puts_it_back(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upload gives up and finds no asset; the other ingest finds the original in place
    # and appends; then the upload's removal comes.
    failing_its_own_append(race, monkeypatch)
    real_remove = race.objects.remove
    originals = race.settings.bucket_originals
    others = [race.other_ingest]

    async def remove(bucket: str, key: str) -> None:
        if bucket == originals and others:
            await others.pop()()
        await real_remove(bucket, key)

    monkeypatch.setattr(race.objects, "remove", remove)
    await race.finaliser.finalise(race.record.id)
    assert not others, "the give-up never removed the original: the race was not run"
    # Its bytes are in the archive after all, as the other ingest's asset: a duplicate.
    ended = await given_up(race)
    assert (ended.state, ended.asset_id, ended.duplicate) == ("stored", asset_id_for_sha256(race.sha256), True)
    history = await race.events.history("asset", asset_id_for_sha256(race.sha256))
    assert [e.envelope.type for e in history] == ["asset.ingested"]
    assert await race.original_after_the_dust_settles() == race.data
    # Its staging object is gone all the same: nothing of the given-up upload is left.
    assert await race.objects.stat(race.settings.bucket_uploads, race.record.s3_key) is None


async def test_a_give_up_whose_own_append_landed_ends_stored_as_its_own_asset(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing_its_own_append_reported_failed(race, monkeypatch)
    await race.finaliser.finalise(race.record.id)
    ended = await given_up(race)
    assert (ended.state, ended.asset_id, ended.duplicate, ended.error) == (
        "stored",
        asset_id_for_sha256(race.sha256),
        False,
        None,
    )
    history = await race.events.history("asset", asset_id_for_sha256(race.sha256))
    assert [(e.envelope.type, e.envelope.event_id) for e in history] == [
        ("asset.ingested", ingested_event_id(race.record.id))
    ]
    assert await race.original_after_the_dust_settles() == race.data
    assert await race.objects.stat(race.settings.bucket_uploads, race.record.s3_key) is None


async def test_a_give_up_with_no_other_ingest_leaves_no_original_behind(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_its_own_append(race, monkeypatch)
    await race.finaliser.finalise(race.record.id)
    assert (await given_up(race)).state == "rejected"
    assert await race.original_after_the_dust_settles() is None
    assert await race.events.history("asset", asset_id_for_sha256(race.sha256)) == []


async def test_a_give_up_that_could_not_put_the_original_back_is_mended_when_the_upload_is_resumed(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As above, but copying the original back fails (S3 away for a moment): the upload stays
    # "verifying", and the sweeper's next attempt finds the asset and puts the original back.
    failing_its_own_append(race, monkeypatch)
    real_remove, real_copy = race.objects.remove, race.objects.copy
    originals = race.settings.bucket_originals
    others = [race.other_ingest]

    async def remove(bucket: str, key: str) -> None:
        if bucket == originals and others:
            await others.pop()()
        await real_remove(bucket, key)

    async def copy(source_bucket: str, source_key: str, bucket: str, *args: Any, **kwargs: Any) -> None:
        if bucket == originals:
            raise ConnectionError("S3 unreachable (test)")
        await real_copy(source_bucket, source_key, bucket, *args, **kwargs)

    monkeypatch.setattr(race.objects, "remove", remove)
    monkeypatch.setattr(race.objects, "copy", copy)
    await race.finaliser.finalise(race.record.id)
    assert not others, "the give-up never removed the original: the race was not run"
    assert (await given_up(race)).state == "verifying"  # interrupted: resumed later
    assert await race.original_after_the_dust_settles() is None
    monkeypatch.setattr(race.objects, "copy", real_copy)
    await race.finaliser.finalise(race.record.id)  # what the sweeper does
    resumed = await given_up(race)
    assert (resumed.state, resumed.duplicate) == ("stored", True)
    assert await race.original_after_the_dust_settles() == race.data
