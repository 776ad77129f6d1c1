"""Faults injected into the cluster under test, and the wait for it to settle."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import nats
from minio.credentials.providers import StaticProvider
from minio.minioadmin import MinioAdmin
from nats.js.api import ConsumerInfo

from deploy.local import installers
from deploy.local.cluster import ClusterStack
from deploy.local.processes import running_pid, start, stop
from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import test_settings
from tests.faults.reconcile import Reconciliation, all_consumers_settled, projection_failures, reconcile

# The search projector's durable (services/search/app.py): it parks what it cannot write.
PROJECTOR = "search-projector"


def cluster_under_test() -> ClusterStack:
    """The cluster on the test ports (``MAM_TEST_PORT_OFFSET``), data apart from the single-node stack's."""
    base = test_settings()
    return ClusterStack(test_settings(home=base.home.with_name(base.home.name + "-cluster")))


def kill9(stack: ClusterStack, name: str) -> int:
    """SIGKILL the whole process group of ``name`` (a server and its children); its pid."""
    spec = stack.known(name)
    pid = running_pid(spec) if spec else None
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and running_pid(spec) is not None:  # type: ignore[arg-type]
        time.sleep(0.05)
    return pid


def restart(stack: ClusterStack, name: str) -> float:
    """Start ``name`` again; seconds until it is healthy."""
    return start(stack.spec(name)).seconds_to_healthy


def freeze(stack: ClusterStack, name: str) -> int:
    """SIGSTOP ``name``'s process group: alive, its sockets open, answering nothing (a partition
    as its peers see it). Always ``thaw`` it, in a ``finally``."""
    spec = stack.known(name)
    pid = running_pid(spec) if spec else None
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGSTOP)
    return pid


def thaw(pid: int) -> None:
    os.killpg(pid, signal.SIGCONT)


def restart_with(stack: ClusterStack, names: list[str], **overrides: object) -> ClusterStack:
    """Stop ``names`` and start them again with settings ``overrides`` (e.g. a shorter ack
    wait); the stack they now run under. ``restart_with(stack, names)`` puts them back."""
    changed = ClusterStack(stack.settings.model_copy(update=overrides)) if overrides else stack
    for name in names:
        spec = stack.known(name)
        if spec is not None:
            stop(spec)
    for name in names:
        start(changed.spec(name))
    return changed


def settle_and_reconcile(settings: Settings, acknowledged: dict[str, str], within_s: float = 300) -> Reconciliation:
    """Wait until every durable consumer has nothing left to do, then reconcile exactly.

    The projector may hold the events it parked with a recorded reason (a poison event's):
    that is their settled state; the reconciliation checks none is an acknowledged upload's."""

    async def settled() -> list[str]:
        deadline = time.monotonic() + within_s
        busy: list[str] = ["(not asked yet)"]
        while time.monotonic() < deadline:
            try:
                parked = {PROJECTOR: len(await projection_failures(settings))}
                busy = await all_consumers_settled(settings, parked)
            except Exception as exc:  # a node still electing: ask again
                busy = [repr(exc)]
            if not busy:
                # Twice, a few seconds apart: a redelivery after an ack wait would show here.
                await asyncio.sleep(3)
                busy = await all_consumers_settled(settings, parked)
                if not busy:
                    return []
            await asyncio.sleep(1)
        return busy

    busy = asyncio.run(settled())
    assert not busy, f"consumers not settled within {within_s:.0f}s: {busy}"
    return asyncio.run(reconcile(settings, acknowledged))


async def _history(settings: Settings, asset_id: str) -> list[EventEnvelope]:
    store = await EventStore.connect(settings.resolved_nats_url, settings.event_stream, configure=False)
    try:
        return [stored.envelope for stored in await store.history("asset", asset_id)]
    finally:
        await store.close()


def history(settings: Settings, asset_id: str) -> list[EventEnvelope]:
    """The asset's events, in stream order."""
    return asyncio.run(_history(settings, asset_id))


def event_types(settings: Settings, asset_id: str) -> Counter[str]:
    return Counter(e.type for e in history(settings, asset_id))


async def _consumer(settings: Settings, durable: str) -> ConsumerInfo:
    nc = await nats.connect(settings.nats_servers, connect_timeout=5)
    try:
        info: ConsumerInfo = await nc.jetstream().consumer_info(settings.event_stream, durable)
        return info
    finally:
        await nc.close()


def consumer(settings: Settings, durable: str) -> ConsumerInfo:
    """A durable consumer of the event stream as the server sees it (config, redeliveries)."""
    return asyncio.run(_consumer(settings, durable))


async def _publish_raw(settings: Settings, subject: str, data: bytes, msg_id: str) -> int:
    nc = await nats.connect(settings.nats_servers, connect_timeout=5)
    try:
        ack = await nc.jetstream().publish(subject, data, stream=settings.event_stream, headers={"Nats-Msg-Id": msg_id})
        return int(ack.seq)
    finally:
        await nc.close()


def publish_raw(settings: Settings, subject: str, data: bytes, msg_id: str) -> int:
    """Append bytes to the event stream as they are, past every model (a poison event); its sequence."""
    return asyncio.run(_publish_raw(settings, subject, data, msg_id))


def projection_failures_of(settings: Settings, asset_id: str) -> list[dict[str, object]]:
    """The projector's parked writes (with reasons) of one asset."""
    return [f for f in asyncio.run(projection_failures(settings)) if f.get("asset_id") == asset_id]


async def _sequences(settings: Settings, asset_ids: list[str]) -> tuple[int, dict[str, int]]:
    store = await EventStore.connect(settings.resolved_nats_url, settings.event_stream, configure=False)
    try:
        first = {a: (await store.history("asset", a))[0].sequence for a in asset_ids}
        return await store.last_sequence(), first
    finally:
        await store.close()


def stream_last_sequence(settings: Settings) -> int:
    return asyncio.run(_sequences(settings, []))[0]


def creation_sequences(settings: Settings, asset_ids: list[str]) -> dict[str, int]:
    """asset id → the stream sequence of its first event (its asset.ingested)."""
    return asyncio.run(_sequences(settings, asset_ids))[1]


def minio_admin(settings: Settings) -> MinioAdmin:
    """MinIO's admin API (the SDK's MinioAdmin) through the S3 balancer."""
    return MinioAdmin(
        endpoint=settings.resolved_s3_endpoint,
        credentials=StaticProvider(settings.s3_access_key, settings.s3_secret_key.get_secret_value()),
        secure=False,
    )


def restart_skewed(stack: ClusterStack, name: str, offset_s: int) -> None:
    """Restart ``name`` with its clock ``offset_s`` off (libfaketime, Debian's package, preloaded):
    every time it reads — the wall clock and the monotonic one — is shifted. ``restart_with``
    puts it back."""
    faketime = installers.debian_tool("faketime")  # the package that brings libfaketime
    libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    assert faketime and libraries, "libfaketime is not installed"
    spec = stack.spec(name)
    spec.env = {**spec.env, "LD_PRELOAD": str(libraries[0]), "FAKETIME": f"{offset_s:+d}"}
    known = stack.known(name)
    if known is not None:
        stop(known)
    start(spec)


def log_sizes(stack: ClusterStack, names: list[str]) -> dict[str, int]:
    """Where each process's log ends now (``logged_since`` reads on from there)."""
    return {n: (stack.local.log_dir / f"{n}.log").stat().st_size for n in names}


def logged_since(stack: ClusterStack, sizes: dict[str, int]) -> str:
    """What the processes of ``sizes`` logged since (a restarted process appends to the same file)."""
    text = []
    for name, size in sizes.items():
        with (stack.local.log_dir / f"{name}.log").open("rb") as log:
            log.seek(size)
            text.append(log.read().decode(errors="replace"))
    return "\n".join(text)


def start_heal(settings: Settings, bucket: str) -> str:
    """Ask MinIO to heal ``bucket`` now, recursively (the admin API's heal call, which the SDK's
    MinioAdmin signs but does not name); MinIO's answer (a heal sequence's token)."""
    admin = minio_admin(settings)
    response = admin._url_open(  # the SDK's signed admin request, for a call it lacks
        method="POST",
        command=SimpleNamespace(value=f"heal/{bucket}"),  # type: ignore[arg-type]
        body=json.dumps({"recursive": True, "dryRun": False, "remove": False, "scanMode": 1}).encode(),
    )
    return str(response.data.decode())
