"""The services' HTTP protocol (shared.http_protocol) on a real uvicorn on loopback: a client
that leaves mid-body has its bytes handed to the app, not dropped with the connection."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from shared.http_protocol import KeepsReceivedBytes
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

DECLARED = 100_000
SENT = 20_000  # under uvicorn's 64 KiB read-ahead: all of it waits in uvicorn's buffer


class SlowReader:
    """An ASGI app that starts reading a body only once its client has surely left."""

    def __init__(self) -> None:
        self.client_gone = threading.Event()
        self.bodies: queue.Queue[tuple[int, str]] = queue.Queue()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.to_thread(self.client_gone.wait, 10)
        # By then uvicorn has, as a rule, read the bytes and seen the close (were it not, the app
        # would get them from either protocol: the test could not fail wrongly).
        await asyncio.sleep(0.2)
        received, ended = 0, "complete"
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                ended = "disconnect"
                break
            received += len(message["body"])
            if not message.get("more_body"):
                break
        self.bodies.put((received, ended))


@pytest.fixture
def server() -> Iterator[tuple[int, SlowReader]]:
    app = SlowReader()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=KeepsReceivedBytes, lifespan="off", log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            uvicorn_server.run(sockets=[listening])
        except BaseException as exc:  # the test fails on it below
            failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    wait_for(lambda: uvicorn_server.started or failures, 10, 0.02, "uvicorn to start")
    try:
        yield listening.getsockname()[1], app
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)
        listening.close()
    assert not failures, failures
    assert not thread.is_alive()


def test_the_bytes_a_client_sent_before_leaving_reach_the_app_then_the_disconnect(
    server: tuple[int, SlowReader],
) -> None:
    port, app = server
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(
        f"PATCH /v1/uploads/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {DECLARED}\r\n\r\n".encode()
        + b"\x00" * SENT
    )
    client.close()
    app.client_gone.set()
    assert app.bodies.get(timeout=10) == (SENT, "disconnect")
