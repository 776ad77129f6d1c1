"""The watch folder's choices that need no archive: when a file counts as finished,
which names are never taken, where captions come from, how a failure is filed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deploy.bulk_import.client import ArchiveClient, Credentials
from deploy.bulk_import.watch import FolderBusy, Watcher, is_candidate

# Nothing listens here: these tests never reach the point of uploading.
NOWHERE = ArchiveClient("http://127.0.0.1:9", Credentials(bearer="unused"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watcher(folder: Path, clock: Clock, settle_s: float = 5.0, caption_wait_s: float = 300.0) -> Watcher:
    return Watcher(folder, NOWHERE, settle_s=settle_s, caption_wait_s=caption_wait_s, clock=clock)


def test_a_growing_file_is_taken_only_once_unchanged_for_the_settle_time(tmp_path: Path) -> None:
    clock = Clock()
    w = watcher(tmp_path, clock)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"a" * 100)
    assert w.stable_files() == []  # first sight
    for step in range(4):
        clock.now += 4.0
        with clip.open("ab") as out:
            out.write(b"b" * 100)  # still being copied
        assert w.stable_files() == [], f"taken while growing (step {step})"
    clock.now += 4.0
    assert w.stable_files() == []  # unchanged for 4 s only
    clock.now += 1.5
    assert w.stable_files() == [clip]


def test_a_rewritten_file_of_the_same_size_starts_its_settle_time_again(tmp_path: Path) -> None:
    clock = Clock()
    w = watcher(tmp_path, clock)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"a" * 100)
    w.stable_files()
    clock.now += 4.0
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert w.stable_files() == []
    clock.now += 4.0
    assert w.stable_files() == []
    clock.now += 1.5
    assert w.stable_files() == [clip]


def test_a_restarted_watcher_waits_the_settle_time_again(tmp_path: Path) -> None:
    clock = Clock()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"a")
    first = watcher(tmp_path, clock)
    first.stable_files()
    clock.now += 10
    assert first.stable_files() == [clip]
    again = watcher(tmp_path, clock)  # what it saw before the restart is not trusted
    assert again.stable_files() == []


@pytest.mark.parametrize(
    "name", ["clip.mp4.part", "clip.mp4.crdownload", ".clip.mp4", "~$sheet.xlsx", "clip.mp4.json", "captions.csv"]
)
def test_temporary_and_caption_files_are_never_uploaded(name: str) -> None:
    assert not is_candidate(Path(name))


def test_a_sidecar_caption_wins_over_the_folder_sheet(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "captions.csv").write_text(
        "Tên tệp,Tiêu đề,Loại hoạt động\r\nclip.mp4,Từ bảng,ky-hop\r\nanh.jpg,Ảnh từ bảng,khac\r\n", encoding="utf-8"
    )
    (tmp_path / "clip.mp4.json").write_text(
        json.dumps({"tiêu đề": "Từ tệp kèm", "loại hoạt động": "tiep-xuc-cu-tri"}), encoding="utf-8"
    )
    w = watcher(tmp_path, Clock())
    row = w.caption_for(tmp_path / "clip.mp4")
    assert row is not None and (row.title, row.activity_type) == ("Từ tệp kèm", "tiep-xuc-cu-tri")
    other = w.caption_for(tmp_path / "anh.jpg")
    assert other is not None and other.title == "Ảnh từ bảng"
    assert w.caption_for(tmp_path / "none.jpg") is None


def test_a_file_without_a_caption_fails_with_a_bilingual_reason_after_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    w = watcher(tmp_path, clock, settle_s=1.0, caption_wait_s=30.0)
    (tmp_path / "lonely.jpg").write_bytes(b"x")
    w.stable_files()
    clock.now += 2
    [ready] = w.stable_files()
    assert w.handle(ready) is None  # waits for its caption
    assert ready.exists()
    clock.now += 31
    report = w.handle(ready)
    assert report is not None and report.problems[0]["code"] == "no_caption"
    assert not ready.exists()
    assert (tmp_path / "failed" / "lonely.jpg").read_bytes() == b"x"
    reason = (tmp_path / "failed" / "lonely.jpg.reason.txt").read_text("utf-8")
    assert "Lý do: Không có chú thích" in reason and "Reason: No caption" in reason


def test_a_broken_sidecar_fails_the_file_with_the_reason(tmp_path: Path) -> None:
    clock = Clock()
    w = watcher(tmp_path, clock, settle_s=1.0)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "clip.mp4.json").write_text("{not json", encoding="utf-8")
    w.stable_files()
    clock.now += 2
    [ready] = w.stable_files()
    w.handle(ready)
    assert (tmp_path / "failed" / "clip.mp4").exists()
    assert (tmp_path / "failed" / "clip.mp4.json").exists()  # the sidecar goes with its file
    assert "JSON" in (tmp_path / "failed" / "clip.mp4.reason.txt").read_text("utf-8")


def test_a_second_watcher_on_the_same_folder_refuses_to_start(tmp_path: Path) -> None:
    first = watcher(tmp_path, Clock())
    first.lock()
    try:
        with pytest.raises(FolderBusy):
            watcher(tmp_path, Clock()).lock()
    finally:
        first.unlock()
    second = watcher(tmp_path, Clock())
    second.lock()
    second.unlock()


def test_the_launcher_runs_the_watch_folder_only_when_named_and_configured(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from deploy.local.processes import LaunchError
    from deploy.local.stack import OPTIONAL_SERVICES, SERVICES, LocalStack
    from shared.settings import Settings

    assert "watch" in OPTIONAL_SERVICES and "watch" not in SERVICES  # off by default
    with pytest.raises(LaunchError, match="MAM_WATCH_DIR"):
        LocalStack(Settings(home=tmp_path)).service_spec("watch")
    configured = Settings(home=tmp_path, watch_dir=tmp_path / "drop", watch_api_key=SecretStr("mam_x_y"))
    spec = LocalStack(configured).service_spec("watch")
    assert spec.argv[-2:] == ["watch", str((tmp_path / "drop").resolve())]
    assert spec.env["MAM_WATCH_API_KEY"] == "mam_x_y"
    assert not spec.health()  # no heartbeat yet: not healthy until the watcher runs
