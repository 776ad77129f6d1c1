"""The upload quota under racing creations: two ingest replicas, one user, real NATS KV.

Each creation reserves its length in the user's quota with a compare-and-set before
its record exists, so however the creations interleave across replicas, the bytes
reserved never pass the quota; an upload leaving ``receiving`` gives them back, and
a reservation no upload holds (a process killed mid-creation) is dropped by the
sweeper's reconciliation. A single-request upload's body is held, by the same rule, in
the quota of the replica whose spool disk it is on, for as long as its request lasts.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest

from deploy.local.stack import LocalStack
from services.ingest.upload_store import QUOTA_RESERVATION_GRACE_S, UploadStore
from shared.auth import Role
from shared.settings import Settings
from tests.conftest import ADMIN, role_headers
from tests.media import jpeg_bytes
from tests.uploads import (
    CLOSING,
    METADATA,
    MIB,
    RawUpload,
    field_part,
    file_head,
    ingest_settings,
    running_ingest,
    tus_metadata,
)

pytestmark = pytest.mark.integration

QUOTA = 20 * MIB
EACH = 3 * MIB  # six fit in the quota, the seventh does not
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Replicas:
    endpoints: list[str]
    ports: list[int]
    settings: Settings


@pytest.fixture(scope="module")
def replicas(stack: LocalStack, quiet_nats: Settings) -> Iterator[Replicas]:
    """Two ingest processes sharing one upload state (records, locks, quota) and staging bucket."""
    shared = {
        "upload_quota_bytes": QUOTA,
        "max_upload_bytes": 64 * MIB,
        "bucket_uploads": "mam-uploads-quota-race",
        "upload_state_bucket": "MAM_UPLOADS_QUOTA_RACE",
    }
    first = ingest_settings(quiet_nats, "minio", 85, **shared)
    second = ingest_settings(quiet_nats, "minio", 86, **shared)
    with running_ingest(first, "ingest-quota-a"), running_ingest(second, "ingest-quota-b"):
        yield Replicas(
            [f"{s.ingest_url}/v1/uploads" for s in (first, second)], [s.ingest_port for s in (first, second)], first
        )


@pytest.fixture
async def ledger(replicas: Replicas) -> AsyncIterator[UploadStore]:
    connection = await nats.connect(replicas.settings.resolved_nats_url)
    try:
        yield await UploadStore.open(connection.jetstream(), lease_s=20, bucket=replicas.settings.upload_state_bucket)
    finally:
        await connection.close()


def create(endpoint: str, user: dict[str, str], length: int, body: bytes | None = None) -> httpx.Response:
    headers = {**user, **TUS, "Upload-Length": str(length), "Upload-Metadata": tus_metadata(METADATA)}
    if body is not None:
        headers["Content-Type"] = "application/offset+octet-stream"
    return httpx.post(endpoint, headers=headers, content=body, timeout=60.0)


def racing_creations(replicas: Replicas, user: dict[str, str], count: int) -> list[httpx.Response]:
    """``count`` creations released at once, alternately on each replica."""
    start = threading.Barrier(count)

    def one(n: int) -> httpx.Response:
        start.wait(timeout=30)
        return create(replicas.endpoints[n % 2], user, EACH)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def terminate(location: str) -> None:
    gone = httpx.delete(location, headers={**ADMIN, **TUS}, timeout=30)
    assert gone.status_code == 204, gone.text


async def test_creations_racing_on_two_replicas_never_reserve_more_than_the_quota(
    replicas: Replicas, ledger: UploadStore, unique: str
) -> None:
    subject = f"pv-race-{unique}"
    user = role_headers(Role.PHONG_VIEN, subject)
    for _ in range(2):  # the second round races against the first round's leftovers
        answers = await asyncio.to_thread(racing_creations, replicas, user, 16)
        created = [r for r in answers if r.status_code == 201]
        refused = [r for r in answers if r.status_code != 201]
        assert all(r.status_code == 413 and r.json()["error"]["code"] == "quota_exceeded" for r in refused), [
            r.text for r in refused
        ]
        mine = (await asyncio.to_thread(httpx.get, replicas.endpoints[0], headers=user, timeout=30)).json()["uploads"]
        assert len(created) == len(mine) == QUOTA // EACH, (len(created), len(mine))
        assert await ledger.in_flight(subject) == sum(u["length"] for u in mine) == 6 * EACH
        for response in created:  # termination gives the bytes back
            await asyncio.to_thread(terminate, response.headers["Location"])
        assert await ledger.in_flight(subject) == 0


async def test_an_upload_with_all_its_bytes_gives_its_quota_back(replicas: Replicas, ledger: UploadStore) -> None:
    subject = f"pv-done-{datetime.now(UTC).timestamp()}"
    user = role_headers(Role.PHONG_VIEN, subject)
    body = b"not a photo, rejected when finalised" * 64
    whole = await asyncio.to_thread(
        create, replicas.endpoints[1], user, len(body), body
    )  # creation-with-upload: every byte at once
    assert whole.status_code == 201 and whole.headers["Upload-Offset"] == str(len(body)), whole.text
    assert await ledger.in_flight(subject) == 0
    assert (
        await asyncio.to_thread(create, replicas.endpoints[0], user, QUOTA)
    ).status_code == 201  # the whole quota is free again


async def test_a_reservation_a_crashed_creation_left_is_dropped_by_the_reconciliation(
    replicas: Replicas, ledger: UploadStore, unique: str
) -> None:
    subject = f"pv-crash-{unique}"
    user = role_headers(Role.PHONG_VIEN, subject)
    # A creation that reserved 15 MiB and died before its record was made.
    await ledger.reserve_quota(subject, "f" * 32, 15 * MIB, QUOTA)
    over = await asyncio.to_thread(create, replicas.endpoints[0], user, 10 * MIB)
    assert over.status_code == 413 and over.json()["error"]["code"] == "quota_exceeded", over.text
    records = await ledger.all()
    assert await ledger.reconcile_quota(records, datetime.now(UTC)) == 0  # within its grace: a creation under way
    later = datetime.now(UTC) + timedelta(seconds=QUOTA_RESERVATION_GRACE_S + 1)
    assert await ledger.reconcile_quota(await ledger.all(), later) >= 1
    assert await ledger.in_flight(subject) == 0
    again = await asyncio.to_thread(create, replicas.endpoints[1], user, 10 * MIB)
    assert again.status_code == 201, again.text
    await asyncio.to_thread(terminate, again.headers["Location"])


FORM = field_part("title", METADATA["title"]) + field_part("activity_type", METADATA["activity_type"])
CHUNKED = {"Transfer-Encoding": "chunked"}


def single_request(port: int, user: dict[str, str], headers: dict[str, str], pieces: list[bytes]) -> tuple[int, Any]:
    upload = RawUpload(port, {**user, **headers}, timeout=60.0)
    try:
        for piece in pieces:
            try:
                upload.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                # Refused early, the connection closed (413, Connection: close) while the
                # rest was still being sent: the answer came before the reset and is read.
                break
        return upload.response()
    finally:
        upload.close()


def refused(answer: tuple[int, Any], in_flight: int) -> bool:
    status, body = answer
    assert status == 413 and body["error"]["code"] == "quota_exceeded", answer
    assert body["error"]["in_flight_bytes"] == in_flight and "hạn mức" in body["error"]["message"], body
    return True


def photo_body(size: int) -> bytes:
    """A multipart body around a real photo padded to ``size`` bytes, new every call."""
    return FORM + file_head() + jpeg_bytes(random.randrange(1 << 30)) + os.urandom(size) + CLOSING


async def test_a_single_request_upload_holds_its_body_in_its_replica_s_quota_until_its_request_ends(
    replicas: Replicas, unique: str
) -> None:
    user = role_headers(Role.PHONG_VIEN, f"pv-single-{unique}")
    first, second = replicas.ports
    # A declared 15 MiB body, paused after 3 MiB: all 15 MiB are held from the start.
    big = photo_body(15 * MIB - 64 * 1024)
    holding = RawUpload(first, {**user, "Content-Length": str(len(big))}, timeout=60.0)
    try:
        holding.send(big[: 3 * MIB])
        ten = photo_body(10 * MIB)
        # On the same replica a declared 10 MiB is refused before its body is read...
        declared = {"Content-Length": str(len(ten))}
        assert refused(await asyncio.to_thread(single_request, first, user, declared, [ten[:MIB]]), len(big))
        # ...and a chunked body is cut off once what has arrived passes the 5 MiB the quota leaves.
        slices = [ten[i : i + 256 * 1024] for i in range(0, 6 * MIB, 256 * 1024)]  # the body never ends
        assert refused(await asyncio.to_thread(single_request, first, user, CHUNKED, slices), len(big))
        # The other replica's spool is another disk, with its own hold for the user.
        status, body = await asyncio.to_thread(single_request, second, user, declared, [ten])
        assert status == 201 and body["duplicate"] is False, body
        holding.send(big[3 * MIB :])
        status, body = await asyncio.to_thread(holding.response)
        assert status == 201 and body["duplicate"] is False, body
    finally:
        holding.close()
    # Given back when the request ended: the whole quota takes a chunked body again.
    again = photo_body(18 * MIB)
    pieces = [again[i : i + MIB] for i in range(0, len(again), MIB)] + [b""]  # b"": the last chunk
    status, body = await asyncio.to_thread(single_request, first, user, CHUNKED, pieces)
    assert status == 201 and body["duplicate"] is False, body
