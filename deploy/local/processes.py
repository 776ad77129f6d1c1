"""Supervision of long-running local processes: start detached, health-gate, stop.

Each process has a pid file and a log file under the data folder. Starting is
idempotent: a process that is already running and healthy is reused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class LaunchError(RuntimeError):
    """A server or service could not be installed, started or health-checked."""


HealthCheck = Callable[[], bool]


def http_ok(url: str, timeout: float = 2.0) -> HealthCheck:
    """A health check that passes when ``url`` answers 200."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    health: HealthCheck
    run_dir: Path
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    startup_timeout_s: float = 60.0
    # Some servers (Elasticsearch, SeaweedFS) take seconds to shut down on
    # SIGTERM; they get this long before SIGKILL.
    stop_grace_s: float = 20.0
    # A substring of /proc/<pid>/cmdline proving a pid file still names our process.
    cmdline_marker: str = ""

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"


@dataclass(frozen=True)
class StartResult:
    name: str
    pid: int
    reused: bool
    seconds_to_healthy: float


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_pid(spec: ProcessSpec) -> int | None:
    """The pid from the pid file if that process is still ours and alive."""
    try:
        pid = int(spec.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    if spec.cmdline_marker and spec.cmdline_marker not in _cmdline(pid):
        return None  # the pid was reused by an unrelated process after a reboot
    return pid


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(spec: ProcessSpec, pid: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if spec.health():
            return
        if not _alive(pid):
            raise LaunchError(
                f"{spec.name} exited while starting; last log lines ({spec.log_file}):\n{_log_tail(spec.log_file)}"
            )
        time.sleep(0.2)
    raise LaunchError(
        f"{spec.name} not healthy after {spec.startup_timeout_s:.0f}s; log {spec.log_file}:\n{_log_tail(spec.log_file)}"
    )


def start(spec: ProcessSpec) -> StartResult:
    """Start ``spec`` unless it already runs; return once it is healthy."""
    began = time.monotonic()
    existing = running_pid(spec)
    if existing is not None:
        wait_healthy(spec, existing, time.monotonic() + spec.startup_timeout_s)
        return StartResult(spec.name, existing, True, time.monotonic() - began)
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    if spec.health():
        raise LaunchError(
            f"{spec.name}: something else already answers its health check (port in use by a process "
            "this launcher did not start); stop it or choose other ports (MAM_*_PORT)"
        )
    env = {**os.environ, **spec.env}
    with spec.log_file.open("ab") as log:
        process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,  # own process group: stop() signals the whole tree
        )
    spec.pid_file.write_text(str(process.pid))
    try:
        wait_healthy(spec, process.pid, began + spec.startup_timeout_s)
    except LaunchError:
        stop(spec)
        raise
    return StartResult(spec.name, process.pid, False, time.monotonic() - began)


def stop(spec: ProcessSpec) -> bool:
    """SIGTERM the process group, wait ``stop_grace_s``, then SIGKILL. True if it ran."""
    pid = running_pid(spec)
    if pid is None:
        spec.pid_file.unlink(missing_ok=True)
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + spec.stop_grace_s
    while time.monotonic() < deadline and _alive(pid):
        _reap(pid)
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_deadline = time.monotonic() + 5
        while time.monotonic() < kill_deadline and _alive(pid):
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    spec.pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
