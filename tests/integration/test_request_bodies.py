"""Every service bounds a request body before any route, or its token check, reads it.

FastAPI reads a JSON or form body whole, into memory, before it checks the token: without
the bound one anonymous request announcing a gigabyte made a service read (and hold) all of
it. Each service answers 413 ``too_large`` as soon as the declared length, or the bytes of a
chunked body, pass ``max_request_body_bytes``, and closes the connection.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from typing import Any

import pytest

from deploy.local.stack import SERVICES
from shared.settings import Settings

pytestmark = pytest.mark.integration

GIB = 1024 * 1024 * 1024
# A route of each service that reads a body (the bound applies before routing, so any path would do).
BODY_ROUTES = {"accounts": "/v1/auth/token", "catalogue": "/v1/classify", "reels": "/v1/reels"}


def port_of(settings: Settings, service: str) -> int:
    return int(getattr(settings, f"{service}_port"))


def post(port: int, path: str, headers: dict[str, str], pieces: list[bytes]) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15.0)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        chunked = headers.get("Transfer-Encoding") == "chunked"
        for piece in pieces:
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, json.loads(answer.read() or b"{}")
    finally:
        conn.close()


@pytest.mark.parametrize("service", SERVICES)
def test_an_anonymous_body_announcing_a_gigabyte_is_refused_before_it_is_read(services: Settings, service: str) -> None:
    began = time.monotonic()
    status, headers, body = post(
        port_of(services, service),
        BODY_ROUTES.get(service, "/v1/anything"),
        {"Content-Type": "application/json", "Content-Length": str(GIB)},
        [b'{"text": "' + b"a" * 65536],
    )
    assert status == 413 and body["error"]["code"] == "too_large", (status, body)
    assert body["error"]["limit_bytes"] == services.max_request_body_bytes and body["error"]["message_en"]
    assert headers["connection"] == "close"
    assert time.monotonic() - began < 10


def test_a_chunked_body_is_cut_off_once_it_passes_the_bound(services: Settings) -> None:
    slices = [b"username=" + b"a" * 65536] + [os.urandom(256 * 1024) for _ in range(4 * 9)]
    status, headers, body = post(
        port_of(services, "accounts"),
        "/v1/auth/token",
        {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"},
        slices,
    )
    assert status == 413 and body["error"]["code"] == "too_large" and headers["connection"] == "close", body
