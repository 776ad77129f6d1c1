"""The web service's calls to the APIs: a kept-alive connection the API had just closed
is not an outage (one read failed a browser journey that way); writes are not repeated."""

from __future__ import annotations

import httpx
import pytest

from services.web.backend import Backend
from services.web.session import User
from shared.auth import Principal, Role
from shared.http import UserError

USER = User(Principal("luu-tru", "Lưu trữ", Role.LUU_TRU), "token", from_cookie=True)


def _backend(failures: int, error: type[httpx.HTTPError], sent: list[str]) -> Backend:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if len(sent) <= failures:
            raise error("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json={"ok": True})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return Backend(http, {"search": "http://search.test"}, USER)


async def test_a_read_on_a_connection_the_service_just_closed_is_sent_once_more() -> None:
    sent: list[str] = []
    assert await _backend(1, httpx.RemoteProtocolError, sent).get("search", "/v1/assets/a1/renditions") == {"ok": True}
    assert sent == ["GET", "GET"]


async def test_a_write_the_service_may_have_seen_is_not_repeated_and_a_second_failure_is_an_outage() -> None:
    sent: list[str] = []
    with pytest.raises(UserError) as refused:
        await _backend(1, httpx.RemoteProtocolError, sent).json("search", "POST", "/v1/projection/rebuild")
    assert sent == ["POST"] and refused.value.status == 502
    sent.clear()
    with pytest.raises(UserError):
        await _backend(2, httpx.RemoteProtocolError, sent).get("search", "/v1/search")
    assert sent == ["GET", "GET"]
    sent.clear()  # a connection never made: the request never left, a write may go again
    assert await _backend(1, httpx.ConnectError, sent).json("search", "POST", "/v1/x") == {"ok": True}
    assert sent == ["POST", "POST"]
