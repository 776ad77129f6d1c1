"""The local launcher: idempotent starts, health gating, clean stops."""

import sys
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import LaunchError, ProcessSpec, http_ok, running_pid, start, stop
from deploy.local.stack import SERVERS, LocalStack
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def test_a_second_up_reuses_the_running_healthy_servers(stack: LocalStack) -> None:
    before = stack.status()
    results = stack.up(servers=SERVERS, services=())
    assert all(r.reused for r in results)
    assert {r.name: r.pid for r in results} == {name: before[name] for name in SERVERS}


def test_every_server_keeps_its_data_under_the_one_data_folder(stack: LocalStack) -> None:
    for name in SERVERS:
        assert (stack.home / name).is_dir(), name
        assert (stack.log_dir / f"{name}.log").exists(), name


def test_nats_is_configured_to_fsync_every_write(stack: LocalStack) -> None:
    conf = (stack.home / "nats" / "nats.conf").read_text()
    assert "sync_interval: always" in conf
    varz = httpx.get(f"http://127.0.0.1:{stack.settings.nats_monitor_port}/varz").json()
    assert varz["jetstream"]["config"]["sync_always"] is True


def test_an_extra_server_starts_health_checked_and_stops_cleanly(stack: LocalStack) -> None:
    s = stack.settings
    spec = stack.nats_spec(name="nats-launcher-test", port=s.nats_port + 5, monitor_port=s.nats_monitor_port + 5)
    first = start(spec)
    try:
        assert not first.reused and spec.health()
        assert start(spec).reused
    finally:
        assert stop(spec)
    assert running_pid(spec) is None and not spec.pid_file.exists()
    assert not spec.health()


def _spec(tmp: Path, name: str, code: str, port: int, **kw: object) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-c", code],
        health=http_ok(f"http://127.0.0.1:{port}/"),
        run_dir=tmp / "run",
        log_dir=tmp / "logs",
        **kw,
    )  # type: ignore[arg-type]


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    port = 28499
    code = (
        "import signal, http.server\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    spec = _spec(tmp_path, "stubborn", code, port, stop_grace_s=1.0, startup_timeout_s=20)
    result = start(spec)
    assert running_pid(spec) == result.pid
    assert stop(spec)
    wait_for(lambda: running_pid(spec) is None, timeout=10, what="stubborn process to die")
    assert not spec.health()


def test_a_server_that_dies_at_startup_fails_with_its_log(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        "broken",
        "print('cấu hình hỏng / broken config', flush=True); raise SystemExit(3)",
        28498,
        startup_timeout_s=20,
    )
    with pytest.raises(LaunchError, match="broken config"):
        start(spec)
    assert not spec.pid_file.exists()
