"""``mam import`` and ``mam watch`` against the real ingest service's tus endpoint:
200 files from a Windows-1258 caption sheet, the dry run's report, re-runs that
create nothing, an import killed with SIGKILL that resumes at its row, a file cut
mid-upload that resumes at its offset, and the watch folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from deploy.bulk_import.client import ArchiveClient, Credentials
from deploy.bulk_import.journal import Journal
from deploy.bulk_import.run import import_file
from deploy.bulk_import.sheet import SheetRow
from deploy.cli import main
from deploy.local.processes import LaunchError, start, stop
from deploy.local.stack import LocalStack
from shared.eventstore import EventStore
from shared.ids import asset_id_for_sha256
from shared.settings import Settings
from tests.caption_sheets import write_sheet
from tests.conftest import AUTH, REPO, one_service, run, wait_for

pytestmark = pytest.mark.integration

TOKEN = AUTH["Authorization"].removeprefix("Bearer ")
HEADER = ["Tên tệp", "Tiêu đề", "Loại hoạt động", "Chú thích", "Ngày ghi hình", "Đơn vị"]
BULK_FILES = 200


@pytest.fixture(scope="module")
def ingest(stack: LocalStack) -> Iterator[Settings]:
    """The ingest service alone (the import needs nothing else; no transcodes of 200 photos)."""
    yield from one_service(stack, "ingest")


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Journals under the test's folder, never the developer's ~/.local/state."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MAM_TOKEN", TOKEN)


def unique_photo(width: int = 48, height: int = 32) -> bytes:
    """A small JPEG of random pixels: new bytes on every run, so a kept test stack
    (MAM_TEST_KEEP_SERVERS) never already holds it."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "JPEG", quality=80)
    return out.getvalue()


def photo_folder(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"anh-{i:03d}.jpg"
        path.write_bytes(unique_photo())
        paths.append(path)
    return paths


def sheet_rows(paths: list[Path], tag: str) -> list[list[str]]:
    activities = ["tiep-xuc-cu-tri", "Kỳ họp, phiên họp Thường trực", "giam-sat-chuyen-de", "Thăm, làm việc"]
    return [
        [
            p.name,
            f"Tiếp xúc cử tri tại xã Phước Dinh, ảnh {i} ({tag})",
            activities[i % len(activities)],
            "Đại biểu HĐND tỉnh lắng nghe ý kiến cử tri về đường giao thông nông thôn",
            f"{1 + i % 28}/6/2023",
            "Báo Ninh Thuận",
        ]
        for i, p in enumerate(paths)
    ]


def ingested_counts(settings: Settings, paths: list[Path]) -> Counter[str]:
    """``asset.ingested`` events per file of ``paths`` (by the asset id of its bytes)."""
    wanted = {asset_id_for_sha256(hashlib.sha256(p.read_bytes()).hexdigest()): p.name for p in paths}

    async def count() -> Counter[str]:
        store = await EventStore.from_settings(settings)
        try:
            found: Counter[str] = Counter()
            async for event in store.read_subjects("mam.asset.*.ingested"):
                if event.envelope.aggregate_id in wanted:
                    found[wanted[event.envelope.aggregate_id]] += 1
            return found
        finally:
            await store.close()

    return run(count())


def mam_import(settings: Settings, *argv: str) -> list[str]:
    return ["import", *argv, "--url", settings.ingest_url]


def json_rows(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_two_hundred_files_from_a_windows_1258_sheet_are_stored_once_and_a_rerun_adds_nothing(
    ingest: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "phien-hop"
    paths = photo_folder(folder, BULK_FILES)
    sheet = write_sheet(tmp_path / "chu-thich.csv", HEADER, sheet_rows(paths, "cp1258"), "cp1258")
    began = time.monotonic()
    assert main(mam_import(ingest, str(folder), "--captions", str(sheet), "--json", "--jobs", "3")) == 0
    first = capsys.readouterr()
    seconds = time.monotonic() - began
    rows = json_rows(first.out)
    assert "Windows-1258" in first.err  # the encoding assumed is told
    assert Counter(r["result"] for r in rows) == {"stored": BULK_FILES}, first.out[-2000:]
    assert ingested_counts(ingest, paths) == {p.name: 1 for p in paths}
    # The captions arrived as typed, in NFC, with the label turned into its code.
    asset = str(next(r["asset_id"] for r in rows if r["file"] == "anh-001.jpg"))
    shown = httpx.get(f"{ingest.ingest_url}/v1/assets/{asset}", headers=AUTH, timeout=30).json()
    assert shown["title"] == "Tiếp xúc cử tri tại xã Phước Dinh, ảnh 1 (cp1258)"
    assert shown["activity_type"] == "ky-hop"
    print(f"\n  {BULK_FILES} files imported in {seconds:.1f}s")

    # The same import again: every row is known from the journal, nothing is sent.
    assert main(mam_import(ingest, str(folder), "--captions", str(sheet), "--json")) == 0
    assert Counter(r["result"] for r in json_rows(capsys.readouterr().out)) == {"done_earlier": BULK_FILES}
    # Without the journal (another laptop): each file is found in the archive by its hash.
    for journal in (tmp_path / "state").rglob("*.json"):
        journal.unlink()
    assert main(mam_import(ingest, str(folder), "--captions", str(sheet), "--json")) == 0
    assert Counter(r["result"] for r in json_rows(capsys.readouterr().out)) == {"in_archive": BULK_FILES}
    assert ingested_counts(ingest, paths) == {p.name: 1 for p in paths}


def test_the_dry_run_reports_every_kind_of_problem_and_sends_nothing(
    ingest: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "thu"
    ready, known, bad_code, bad_date = photo_folder(folder, 4)
    # One of them is already in the archive (sent by an earlier import).
    known_sheet = write_sheet(tmp_path / "known.csv", HEADER, sheet_rows([known], "known"), "utf-8")
    assert main(mam_import(ingest, str(folder), "--captions", str(known_sheet), "--json")) == 0
    capsys.readouterr()
    rows = sheet_rows([ready, known, bad_code, bad_date], "dry")
    rows[2][2] = "hop-bao-chi"  # no such activity type
    rows[3][4] = "31/02/2023"  # no such day
    rows.append(["khong-co.jpg", "Tệp không có trong thư mục", "khac", "", "", ""])
    sheet = write_sheet(tmp_path / "dry.xlsx", HEADER, rows, "xlsx")

    code = main(mam_import(ingest, str(folder), "--captions", str(sheet), "--dry-run"))
    out = capsys.readouterr().out
    assert code == 1  # problems found
    assert "XLSX" in out
    for kind in ("already_in_archive", "unknown_activity_type", "invalid_recorded_at", "missing_file"):
        assert f"[{kind}]" in out, out
    assert "Không tìm thấy tệp" in out and "The file is not in the folder" in out
    assert "sẵn sàng / ready" in out
    counts = ingested_counts(ingest, [ready, known, bad_code, bad_date])
    assert counts == {known.name: 1}  # nothing was sent by the dry run


def test_an_import_killed_at_row_n_resumes_at_row_n_and_ends_with_one_asset_per_file(
    ingest: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "bi-ngat"
    paths = photo_folder(folder, 12)
    sheet = write_sheet(tmp_path / "s.csv", HEADER, sheet_rows(paths, "kill"), "utf-8-bom")
    journal = tmp_path / "journal.json"
    argv = [
        sys.executable,
        "-m",
        "deploy.cli",
        *mam_import(ingest, str(folder), "--captions", str(sheet), "--json", "--jobs", "1"),
        "--journal",
        str(journal),
    ]
    env = {**os.environ, "MAM_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    assert process.stdout is not None
    done_before_kill = []
    for line in process.stdout:
        done_before_kill.append(json.loads(line))
        if len(done_before_kill) == 5:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    n = len(done_before_kill)
    assert [r["result"] for r in done_before_kill] == ["stored"] * n

    again = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    results = [(r["line"], r["result"]) for r in json_rows(again.stdout)]
    # Rows before N are skipped from the journal (no request); the run carries on at row N.
    first_sent = next(i for i, (_, result) in enumerate(results) if result != "done_earlier")
    assert first_sent >= n
    assert all(result == "done_earlier" for _, result in results[:n])
    assert all(result in ("stored", "done_earlier") for _, result in results[n:])
    assert ingested_counts(ingest, paths) == {p.name: 1 for p in paths}


class ClientDied(Exception):
    pass


def test_a_file_cut_mid_upload_resumes_from_the_servers_offset(ingest: Settings, tmp_path: Path) -> None:
    from tests.media import make_clip

    clip = make_clip(
        tmp_path / "phien-hop.mp4", seconds=4.0, size="640x360", extra=["-metadata", f"comment={os.urandom(8).hex()}"]
    )
    chunk = 64 * 1024
    assert clip.stat().st_size > 6 * chunk
    client = ArchiveClient(ingest.ingest_url, Credentials(bearer=TOKEN), chunk_size=chunk)
    journal = Journal(tmp_path / "journal.json")
    row = SheetRow(2, clip.name, "Kỳ họp thứ 17 — toàn cảnh", "ky-hop", recorded_at="2023-12-07")
    sent: list[int] = []

    class Bar:
        def __init__(self, limit: int) -> None:
            self.limit = limit

        def __enter__(self) -> object:
            def progress(done: int, total: int) -> None:
                sent.append(done)
                if done >= self.limit:
                    raise ClientDied  # the laptop's lid closes

            return progress

        def __exit__(self, *exc: object) -> None:
            return None

    with pytest.raises(ClientDied):
        import_file(clip, row, client, journal, key=clip.name, progress=lambda name, size: Bar(4 * chunk))
    entry = journal.get(clip.name)
    assert entry is not None and entry.state == "uploading" and entry.url
    server_offset = int(httpx.head(entry.url, headers={**AUTH, "Tus-Resumable": "1.0.0"}).headers["Upload-Offset"])
    assert server_offset == 4 * chunk

    sent.clear()
    report = import_file(clip, row, client, Journal(tmp_path / "journal.json"), key=clip.name)
    assert report.result == "stored", report
    assert report.resumed_from == 4 * chunk  # not from zero
    assert report.asset_id == asset_id_for_sha256(hashlib.sha256(clip.read_bytes()).hexdigest())
    client.close()


def test_the_watch_folder_takes_a_file_only_once_it_stops_growing_and_files_bad_ones_under_failed(
    ingest: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "thu-muc-theo-doi"
    folder.mkdir()
    argv = [
        sys.executable,
        "-m",
        "deploy.cli",
        "watch",
        str(folder),
        "--url",
        ingest.ingest_url,
        "--settle",
        "1.5",
        "--interval",
        "0.2",
        "--caption-wait",
        "2",
    ]
    env = {**os.environ, "MAM_TOKEN": TOKEN, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(tmp_path / "state")}
    log = (tmp_path / "watch.log").open("wb")
    watcher = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        wait_for(lambda: (folder / ".mam-watch" / "heartbeat").exists(), timeout=30, what="the watcher's heartbeat")
        caption = {"Tiêu đề": "Giám sát chuyên đề tại huyện Ninh Hải", "Loại hoạt động": "giam-sat-chuyen-de"}
        (folder / "giam-sat.jpg.json").write_text(json.dumps(caption, ensure_ascii=False), encoding="utf-8")
        data = unique_photo(640, 480)
        pieces = [data[i : i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)]
        moved_early: list[str] = []

        def write_slowly() -> None:
            with (folder / "giam-sat.jpg").open("wb") as out:
                for piece in pieces:
                    out.write(piece)
                    out.flush()
                    time.sleep(0.8)  # each pause shorter than the settle time
                    if not (folder / "giam-sat.jpg").exists():
                        moved_early.append("taken while still being written")

        writer = threading.Thread(target=write_slowly)
        writer.start()
        writer.join(timeout=60)
        assert not moved_early
        (folder / "hong.jpg").write_bytes(b"not a photo at all, whatever its name says " * 50)
        (folder / "hong.jpg.json").write_text(json.dumps(caption), encoding="utf-8")
        (folder / "ma-sai.jpg").write_bytes(unique_photo())
        (folder / "ma-sai.jpg.json").write_text(json.dumps({"title": "T", "activity_type": "khong-co"}))
        (folder / "khong-chu-thich.jpg").write_bytes(unique_photo())

        wait_for(lambda: (folder / "done" / "giam-sat.jpg").exists(), timeout=60, what="the photo in done/")
        assert (folder / "done" / "giam-sat.jpg").read_bytes() == data  # the whole file, not a prefix
        asset = asset_id_for_sha256(hashlib.sha256(data).hexdigest())
        assert httpx.get(f"{ingest.ingest_url}/v1/assets/{asset}", headers=AUTH, timeout=30).status_code == 200
        for prefix_length in {len(pieces[0]), len(pieces[0]) * 3}:
            prefix = asset_id_for_sha256(hashlib.sha256(data[:prefix_length]).hexdigest())
            assert httpx.get(f"{ingest.ingest_url}/v1/assets/{prefix}", headers=AUTH).status_code == 404

        for name in ("hong.jpg", "ma-sai.jpg", "khong-chu-thich.jpg"):
            wait_for(lambda n=name: (folder / "failed" / f"{n}.reason.txt").exists(), timeout=60, what=name)
        reasons = {
            name: (folder / "failed" / f"{name}.reason.txt").read_text("utf-8")
            for name in ("hong.jpg", "ma-sai.jpg", "khong-chu-thich.jpg")
        }
        # The server's verdict after the bytes (content, not name, decides) …
        assert "Mã / code: unsupported_media" in reasons["hong.jpg"]
        # … and its refusal at creation, before any byte.
        assert "Mã / code: invalid_metadata" in reasons["ma-sai.jpg"] and "khong-co" in reasons["ma-sai.jpg"]
        assert "no_caption" in reasons["khong-chu-thich.jpg"]
        for text in reasons.values():
            assert "Lý do:" in text and "Reason:" in text
        assert not any(folder.glob("*.jpg"))
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)
        log.close()
    assert watcher.returncode == 0, (tmp_path / "watch.log").read_text()[-3000:]


def server_offset(url: str) -> int:
    return int(httpx.head(url, headers={**AUTH, "Tus-Resumable": "1.0.0"}).headers["Upload-Offset"])


def test_a_watcher_killed_mid_upload_resumes_the_file_after_a_restart(ingest: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "theo-doi"
    folder.mkdir()
    data = unique_photo(1000, 700)  # random pixels: a JPEG of about a megabyte, sent in 32 KiB chunks
    (folder / "toan-canh.jpg").write_bytes(data)
    (folder / "toan-canh.jpg.json").write_text(json.dumps({"title": "Toàn cảnh kỳ họp", "activity_type": "ky-hop"}))
    argv = [sys.executable, "-m", "deploy.cli", "watch", str(folder), "--url", ingest.ingest_url]
    argv += ["--settle", "1", "--interval", "0.2", "--chunk-size", str(32 * 1024)]
    env = {**os.environ, "MAM_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    journal = folder / ".mam-watch" / "journal.json"

    def uploading_url() -> str:
        try:
            entry = json.loads(journal.read_text()).get("entries", {}).get("toan-canh.jpg", {})
        except (OSError, ValueError):
            return ""
        url = str(entry.get("url", "")) if entry.get("state") == "uploading" else ""
        return url if url and server_offset(url) > 0 else ""

    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    try:
        url = wait_for(uploading_url, timeout=60, interval=0.02, what="the upload under way")
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=30)
    assert 0 < server_offset(url) < len(data), "killed too late to show a resume"

    log_path = tmp_path / "watch-2.log"
    with log_path.open("wb") as log:
        second = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            wait_for(lambda: (folder / "done" / "toan-canh.jpg").exists(), timeout=60, what="the photo in done/")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    assert "resumed at byte" in log_path.read_text(), log_path.read_text()[-2000:]
    assert ingested_counts(ingest, [folder / "done" / "toan-canh.jpg"]) == {"toan-canh.jpg": 1}


def test_rejected_rows_are_reported_with_the_servers_reason_and_a_signed_in_user_can_import(
    ingest: Settings,
    stack: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accounts = stack.service_spec("accounts")
    try:
        start(accounts)  # reused when the session's services already run
    except LaunchError as exc:
        pytest.fail(f"accounts did not start: {exc}", pytrace=False)
    folder = tmp_path / "tu-choi"
    good, bad_code = photo_folder(folder, 2)
    (folder / "hong.jpg").write_bytes(b"plain text with a photo's name " * 40)
    rows = sheet_rows([good, bad_code, folder / "hong.jpg"], "rejected")
    rows[1][2] = "hop-bao-chi"
    sheet = write_sheet(tmp_path / "s.csv", HEADER, rows, "nfd")
    monkeypatch.delenv("MAM_TOKEN")
    monkeypatch.setenv("MAM_PASSWORD", "demo-phong-vien")
    argv = mam_import(ingest, str(folder), "--captions", str(sheet), "--json", "--user", "phong-vien")
    code = main([*argv, "--accounts-url", ingest.accounts_url])
    reports = {r["file"]: r for r in json_rows(capsys.readouterr().out)}
    assert code == 1
    assert reports[good.name]["result"] == "stored"
    refused = reports[bad_code.name]
    assert refused["result"] == "rejected"
    assert refused["problems"][0]["code"] == "invalid_metadata"  # at creation, before any byte
    assert "hop-bao-chi" in refused["problems"][0]["message_vi"]
    unreadable = reports["hong.jpg"]
    assert unreadable["result"] == "rejected"
    assert unreadable["problems"][0]["code"] == "unsupported_media"  # the server's verdict after the bytes
    assert unreadable["problems"][0]["message_en"]
    assert ingested_counts(ingest, [good, bad_code]) == {good.name: 1}


def test_the_launcher_runs_the_watch_folder_as_a_service_when_asked(
    stack: LocalStack, ingest: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import SecretStr

    monkeypatch.delenv("MAM_TOKEN")  # the watcher must use MAM_WATCH_API_KEY from the launcher

    folder = tmp_path / "tiep-nhan"
    settings = ingest.model_copy(update={"watch_dir": folder, "watch_settle_s": 1.0, "watch_api_key": SecretStr(TOKEN)})
    spec = LocalStack(settings).service_spec("watch")
    started = start(spec)  # healthy = its heartbeat is fresh
    try:
        data = unique_photo()
        (folder / "anh.jpg.json").write_text(json.dumps({"title": "Ảnh tiếp nhận", "activity_type": "khac"}))
        (folder / "anh.jpg").write_bytes(data)
        wait_for(lambda: (folder / "done" / "anh.jpg").exists(), timeout=60, what="the photo in done/")
    finally:
        assert stop(spec)
    assert not started.reused
    asset = asset_id_for_sha256(hashlib.sha256(data).hexdigest())
    assert httpx.get(f"{ingest.ingest_url}/v1/assets/{asset}", headers=AUTH, timeout=30).status_code == 200
