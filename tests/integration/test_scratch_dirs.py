"""Scratch space: every service writes its temporary files under its own work
dir, ``<home>/work/<service>-<port>``, never in ``/tmp``; what a crashed run
left there is swept when the service starts again."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import ProcessSpec, running_pid, start, stop
from deploy.local.stack import LocalStack
from shared.settings import Settings
from tests import conftest
from tests.conftest import AUTH, async_wait_for, consumer_settled, wait_for
from tests.processes import alive, children
from tests.transcoder_media import make_clip

pytestmark = pytest.mark.integration

TOOLS = ("ffmpeg", "tesseract")
TAGGER_DURABLE = "tagger"


def work_dir(settings: Settings, service: str) -> Path:
    return settings.home.resolve() / "work" / f"{service}-{getattr(settings, f'{service}_port')}"


def tool_paths(pid: int) -> dict[int, list[str]]:
    """Child ffmpeg/tesseract processes of ``pid`` → the file paths on their command lines."""
    found: dict[int, list[str]] = {}
    for child in children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if Path(argv[0]).name in TOOLS:
            found[child] = [a for a in argv[1:] if a.startswith("/")]
    return found


def upload_clip(http: httpx.Client, settings: Settings, clip: Path) -> str:
    response = http.post(
        f"{settings.ingest_url}/v1/assets",
        headers=AUTH,
        data={"title": "Khai mạc kỳ họp thứ 7", "activity_type": "ky-hop"},
        files={"file": ("khai-mac.mp4", clip.read_bytes(), "video/mp4")},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["asset_id"])


def test_the_tagger_extracts_keyframes_and_reads_text_inside_its_own_work_dir_never_in_tmp(
    services: Settings, stack: LocalStack, http: httpx.Client, unique: str, tmp_path: Path
) -> None:
    pid = running_pid(stack.service_spec("tagger"))
    assert pid is not None
    upload_clip(http, services, make_clip(tmp_path / "clip.mp4", unique, seconds=6.0, size="640x360"))
    running = wait_for(lambda: tool_paths(pid), 60, 0.02, "the tagger to run ffmpeg or tesseract on the clip")
    paths = [p for args in running.values() for p in args]
    assert paths, running
    assert all(Path(p).is_relative_to(work_dir(services, "tagger")) for p in paths), paths


async def test_a_tagger_restarted_after_a_crash_sweeps_what_the_crashed_job_left_in_its_work_dir(
    services: Settings, stack: LocalStack
) -> None:
    spec = stack.service_spec("tagger")
    # No job in flight: a message the killed process held would wait out the ack wait
    # (120 s) before another tagger could finish it, and stall the tests that follow.
    await async_wait_for(lambda: consumer_settled(services, TAGGER_DURABLE), 180, 0.5, "the tagger to be idle")
    pid = running_pid(spec)
    assert pid is not None
    # What `kill -9` during keyframe extraction leaves: the job's folder, its original, frames.
    crashed = work_dir(services, "tagger") / "mam-tagger-crashed1"
    (crashed / "frames").mkdir(parents=True, exist_ok=True)
    (crashed / "original").write_bytes(os.urandom(4 * 1024 * 1024))
    (crashed / "frames" / "kf001.png").write_bytes(os.urandom(64 * 1024))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, 0.05, "the tagger to die")

    start(spec)

    assert not crashed.exists()
    assert work_dir(services, "tagger").is_dir()


@pytest.fixture
def ingest_replica(services: Settings) -> Iterator[tuple[Settings, ProcessSpec]]:
    """A second ingest process, not started yet."""
    settings = conftest.test_settings(ingest_port=services.ingest_port + 67)
    spec = dataclasses.replace(LocalStack(settings).service_spec("ingest"), name="ingest-sweep")
    yield settings, spec
    stop(spec)


def test_an_ingest_sweeps_what_an_interrupted_upload_left_in_its_work_dir_when_it_starts(
    ingest_replica: tuple[Settings, ProcessSpec],
) -> None:
    settings, spec = ingest_replica
    leftover = work_dir(settings, "ingest") / "upload-interrupted"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(os.urandom(1024 * 1024))
    conftest.start_own(spec)
    assert not leftover.exists()
    assert work_dir(settings, "ingest").is_dir()
