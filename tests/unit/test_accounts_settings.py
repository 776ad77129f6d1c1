"""Demo accounts exist on loopback only, and the launcher makes the token-signing key pair
before any service starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

from deploy.local import stack as stack_module
from deploy.local.stack import LocalStack
from shared.service import run_service
from shared.settings import Settings, unsafe_defaults

OWN = {"s3_secret_key": "own-secret", "search_cursor_key": "own-key"}


def test_on_loopback_the_demo_accounts_are_made_by_default() -> None:
    assert Settings().creates_demo_accounts


def test_beyond_loopback_no_demo_accounts_are_made_unless_asked_and_asking_is_refused() -> None:
    beyond = Settings(bind_host="0.0.0.0", **OWN)

    assert not beyond.creates_demo_accounts
    assert unsafe_defaults(beyond) == []
    asked = Settings(bind_host="0.0.0.0", demo_accounts=True, **OWN)
    problems = unsafe_defaults(asked)
    assert [p.variable for p in problems] == ["MAM_DEMO_ACCOUNTS"]
    assert problems[0].message_vi and problems[0].message_en


def test_demo_accounts_can_be_turned_off_on_loopback() -> None:
    assert not Settings(demo_accounts=False).creates_demo_accounts


def test_the_accounts_service_refuses_to_listen_beyond_loopback_with_demo_accounts(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[Any] = []
    env.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))
    env.setenv("MAM_BIND_HOST", "0.0.0.0")
    env.setenv("MAM_DEMO_ACCOUNTS", "true")
    for name, value in OWN.items():
        env.setenv(f"MAM_{name.upper()}", value)

    with pytest.raises(SystemExit) as exit_:
        run_service("accounts", lambda settings: None)  # type: ignore[arg-type,return-value]

    assert exit_.value.code == 2 and served == []
    err = capsys.readouterr().err
    assert "MAM_DEMO_ACCOUNTS" in err and "Từ chối khởi động" in err


def test_the_launcher_makes_the_signing_key_pair_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "home")
    started: list[tuple[str, bool]] = []

    def start(spec: Any) -> Any:
        started.append((spec.name, settings.resolved_jwt_public_key_file.exists()))
        return None

    monkeypatch.setattr(LocalStack, "install", lambda self, servers: None)
    monkeypatch.setattr(LocalStack, "service_spec", lambda self, name: type("Spec", (), {"name": name})())
    monkeypatch.setattr(stack_module, "start", start)

    LocalStack(settings).up(servers=(), services=("accounts", "ingest"))

    assert started == [("accounts", True), ("ingest", True)]
    assert settings.resolved_jwt_private_key_file.exists()
