"""Every error a service answers is the bilingual JSON shape, the framework's own
included, and nothing unexpected ever reaches the client as a plain-text 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

import nats.js.errors
import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from minio.error import S3Error
from pydantic import BaseModel

from shared.access import requires
from shared.auth import Principal
from shared.http import service_app
from shared.policy import Action
from tests.conftest import ARCHIVIST
from tests.conftest import test_settings as stack_settings


class _Deps:
    def __init__(self) -> None:
        self.nats_up = True

    async def readiness(self) -> dict[str, bool]:
        return {"nats": self.nats_up, "s3": True}

    async def close(self) -> None:
        return None


class _Body(BaseModel):
    title: str


router = APIRouter(prefix="/v1")


@router.post("/things")
async def make_thing(body: _Body, who: Annotated[Principal, Depends(requires(Action.SEARCH))]) -> dict[str, Any]:
    return {"title": body.title, "by": who.actor}


@router.get("/boom")
async def boom(who: Annotated[Principal, Depends(requires(Action.SEARCH))]) -> dict[str, Any]:
    raise RuntimeError("secret internals: /var/lib/mam/token=abc")


@router.get("/leader-election")
async def during_an_election(who: Annotated[Principal, Depends(requires(Action.SEARCH))]) -> dict[str, Any]:
    # What a JetStream publish raises while the stream elects a leader (seen in the cluster fault suite).
    raise nats.js.errors.NoStreamResponseError


@router.get("/bucket-full")
async def bucket_full(who: Annotated[Principal, Depends(requires(Action.SEARCH))]) -> dict[str, Any]:
    # What MinIO answers a write beyond a hard bucket quota (the cluster fault suite's fault 8).
    raise S3Error(None, "XMinioAdminBucketQuotaExceeded", "quota exceeded", "/originals/x", "r", "h")  # type: ignore[arg-type]


@router.get("/bucket-missing")
async def bucket_missing(who: Annotated[Principal, Depends(requires(Action.SEARCH))]) -> dict[str, Any]:
    raise S3Error(None, "NoSuchBucket", "no such bucket", "/originals/x", "r", "h")  # type: ignore[arg-type]


def _test_app() -> Any:
    async def build(_: Any) -> _Deps:
        return _Deps()

    return service_app("test", stack_settings(), build, [router])


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_test_app(), raise_server_exceptions=False) as c:
        c.headers.update(ARCHIVIST)
        yield c


@pytest.fixture(scope="module")
def strict_client() -> Iterator[TestClient]:
    """A client that raises whatever the app lets out to the server — what uvicorn would log
    as "Exception in ASGI application" with a traceback."""
    with TestClient(_test_app(), raise_server_exceptions=True) as c:
        c.headers.update(ARCHIVIST)
        yield c


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["message_en"]
    assert error["message"] != error["message_en"]  # Vietnamese first, English second
    return dict(error)


def test_an_unknown_route_is_a_bilingual_404(client: TestClient) -> None:
    _error(client.get("/v1/nothing-here"), 404, "not_found")


def test_a_wrong_method_is_a_bilingual_405_that_still_says_what_is_allowed(client: TestClient) -> None:
    response = client.delete("/v1/things")
    _error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


def test_deeply_nested_json_is_a_client_error_not_a_crash(client: TestClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client.post("/v1/things", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


def test_json_that_is_not_utf8_is_a_client_error(client: TestClient) -> None:
    response = client.post("/v1/things", content=b'{"title": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


def test_a_missing_field_is_a_bilingual_422_naming_the_field(client: TestClient) -> None:
    error = _error(client.post("/v1/things", json={}), 422, "invalid_request")
    assert error["problems"][0]["field"] == "title"


def test_an_unexpected_failure_is_a_json_500_with_a_correlation_id_and_no_internals(client: TestClient) -> None:
    response = client.get("/v1/boom")
    error = _error(response, 500, "internal_error")
    assert (
        error["correlation_id"] in error["message"] and response.headers["x-correlation-id"] == error["correlation_id"]
    )
    assert "secret" not in response.text and "Traceback" not in response.text


def test_a_server_away_for_a_moment_is_a_bilingual_503_with_retry_after_not_a_500(client: TestClient) -> None:
    response = client.get("/v1/leader-election")
    error = _error(response, 503, "server_unavailable")
    assert response.headers["retry-after"] == "5" and error["correlation_id"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/v1/leader-election", 503, "server_unavailable"), ("/v1/bucket-full", 507, "storage_full")],
)
def test_an_expected_outage_is_answered_and_logged_as_one_warning_line_without_reaching_the_server(
    strict_client: TestClient, caplog: pytest.LogCaptureFixture, path: str, status: int, code: str
) -> None:
    with caplog.at_level(logging.INFO):
        response = strict_client.get(path)  # raises here if the exception went on to the server
    error = _error(response, status, code)
    records = [r for r in caplog.records if r.name == "mam.http"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].exc_info is None and error["correlation_id"] in records[0].getMessage()


def test_a_real_bug_still_reaches_the_server_with_its_traceback(
    strict_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    for path, kind in (("/v1/boom", RuntimeError), ("/v1/bucket-missing", S3Error)):
        with caplog.at_level(logging.INFO), pytest.raises(kind):
            strict_client.get(path)
        assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records if r.name == "mam.http")
        caplog.clear()


def test_a_callers_correlation_id_is_kept(client: TestClient) -> None:
    response = client.get("/v1/boom", headers={"X-Correlation-Id": "req-0123456789"})
    assert response.json()["error"]["correlation_id"] == "req-0123456789"


def test_readiness_reports_each_server_and_a_missing_one_is_a_bilingual_503(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "checks": {"nats": True, "s3": True}}
    deps = client.app.state.deps  # type: ignore[attr-defined]
    deps.nats_up = False
    try:
        error = _error(client.get("/readyz"), 503, "not_ready")
    finally:
        deps.nats_up = True
    assert error["checks"] == {"nats": False, "s3": True} and "nats" in error["message"]
    assert client.get("/healthz").json() == {"status": "ok"}  # alive all the same: connections heal


def test_api_docs_are_served_on_loopback_and_not_beyond_unless_asked() -> None:
    async def build(_: Any) -> _Deps:
        return _Deps()

    local = TestClient(service_app("t", stack_settings(), build, [router]))
    assert local.get("/openapi.json").status_code == 200
    exposed = stack_settings(bind_host="0.0.0.0", s3_secret_key="s-81d0")
    assert TestClient(service_app("t", exposed, build, [router])).get("/openapi.json").status_code == 404
    asked = exposed.model_copy(update={"api_docs": True})
    assert TestClient(service_app("t", asked, build, [router])).get("/openapi.json").status_code == 200
