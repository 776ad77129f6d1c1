"""BoundedBodies: a body is read whole, within its size and pace, before the app sees it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from shared.request_bodies import BodyPace, BoundedBodies

LIMIT = 1000
PACE = BodyPace(idle_s=0.2, grace_s=0.5, min_rate=100.0)


def scope(headers: dict[str, str], method: str = "POST", path: str = "/v1/things") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


class App:
    """What the wrapped app saw: the body it read, or that it ran at all."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.ran = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ran = True
        pieces = []
        while True:
            message = await receive()
            pieces.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.body = b"".join(pieces)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def pieces_then(messages: list[Message], then_wait: bool = False) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then_wait:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


async def run(headers: dict[str, str], receive: Receive, **where: str) -> tuple[App, list[Message]]:
    app, sent = App(), []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BoundedBodies(app, max_bytes=LIMIT, pace=PACE, streams=lambda m, p: p.startswith("/upload"))
    await asyncio.wait_for(middleware(scope(headers, **where), receive, send), 5)
    return app, sent


def answer(sent: list[Message]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    start, body = sent[0], sent[1]
    return start["status"], dict(start["headers"]), json.loads(body["body"])


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 400, "more_body": True}] * 2
    last = {"type": "http.request", "body": b"y" * 200, "more_body": False}
    app, sent = await run({"Transfer-Encoding": "chunked"}, pieces_then([*chunks, last]))
    assert app.body == b"x" * 800 + b"y" * 200 and sent[0]["status"] == 204


async def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    read: list[int] = []

    async def receive() -> Message:
        read.append(1)
        return {"type": "http.request", "body": b"x", "more_body": True}

    app, sent = await run({"Content-Length": str(LIMIT + 1)}, receive)
    status, headers, body = answer(sent)
    assert (status, body["error"]["code"], body["error"]["limit_bytes"]) == (413, "too_large", LIMIT)
    assert headers[b"connection"] == b"close" and "giới hạn" in body["error"]["message"]
    assert not read and not app.ran


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    endless = [{"type": "http.request", "body": b"x" * 300, "more_body": True}] * 100
    app, sent = await run({"Transfer-Encoding": "chunked"}, pieces_then(endless))
    status, headers, body = answer(sent)
    assert status == 413 and body["error"]["code"] == "too_large" and headers[b"connection"] == b"close"
    assert not app.ran


async def test_a_stalled_body_is_dropped_with_408_after_the_idle_time() -> None:
    started = asyncio.get_running_loop().time()
    head = [{"type": "http.request", "body": b"{", "more_body": True}]
    app, sent = await run({"Content-Length": "10"}, pieces_then(head, then_wait=True))
    status, headers, body = answer(sent)
    assert status == 408 and body["error"]["code"] == "body_timeout" and headers[b"connection"] == b"close"
    assert 0.2 <= asyncio.get_running_loop().time() - started < 2 and not app.ran


async def test_a_trickling_body_is_dropped_once_slower_than_the_rate_after_the_grace() -> None:
    async def trickle() -> Message:  # a byte every 0.1 s: never idle, 10 bytes/s against 100
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b"x", "more_body": True}

    app, sent = await run({"Transfer-Encoding": "chunked"}, trickle)
    assert answer(sent)[0] == 408 and not app.ran


async def test_a_client_gone_mid_body_gets_no_answer_and_the_app_never_runs() -> None:
    head = [{"type": "http.request", "body": b"{", "more_body": True}]
    app, sent = await run({"Content-Length": "10"}, pieces_then(head))
    assert sent == [] and not app.ran


async def test_streaming_routes_and_bodiless_requests_go_straight_to_the_app() -> None:
    big = [{"type": "http.request", "body": b"x" * (LIMIT * 3), "more_body": False}]
    app, _ = await run({"Content-Length": str(LIMIT * 3)}, pieces_then(big), path="/upload/1")
    assert app.body == b"x" * (LIMIT * 3)
    app, sent = await run({}, pieces_then([{"type": "http.request", "body": b"", "more_body": False}]), method="GET")
    assert app.ran and sent[0]["status"] == 204
