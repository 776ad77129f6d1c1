"""One request must not take a service's NATS connection down until a restart.

nats-py closes its client for good when the server answers a protocol error;
ids are bounded before any adapter sees them, and a client closed anyway is
replaced on next use (issue 10, finding 1)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from deploy.local.processes import running_pid
from deploy.local.stack import LocalStack
from shared import nats_liveness
from shared.events.envelope import new_event
from shared.events.tagging import PersonRegisteredV1
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH, async_wait_for

pytestmark = pytest.mark.integration
LONG_ID = "a" * 4100  # over NATS's 4 KB control line once in a subject


async def test_an_event_store_whose_connection_the_server_closed_reconnects_on_next_use(
    quiet_nats: Settings, unique: str
) -> None:
    s = quiet_nats
    store = await EventStore.connect(s.resolved_nats_url, s.event_stream)
    try:
        client = store._nc
        await client.publish(f"mam.asset.{LONG_ID}.x", b"")  # the server answers -ERR and closes
        await async_wait_for(lambda: _closed(client), 10, what="the server to close the connection")
        event = new_event(PersonRegisteredV1(name="Lê Văn Hồi"), aggregate_id=f"p{unique}", actor="test")
        result = await store.append(event)
        assert result.sequence > 0 and not result.duplicate
        assert [e.envelope.event_id for e in await store.history("person", f"p{unique}")] == [event.event_id]
        assert await store.ready()
    finally:
        await store.close()


async def _closed(client: object) -> bool:
    return bool(getattr(client, "is_closed", False))


def test_a_long_id_is_refused_and_every_service_keeps_working(services: Settings, http: httpx.Client) -> None:
    s = services
    asset = "a" + "0" * 32
    probes = [
        f"{s.ingest_url}/v1/assets/{{id}}",
        f"{s.search_url}/v1/assets/{{id}}/history",
        f"{s.search_url}/v1/assets/{{id}}/renditions",
        f"{s.catalogue_url}/v1/assets/{{id}}/tags",
    ]
    for template in probes:
        for bad in (LONG_ID, "ä", "a²", "a%0A"):
            response = http.get(template.format(id=bad), headers=AUTH)
            assert response.status_code == 400, (template, bad, response.text)
            assert response.json()["error"]["code"] == "invalid_asset_id"
        # The same service still reaches NATS: an unknown asset is a clean 404, not a 500.
        after = http.get(template.format(id=asset), headers=AUTH)
        assert after.status_code == 404, (template, after.text)
    edit = http.patch(f"{s.catalogue_url}/v1/assets/{LONG_ID}/metadata", headers=ARCHIVIST, json={"title": "x"})
    assert edit.status_code == 400
    for url in (s.ingest_url, s.search_url, s.catalogue_url, s.tagger_url, s.transcoder_url):
        ready = http.get(f"{url}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", (url, ready.text)


async def test_an_event_store_leaves_a_server_that_stopped_answering_within_its_ping_budget(
    stack: LocalStack, quiet_nats: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen server (SIGSTOP: the TCP connection stays open) is noticed by the pings the
    connection was made with — nats-py's own default would take 4 minutes."""
    s = quiet_nats
    monkeypatch.setattr(nats_liveness, "PING_INTERVAL_S", 1)
    monkeypatch.setattr(nats_liveness, "MAX_OUTSTANDING_PINGS", 2)
    spec = stack.nats_spec(name="nats-quiet", port=s.nats_port, monitor_port=s.nats_monitor_port)
    pid = running_pid(spec)
    assert pid is not None
    store = await EventStore.connect(s.resolved_nats_url, s.event_stream)
    frozen_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        client = store._nc
        await async_wait_for(lambda: _left(client), 15, what="the client to give up on the frozen server")
        noticed_s = time.monotonic() - frozen_at
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        await async_wait_for(lambda: _connected(store._nc), 30, what="the client to reconnect once it answers")
        assert await store.ready()
    finally:
        await store.close()
    assert noticed_s < 10, noticed_s


async def _left(client: object) -> bool:
    return not getattr(client, "is_connected", True)


async def _connected(client: object) -> bool:
    return bool(getattr(client, "is_connected", False))
