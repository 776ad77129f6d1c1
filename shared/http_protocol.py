"""The HTTP protocol every service listens with: uvicorn's (httptools), except that a request
whose client leaves mid-body is first handed the bytes that had already arrived.

uvicorn reads a request body ahead of the app (until about 64 KiB wait unread) and, once the
connection is lost, answers the app's next ``receive()`` with ``http.disconnect``, dropping
what it had read but not handed over. A resumable upload keeps every byte a dropped link
delivered (the client asks the offset and resumes from it); with plain uvicorn a drop lost
up to 64 KiB of them, in 7 of 60 drops on a loaded machine, and the client sent them again.

The hook is uvicorn's own per-request ``RequestResponseCycle``: its ``receive`` is wrapped
when the request's task starts. Should a uvicorn release rename what is used here, requests
are served as plain uvicorn serves them (tests/integration/test_resumable_uploads.py's
drop test then goes red).
"""

from __future__ import annotations

import contextlib
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# What of uvicorn's cycle the wrapper reads.
_CYCLE_ATTRIBUTES = ("receive", "body", "more_body", "response_complete")


class KeepsReceivedBytes(HttpToolsProtocol):
    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if all(hasattr(cycle, name) for name in _CYCLE_ATTRIBUTES):
            with contextlib.suppress(AttributeError):  # a cycle with __slots__: served as is
                cycle.receive = _handing_over_received_bytes(cycle, cycle.receive)
        super()._start_asgi_task(cycle, app)


def _handing_over_received_bytes(cycle: Any, receive: Any) -> Any:
    async def receive_keeping_bytes() -> Any:
        message = await receive()
        if message["type"] == "http.disconnect" and cycle.body and not cycle.response_complete:
            # Read before the client left, not yet handed over: the app gets them, and the
            # disconnect on its next call (the buffer is empty then).
            body, cycle.body = bytes(cycle.body), bytearray()
            return {"type": "http.request", "body": body, "more_body": cycle.more_body}
        return message

    return receive_keeping_bytes
