"""Running ffmpeg safely on untrusted media (house rule 4).

Commands are built with ``ffmpeg-python`` from :func:`safe_input`, which forces
the demuxer chosen by content sniffing, allows only the ``file`` protocol and
turns off MP4 external data references, so no input can make ffmpeg open the
network or another file. ffmpeg runs as a child process awaited by asyncio
(the event loop keeps serving acks and health checks), under a timeout, and
dies with its parent. Its stderr is kept (bounded) and becomes the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import resource
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

_STDERR_KEEP = 64 * 1024
_PR_SET_PDEATHSIG = 1
_libc_name = ctypes.util.find_library("c")
_prctl = ctypes.CDLL(_libc_name, use_errno=True).prctl if _libc_name else None
# Lines that say nothing about why a run failed.
_NOISE = ("Conversion failed!", "Exiting normally")
# Failures that come from the machine, not the file: running again may help.
_TRANSIENT = (
    "No space left on device",
    "Cannot allocate memory",
    "Resource temporarily unavailable",
    "received signal",
)


class FfmpegError(RuntimeError):
    """ffmpeg failed; ``detail`` is its stderr summarised."""

    def __init__(
        self, message_vi: str, message_en: str, detail: str, *, retryable: bool, code: str = "ffmpeg_failed"
    ) -> None:
        super().__init__(f"{message_en}: {detail}")
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en
        self.detail = detail
        self.retryable = retryable


@dataclass(frozen=True)
class RunStats:
    elapsed_s: float
    # CPU of all children reaped meanwhile: exact when one ffmpeg runs at a time.
    cpu_s: float
    # The last 64 KiB of stderr: what filters such as loudnorm/ebur128 report.
    stderr: str = ""


def safe_input(path: Path, demuxer: str, **options: Any) -> Any:
    """An ffmpeg-python input node for an untrusted local file."""
    opts: dict[str, Any] = {"f": demuxer, "protocol_whitelist": "file", **options}
    if demuxer == "mov":
        opts["enable_drefs"] = 0  # MP4 data references can point at other files
    # The "file:" prefix stops a name like "http:x" being read as a URL.
    return ffmpeg.input(f"file:{path}", **opts)


def compile_args(stream: Any) -> list[str]:
    """argv for a node built with ffmpeg-python, quiet and never reading stdin."""
    argv: list[str] = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-y").compile()
    return argv


def summarize_stderr(stderr: str, limit: int = 600) -> str:
    """The distinct, meaningful last lines of ffmpeg's stderr, newest last."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if line and not any(n in line for n in _NOISE) and line not in lines[-3:]:
            lines.append(line)
    out = " | ".join(lines[-4:])
    return out[-limit:] if len(out) > limit else out


def _die_with_parent() -> None:
    # A kill -9 of the worker must not leave an orphaned encode running.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


async def _drain(stream: asyncio.StreamReader, keep: deque[bytes]) -> None:
    size = 0
    while chunk := await stream.read(8192):
        keep.append(chunk)
        size += len(chunk)
        while size > _STDERR_KEEP and len(keep) > 1:
            size -= len(keep.popleft())


async def _read_progress(stream: asyncio.StreamReader, on_out_time_s: Callable[[float], None]) -> None:
    # ``-progress pipe:1`` writes key=value blocks; out_time_us is the output position.
    while line := await stream.readline():
        key, _, value = line.decode(errors="replace").strip().partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit():
            on_out_time_s(max(int(value), 0) / 1_000_000)


async def run_ffmpeg(
    argv: list[str],
    timeout_s: float,
    *,
    cwd: Path | None = None,
    on_out_time_s: Callable[[float], None] | None = None,
) -> RunStats:
    """Run one ffmpeg command; raises :class:`FfmpegError` on failure or timeout.

    With ``on_out_time_s`` the command must write ``-progress pipe:1``: it is
    called with the output position in seconds as ffmpeg reports it. ``cwd``
    lets a filter graph name its files (fonts, text) relatively, so no path
    is ever spliced into a filter string.
    """
    began = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if on_out_time_s else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent,
        # Its own process group: a SIGTERM to the service's group (shutdown)
        # must not look like ffmpeg failing on the file. Shutdown cancels the
        # job instead, which kills ffmpeg below and leaves the message unacked.
        start_new_session=True,
    )
    assert proc.stderr is not None
    kept: deque[bytes] = deque()
    drain = asyncio.create_task(_drain(proc.stderr, kept))
    progress = None
    if on_out_time_s is not None:
        assert proc.stdout is not None
        progress = asyncio.create_task(_read_progress(proc.stdout, on_out_time_s))
    try:
        async with asyncio.timeout(timeout_s):
            await proc.wait()
            await drain
            if progress is not None:
                await progress
    except TimeoutError:
        proc.kill()
        await proc.wait()
        drain.cancel()
        if progress is not None:
            progress.cancel()
        raise FfmpegError(
            "Xử lý media quá thời gian cho phép.",
            f"ffmpeg timed out after {timeout_s:.0f}s",
            summarize_stderr(b"".join(kept).decode(errors="replace")),
            retryable=True,
            code="ffmpeg_timeout",
        ) from None
    except BaseException:
        # Cancelled (shutdown): never leave the child running.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        drain.cancel()
        if progress is not None:
            progress.cancel()
        raise
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if proc.returncode != 0:
        detail = summarize_stderr(b"".join(kept).decode(errors="replace")) or f"exit status {proc.returncode}"
        # Killed by a signal (e.g. out of memory) is the machine's fault, not the file's.
        transient = (proc.returncode or 0) < 0 or any(t in detail for t in _TRANSIENT)
        raise FfmpegError(
            "Không xử lý được tệp media (ffmpeg báo lỗi).",
            "ffmpeg could not process the media",
            detail,
            retryable=transient,
        )
    return RunStats(time.perf_counter() - began, cpu, b"".join(kept).decode(errors="replace"))
