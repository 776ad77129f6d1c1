"""``python -m services.<name>`` for every service the launcher knows: one way to
start (shared.service.run_service), honouring MAM_BIND_HOST and MAM_<NAME>_PORT,
and refusing the public demo values when listening beyond loopback.

uvicorn.run is replaced by a recorder: creating an app must not connect to any
server (adapters are built in the lifespan), so nothing here needs one.
"""

from __future__ import annotations

import runpy
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from deploy.local.stack import SERVICES
from shared.service import run_service
from shared.settings import Settings, is_loopback, unsafe_defaults

OWN_SECRET = "an-operator-chosen-secret"
OWN_CURSOR_KEY = "an-operator-chosen-cursor-key"
PORT = 23999


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments of every uvicorn.run call (none: the service did not start)."""
    calls: list[dict[str, Any]] = []

    def record(app: Any, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr(uvicorn, "run", record)
    return calls


def _bare_app(settings: Settings) -> FastAPI:
    return FastAPI()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_entry_module_listens_on_the_configured_host_and_port(
    name: str, env: pytest.MonkeyPatch, served: list[dict[str, Any]]
) -> None:
    env.setenv("MAM_BIND_HOST", "0.0.0.0")
    env.setenv(f"MAM_{name.upper()}_PORT", str(PORT))
    env.setenv("MAM_S3_SECRET_KEY", OWN_SECRET)
    env.setenv("MAM_SEARCH_CURSOR_KEY", OWN_CURSOR_KEY)
    env.setenv("MAM_WEB_SECRET_KEY", "an-operator-chosen-web-key")

    runpy.run_module(f"services.{name}", run_name="__main__")

    assert len(served) == 1
    assert isinstance(served[0]["app"], FastAPI)
    assert (served[0]["host"], served[0]["port"], served[0]["log_level"]) == ("0.0.0.0", PORT, "info")


def test_on_loopback_a_service_starts_with_the_demo_defaults(
    env: pytest.MonkeyPatch, served: list[dict[str, Any]]
) -> None:
    run_service("ingest", _bare_app)

    assert [(c["host"], c["port"]) for c in served] == [("127.0.0.1", Settings().ingest_port)]


def test_beyond_loopback_a_service_refuses_the_demo_s3_secret(
    env: pytest.MonkeyPatch, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("MAM_BIND_HOST", "0.0.0.0")
    env.setenv("MAM_SEARCH_CURSOR_KEY", OWN_CURSOR_KEY)

    with pytest.raises(SystemExit) as exit_:
        run_service("tagger", _bare_app)

    assert exit_.value.code == 2
    assert served == []
    message = capsys.readouterr().err
    assert "MAM_S3_SECRET_KEY" in message
    assert "MAM_SEARCH_CURSOR_KEY" not in message


def test_beyond_loopback_a_service_starts_once_tokens_and_s3_secret_are_set(
    env: pytest.MonkeyPatch, served: list[dict[str, Any]]
) -> None:
    env.setenv("MAM_BIND_HOST", "0.0.0.0")
    env.setenv("MAM_S3_SECRET_KEY", OWN_SECRET)
    env.setenv("MAM_SEARCH_CURSOR_KEY", OWN_CURSOR_KEY)

    run_service("transcoder", _bare_app)

    assert [(c["host"], c["port"]) for c in served] == [("0.0.0.0", Settings().transcoder_port)]


def test_beyond_loopback_the_public_cursor_key_is_refused_since_anyone_could_sign_cursors() -> None:
    settings = Settings(bind_host="0.0.0.0", s3_secret_key=OWN_SECRET)
    assert [p.variable for p in unsafe_defaults(settings)] == ["MAM_SEARCH_CURSOR_KEY"]
    own = Settings(bind_host="0.0.0.0", s3_secret_key=OWN_SECRET, search_cursor_key=OWN_CURSOR_KEY)
    assert unsafe_defaults(own) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.0.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "mam.example.vn", ""])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_beyond_loopback_the_web_pages_refuse_the_public_csrf_key(
    env: pytest.MonkeyPatch, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("MAM_BIND_HOST", "0.0.0.0")
    env.setenv("MAM_S3_SECRET_KEY", OWN_SECRET)
    env.setenv("MAM_SEARCH_CURSOR_KEY", OWN_CURSOR_KEY)

    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("services.web", run_name="__main__")

    assert exit_.value.code == 2
    assert served == []
    assert "MAM_WEB_SECRET_KEY" in capsys.readouterr().err
