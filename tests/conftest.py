"""Test fixtures. Servers are the real ones, started by the project's own
launcher on loopback with their own data folder and ports, so a developer's
`make run` stack is never touched. A server that cannot start fails the run:
no test is skipped for a missing server (CI=true or not).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from deploy.local.processes import LaunchError, ProcessSpec, start, stop
from deploy.local.stack import SERVERS, SERVICES, LocalStack
from shared.auth import Principal, Role, ensure_signing_keys, issue_access_token, load_private_key
from shared.commands import Refused
from shared.eventstore import EventStore
from shared.objectstore import ObjectStore
from shared.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (a CI job's timeout, ``kill``) ends as one stopped with
    Ctrl-C does: pytest's KeyboardInterrupt path tears every fixture down, so the servers the
    run started (a whole cluster for the fault suite) are stopped, not left holding ports."""
    signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the teardown short
    raise KeyboardInterrupt(f"stopped by signal {signum}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None:  # the run's servers are stopped now: a SIGTERM waits for that
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


# The test stack's ports; ``MAM_TEST_PORT_OFFSET`` adds one of SAFE_PORT_OFFSETS to each.
# No two stacks at safe offsets share a port (tests/unit/test_test_ports.py checks it:
# Elasticsearch at 29200/29300 once took MinIO's port of offset +200/+300).
TEST_PORTS = dict(
    nats_port=24222,
    nats_monitor_port=28222,
    minio_port=29000,
    minio_console_port=29001,
    seaweed_s3_port=28333,
    seaweed_master_port=29333,
    seaweed_volume_port=28080,
    seaweed_filer_port=28888,
    seaweed_master_grpc_port=25333,
    seaweed_volume_grpc_port=25080,
    seaweed_filer_grpc_port=25888,
    seaweed_s3_grpc_port=25334,
    es_port=29250,
    es_transport_port=29380,
    ingest_port=28401,
    search_port=28402,
    transcoder_port=28403,
    tagger_port=28404,
    catalogue_port=28405,
    accounts_port=28406,
    reels_port=28407,
    web_port=28408,
    # The cluster profile's extra nodes: a block of ClusterPorts.SIZE ports from here.
    cluster_port_base=24260,
)
# The cluster profile's second replica of each service listens on its port + this.
TEST_REPLICA_PORT_SHIFT = -3000
SAFE_PORT_OFFSETS = (0, 100, 200, 300, 400, 500, 1900, 2000, 2100, 2200, 2300, 2400)


def test_settings(**overrides: Any) -> Settings:
    """Settings of the test stack: ports and folders apart from `make run`'s.

    ``MAM_TEST_PORT_OFFSET`` shifts every port and the data folder, so several
    test runs (e.g. parallel developers on one machine) never share servers.
    """
    offset = int(os.environ.get("MAM_TEST_PORT_OFFSET", "0"))
    base: dict[str, Any] = {name: port + offset for name, port in TEST_PORTS.items()}
    base.update(
        home=Path(os.environ.get("MAM_TEST_HOME", REPO / ".mam" / f"test-{offset}")),
        es_index_prefix="mamtest",
        catalogue_follow_up_interval_s=2.0,  # a crash's leftovers are moved within the tests' waits
        cluster_replica_port_shift=TEST_REPLICA_PORT_SHIFT,
        jwt_private_key_file=_PRIVATE_KEY,
        jwt_public_key_file=_PUBLIC_KEY,
    )
    base.update(overrides)
    return Settings(**base)


# The test stacks' token-signing key pair: outside the data folders a run empties, so
# tokens minted when the tests are imported stay valid (the test key of the issue).
TEST_KEYS = REPO / ".mam" / "test-keys"
_PRIVATE_KEY, _PUBLIC_KEY = TEST_KEYS / "jwt-ed25519.pem", TEST_KEYS / "jwt-ed25519.pub.pem"


def role_headers(role: Role, subject: str | None = None) -> dict[str, str]:
    """``Authorization`` for a signed-in user of ``role`` (subject: the role's own name),
    as the accounts service would sign it; valid for the length of a test run."""
    ensure_signing_keys(_PRIVATE_KEY, _PUBLIC_KEY)
    principal = Principal(subject or role.value, subject or role.value, role)
    token, _ = issue_access_token(principal, load_private_key(_PRIVATE_KEY), ttl_s=12 * 3600)
    return {"Authorization": f"Bearer {token}"}


AUTH = role_headers(Role.PHONG_VIEN)  # a broadcaster: uploads, searches
ARCHIVIST = role_headers(Role.LUU_TRU)
PRODUCER = role_headers(Role.BIEN_TAP)
ADMIN = role_headers(Role.QUAN_TRI)  # operations (projection status, rebuilds), accounts


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """A coroutine run to its end on a loop of its own (from a synchronous test)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def refusal(call: Callable[[], object]) -> Refused:
    """The refusal ``call`` raises, checked to be bilingual (decide functions' tests)."""
    with pytest.raises(Refused) as caught:
        call()
    assert caught.value.message_vi and caught.value.message_en  # bilingual, always
    return caught.value


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """The process environment as a service reads it, without the developer's MAM_* variables."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"MAM_{name.upper()}", raising=False)
    monkeypatch.setenv("MAM_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


async def async_wait_for(
    predicate: Callable[[], Any], within: float = 20.0, interval: float = 0.2, what: str = ""
) -> Any:
    """``wait_for`` for async predicates: ``within`` seconds, then fail."""
    import asyncio

    timeout = within
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


async def consumer_settled(settings: Settings, durable: str) -> bool:
    """True once a durable consumer has nothing left to do: every message delivered and
    acknowledged, none waiting for redelivery. Count results after this, not at the
    first sight of one, so that a late duplicate is caught."""
    import nats

    nc = await nats.connect(settings.resolved_nats_url)
    try:
        info = await nc.jetstream().consumer_info(settings.event_stream, durable)
    finally:
        await nc.close()
    # Consumer sequences, not stream ones: a filtered consumer's delivered stream sequence
    # may run on past messages it skipped, while its ack floor stays on the last it took.
    delivered = info.delivered.consumer_seq if info.delivered else 0
    acked = info.ack_floor.consumer_seq if info.ack_floor else 0
    return not info.num_pending and not info.num_ack_pending and delivered == acked


@pytest.fixture(scope="session")
def settings() -> Settings:
    return test_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[LocalStack]:
    """All servers (NATS, MinIO, SeaweedFS, Elasticsearch) for the whole run.

    Every run starts from empty servers, as CI does: leftovers of an earlier or
    interrupted run (its stream backlog, its objects) would make results depend
    on history. ``MAM_TEST_KEEP_SERVERS=1`` keeps servers and data between runs.
    """
    local = LocalStack(settings)
    if os.environ.get("MAM_TEST_KEEP_SERVERS") != "1":
        local.down()
        shutil.rmtree(local.home, ignore_errors=True)
    try:
        local.up(servers=SERVERS, services=())
    except LaunchError as exc:
        pytest.fail(f"the local stack did not start: {exc}", pytrace=False)
    yield local
    if os.environ.get("MAM_TEST_KEEP_SERVERS") != "1":
        local.down()


# Services the session's ``services`` fixture runs: a module that started one of them alone
# (``one_service``) leaves it running for the session, which now counts on it.
SESSION_SERVICES: set[str] = set()


@pytest.fixture(scope="session")
def services(stack: LocalStack) -> Iterator[Settings]:
    """Every service running as a real process against the test stack."""
    specs = [stack.service_spec(name) for name in SERVICES]
    try:
        for spec in specs:
            start(spec)
            SESSION_SERVICES.add(spec.name)
    except LaunchError as exc:
        pytest.fail(f"a service did not start: {exc}", pytrace=False)
    yield stack.settings
    for spec in specs:
        stop(spec)


def start_own(spec: ProcessSpec) -> None:
    """Start a test's own extra process (another ingest, a replica, a skewed clock) on the port
    its settings shift to. The launcher would reuse a healthy process already there: another
    test's, with other settings, and the test would check the wrong one; that fails here."""
    started = start(spec)
    assert not started.reused, f"{spec.name}: its port is taken by a process already running there"


def one_service(stack: LocalStack, name: str) -> Iterator[Settings]:
    """One service for a module that needs nothing else: started unless already running, and
    stopped after the module unless it was running before, or the session's ``services``
    fixture has taken it on since (later modules count on it)."""
    spec = stack.service_spec(name)
    try:
        started = start(spec)
    except LaunchError as exc:
        pytest.fail(f"{name} did not start: {exc}", pytrace=False)
    yield stack.settings
    if not started.reused and spec.name not in SESSION_SERVICES:
        stop(spec)


@pytest.fixture(scope="session")
async def event_store(stack: LocalStack) -> AsyncIterator[EventStore]:
    s = stack.settings
    store = await EventStore.connect(s.resolved_nats_url, s.event_stream, s.event_dedup_window_s)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def quiet_nats(stack: LocalStack) -> Iterator[Settings]:
    """Settings pointing at a second NATS (same stream config) that no service consumes.

    The services react to asset events on the shared stream (the tagger appends
    ``asset.tagged`` within milliseconds), so tests of exact histories and of
    projection semantics use this server, where only the test writes.
    """
    s = stack.settings
    quiet = s.model_copy(update={"nats_port": s.nats_port + 3, "nats_monitor_port": s.nats_monitor_port + 3})
    spec = stack.nats_spec(name="nats-quiet", port=quiet.nats_port, monitor_port=quiet.nats_monitor_port)
    try:
        start(spec)
    except LaunchError as exc:
        pytest.fail(f"the quiet NATS did not start: {exc}", pytrace=False)
    yield quiet
    stop(spec)


@pytest.fixture(scope="session")
async def quiet_event_store(quiet_nats: Settings) -> AsyncIterator[EventStore]:
    s = quiet_nats
    store = await EventStore.connect(s.resolved_nats_url, s.event_stream, s.event_dedup_window_s)
    yield store
    await store.close()


def object_store_for(settings: Settings, backend: str, part_size: int = 5 * 1024 * 1024) -> ObjectStore:
    port = settings.seaweed_s3_port if backend == "seaweedfs" else settings.minio_port
    return ObjectStore(
        f"127.0.0.1:{port}",
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        part_size=part_size,
        presign_expiry_s=60,
    )


@pytest.fixture(scope="session")
async def es(stack: LocalStack) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(stack.settings.resolved_es_url)
    yield client
    await client.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0) as client:
        yield client
