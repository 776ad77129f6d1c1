"""The launcher hands its settings to the services it starts as MAM_* variables
(deploy.local.stack.settings_env): what a child reads back must be what the
launcher had."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.stack import settings_env
from shared.settings import Settings

UNSET_BY_DEFAULT = [name for name, field in Settings.model_fields.items() if field.default is None]


def _read_back(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a child process started with exactly ``env`` would read them."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"MAM_{name.upper()}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_unset_settings_are_not_passed_to_child_processes_as_the_text_none() -> None:
    env = settings_env(Settings())

    assert "None" not in env.values()
    assert UNSET_BY_DEFAULT, "no optional setting left to check"
    for name in UNSET_BY_DEFAULT:
        assert f"MAM_{name.upper()}" not in env, name


def test_a_child_reads_back_the_default_settings_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings()

    read_back = _read_back(settings_env(original), monkeypatch)

    for name in UNSET_BY_DEFAULT:
        assert getattr(read_back, name) is None, name
    assert read_back == original


def test_a_child_reads_back_changed_settings_unchanged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = Settings(
        home=tmp_path / "home",
        transcoder_work_dir=tmp_path / "scratch",
        bind_host="0.0.0.0",
        s3_secret_key="own-secret",
        search_run_projector=False,
        search_batch_wait_s=0.05,
    )

    assert _read_back(settings_env(original), monkeypatch) == original
