"""Calling the other services' HTTP APIs as the signed-in user.

The pages hold no rule of their own about who may do what: every call carries
the user's access token and the API decides. An API's refusal comes back as
:class:`ApiRefused` with its bilingual message and, for a bad field, which
field, so the form can show it next to that field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.web.session import User
from shared.http import UserError


@dataclass
class ApiRefused(Exception):
    """A 4xx answer of an API: its status, code and message in both languages."""

    status: int
    code: str
    message_vi: str
    message_en: str
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # field → (vi, en)

    @classmethod
    def of(cls, response: httpx.Response) -> ApiRefused:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        fields: dict[str, tuple[str, str]] = {}
        for problem in error.get("problems") or []:
            name = str(problem.get("field", "")).split(".")[0]
            if name:
                fields[name] = (str(problem.get("message", "")), str(problem.get("message_en", "")))
        if error.get("field") and str(error["field"]) not in fields:
            fields[str(error["field"])] = (str(error.get("message", "")), str(error.get("message_en", "")))
        return cls(
            response.status_code,
            str(error.get("code", "error")),
            str(error.get("message", "Yêu cầu không thực hiện được.")),
            str(error.get("message_en", "The request could not be carried out.")),
            fields,
        )


def _unavailable(service: str) -> UserError:
    return UserError(
        502,
        "service_unavailable",
        f"Dịch vụ {service} đang không trả lời; vui lòng thử lại sau ít phút.",
        f"The {service} service is not answering; please try again in a few minutes.",
    )


class Backend:
    """One user's view of the APIs for one request."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: dict[str, str],
        user: User,
        renew: Callable[[], Awaitable[User | None]] | None = None,
    ) -> None:
        self._http = http
        self._urls = urls
        self.user = user
        self._renew = renew

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._send(service, method, path, **kwargs)
        if response.status_code == 401 and self.user.from_cookie and self._renew is not None:
            # Refused before it expired: revoked (another role, a new password). The API
            # refused it before acting, so the call is made again with a renewed token.
            user = await self._renew()
            if user is not None:
                self.user = user
                response = await self._send(service, method, path, **kwargs)
        return response

    async def _send(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self._urls[service]}{path}"
        for attempt in (1, 2):
            try:
                return await self._http.request(method, url, headers=self.user.headers, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                # A kept-alive connection the service closed a moment ago (uvicorn's idle
                # timeout) fails before it answers: a page failed on one such read once a
                # test run. Sent again on a fresh connection — always when it never left
                # (ConnectError), and reads only when the server may have seen it.
                safe_again = isinstance(exc, httpx.ConnectError) or method in ("GET", "HEAD")
                if attempt == 2 or not safe_again:
                    raise _unavailable(service) from exc
            except httpx.HTTPError as exc:
                raise _unavailable(service) from exc
        raise AssertionError("unreachable")

    async def json(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON; a 4xx is :class:`ApiRefused`, a 5xx the service being unavailable."""
        response = await self.call(service, method, path, **kwargs)
        if response.status_code >= 500:
            raise _unavailable(service)
        if response.status_code >= 400:
            raise ApiRefused.of(response)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    async def get(self, service: str, path: str, **params: Any) -> Any:
        return await self.json(service, "GET", path, params={k: v for k, v in params.items() if v not in (None, "")})

    async def optional(self, service: str, path: str, **params: Any) -> Any:
        """Like :meth:`get`, but None where the API refuses (a section of a page the user may not see)."""
        try:
            return await self.get(service, path, **params)
        except ApiRefused:
            return None
