"""Every request body bounded before a route (or its token check) reads it: in size and in time.

FastAPI reads a route's JSON or form body whole, into memory, before it solves the route's
dependencies (the token check among them), and uvicorn waits for a body as long as it
trickles in. Without a bound, one request, even without a token, could make a service
hold gigabytes, or keep a connection for ever. :class:`BoundedBodies` (installed on every
service by ``shared.http.service_app``) reads the body first:

- over ``max_bytes`` (a declared ``Content-Length`` before a byte is read, a chunked body
  as soon as it passes) → 413 ``too_large``;
- silent longer than the pace's ``idle_s``, or, after its ``grace_s``, slower on average than
  its ``min_rate`` → 408 ``body_timeout``;

both with ``Connection: close``, since the rest of the body is never read. The route then
gets the body whole. Routes that stream their bodies to disk or object storage under their
own limits and pace (the uploads) are left to do so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import UserError, error_response
from shared.settings import Settings


@dataclass(frozen=True)
class BodyPace:
    """How slowly a request body may arrive."""

    idle_s: float
    grace_s: float
    min_rate: float  # bytes a second, on average, once ``grace_s`` has passed

    def wait_allowed(self, elapsed_s: float, received: int) -> float:
        """How long the next piece of the body may take to come (≤ 0: too slow already)."""
        return min(self.idle_s, self.grace_s + received / self.min_rate - elapsed_s)


def body_pace(settings: Settings) -> BodyPace:
    return BodyPace(
        settings.upload_body_idle_timeout_s, settings.upload_body_grace_s, settings.upload_body_min_rate_bytes_s
    )


def body_timeout(pace: BodyPace) -> UserError:
    return UserError(
        408,
        "body_timeout",
        f"Dữ liệu gửi lên đến quá chậm hoặc bị dừng (im lặng quá {pace.idle_s:g} giây, hoặc chậm hơn "
        f"{pace.min_rate / 1024:g} KiB/giây); yêu cầu đã bị hủy, không có gì được lưu. Hãy gửi lại.",
        f"The request's body came too slowly or stalled (silent for over {pace.idle_s:g} s, or slower than "
        f"{pace.min_rate / 1024:g} KiB/s); the request was dropped and nothing was stored. Send it again.",
    )


class BodyStalled(Exception):
    """The body came slower than its pace allows. A route that keeps what arrived (a tus
    ``PATCH``) saves it first; every route then answers :meth:`error`."""

    def __init__(self, pace: BodyPace) -> None:
        super().__init__(f"the body stalled (pace {pace})")
        self.pace = pace

    def error(self) -> UserError:
        return body_timeout(self.pace)


async def paced(pieces: AsyncIterator[bytes], pace: BodyPace) -> AsyncIterator[bytes]:
    """A streamed body's pieces as they come, each within what ``pace`` allows
    (:class:`BodyStalled` otherwise): for the routes that read their own bodies."""
    began = time.monotonic()
    received = 0
    while True:
        allowed = pace.wait_allowed(time.monotonic() - began, received)
        if allowed <= 0:
            raise BodyStalled(pace)
        try:
            async with asyncio.timeout(allowed):  # in this task: wait_for's task a piece cost time
                chunk = await anext(pieces)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyStalled(pace) from None
        received += len(chunk)
        yield chunk


def body_too_large(limit: int) -> UserError:
    return UserError(
        413,
        "too_large",
        f"Nội dung yêu cầu vượt quá giới hạn {limit:,} byte.",
        f"The request body exceeds the limit of {limit:,} bytes.",
        limit_bytes=limit,
    )


class _Refused(Exception):
    def __init__(self, error: UserError) -> None:
        self.error = error


class _ClientGone(Exception):
    pass


class BoundedBodies:
    """ASGI middleware: see the module's docstring. ``streams(method, path)``: the routes left
    to read their own bodies."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, pace: BodyPace, streams: Callable[[str, str], bool] = lambda m, p: False
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.pace = pace
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streams(scope["method"], scope["path"]) or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except _Refused as refused:
            await error_response(refused.error)(scope, receive, send)
            return
        except _ClientGone:
            return  # nobody to answer
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            raise _Refused(body_too_large(self.max_bytes))
        began = time.monotonic()
        pieces: list[bytes] = []
        received = 0
        while True:
            allowed = self.pace.wait_allowed(time.monotonic() - began, received)
            if allowed <= 0:
                raise _Refused(body_timeout(self.pace))
            try:
                message = await asyncio.wait_for(receive(), allowed)
            except TimeoutError:
                raise _Refused(body_timeout(self.pace)) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            piece = message.get("body", b"")
            received += len(piece)
            if received > self.max_bytes:
                raise _Refused(body_too_large(self.max_bytes))
            pieces.append(piece)
            if not message.get("more_body", False):
                return b"".join(pieces)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request before it reaches here
    return None


def _has_body(scope: Scope) -> bool:
    declared = _declared_length(scope)
    if declared is not None:
        return declared > 0
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])
