"""``mam watch FOLDER``: files dropped in a folder are uploaded once they stop growing.

A file is taken when its size and modification time have not changed for
``settle_s`` seconds (watched from this process's own start, so a restart never
takes a file on an earlier look), and never while it has a temporary name
(``.part``, ``.crdownload``, ``~$…``, a leading dot). Its captions come from a
sidecar ``<file>.json`` (the sheet's columns as keys) or from a row of a caption
sheet (``*.csv`` / ``*.xlsx``) in the folder. It is uploaded through the same
code as ``mam import`` (resumable, journalled in ``FOLDER/.mam-watch/``), then
moved with its sidecar to ``done/``, or to ``failed/`` next to a
``<file>.reason.txt`` saying why in Vietnamese and English.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from deploy.bulk_import.client import ArchiveClient
from deploy.bulk_import.journal import Journal
from deploy.bulk_import.run import RowReport, import_file
from deploy.bulk_import.sheet import SheetError, SheetRow, read_sheet, row_from_mapping

log = logging.getLogger("mam.watch")

TEMPORARY_SUFFIXES = frozenset({".part", ".partial", ".tmp", ".crdownload", ".filepart", ".download", ".swp"})
CAPTION_SUFFIXES = frozenset({".json", ".csv", ".xlsx", ".xlsm", ".txt", ".tsv"})
STATE_DIR = ".mam-watch"
HEARTBEAT = "heartbeat"


def is_candidate(path: Path) -> bool:
    """A file the watcher may upload (once stable): not a caption, not half-written by name."""
    name = path.name
    if name.startswith((".", "~$", "~")) or path.suffix.lower() in TEMPORARY_SUFFIXES:
        return False
    return path.suffix.lower() not in CAPTION_SUFFIXES


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # when this size and mtime were first seen
    no_caption_since: float | None = None
    retry_after: float = 0.0


class FolderBusy(RuntimeError):
    pass


class Watcher:
    def __init__(
        self,
        folder: Path,
        client: ArchiveClient,
        *,
        settle_s: float = 5.0,
        caption_wait_s: float = 300.0,
        sheet: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.client = client
        self.settle_s = settle_s
        self.caption_wait_s = caption_wait_s
        self.sheet = sheet
        self.clock = clock
        self.state = folder / STATE_DIR
        self.done = folder / "done"
        self.failed = folder / "failed"
        for path in (self.state, self.done, self.failed):
            path.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.state / "journal.json")
        self._seen: dict[str, _Seen] = {}
        self._lock_file: IO[bytes] | None = None

    # --- one instance per folder ----------------------------------------------------------
    def lock(self) -> None:
        """Two watchers on one folder would both take a file: the second refuses to start."""
        handle = (self.state / "lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise FolderBusy(
                f"Thư mục {self.folder} đã có một tiến trình theo dõi khác / another watcher already runs on it"
            ) from exc
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # --- which files are ready ------------------------------------------------------------
    def stable_files(self) -> list[Path]:
        """Files unchanged (size and mtime) for ``settle_s`` — observed by this process."""
        now = self.clock()
        present: set[str] = set()
        ready = []
        for path in sorted(self.folder.iterdir()):
            if not path.is_file() or not is_candidate(path):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            present.add(path.name)
            seen = self._seen.get(path.name)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                self._seen[path.name] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                continue
            if now - seen.since >= self.settle_s and now >= seen.retry_after:
                ready.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    # --- captions --------------------------------------------------------------------------
    def caption_for(self, path: Path) -> SheetRow | None:
        sidecar = path.with_name(path.name + ".json")
        if sidecar.is_file():
            try:
                values = json.loads(sidecar.read_text("utf-8-sig"))
            except (OSError, ValueError) as exc:
                raise SheetError(
                    f"Tệp chú thích {sidecar.name} không phải JSON hợp lệ: {exc}.",
                    f"The caption file {sidecar.name} is not valid JSON: {exc}.",
                ) from exc
            if not isinstance(values, dict):
                raise SheetError(
                    f"Tệp chú thích {sidecar.name} phải là một đối tượng JSON.",
                    f"The caption file {sidecar.name} must hold a JSON object.",
                )
            return row_from_mapping(values, path.name)
        sheets = [self.sheet] if self.sheet else sorted(self.folder.glob("*.csv")) + sorted(self.folder.glob("*.xlsx"))
        for sheet_path in sheets:
            if sheet_path is None or not sheet_path.is_file():
                continue
            for row in read_sheet(sheet_path).rows:
                if row.filename == path.name:
                    return row
        return None

    # --- one file ----------------------------------------------------------------------------
    def handle(self, path: Path) -> RowReport | None:
        """Upload ``path`` and file it away; None while it waits (caption, archive)."""
        seen = self._seen[path.name]
        try:
            row = self.caption_for(path)
        except SheetError as exc:
            return self._fail(path, "invalid_caption", exc.message_vi, exc.message_en)
        if row is None:
            now = self.clock()
            seen.no_caption_since = seen.no_caption_since or now
            if now - seen.no_caption_since < self.caption_wait_s:
                return None
            return self._fail(
                path,
                "no_caption",
                f"Không có chú thích cho tệp sau {self.caption_wait_s:.0f} giây (cần {path.name}.json "
                "hoặc một dòng trong bảng chú thích của thư mục).",
                f"No caption for the file after {self.caption_wait_s:.0f} s (needs {path.name}.json "
                "or a row in the folder's caption sheet).",
            )
        report = import_file(path, row, self.client, self.journal, key=path.name)
        if report.result in ("stored", "in_archive", "done_earlier"):
            self._file_away(path, self.done)
            self.journal.forget(path.name)
            resumed = f" (tiếp từ byte / resumed at byte {report.resumed_from})" if report.resumed_from else ""
            log.info("đã lưu / stored %s → %s%s", path.name, report.asset_id, resumed)
            return report
        if report.result == "failed":  # the archive is unreachable: the file stays, tried again later
            seen.retry_after = self.clock() + max(self.settle_s, 10.0)
            log.warning("thử lại sau / will retry %s: %s", path.name, report.problems)
            return None
        problem = report.problems[0] if report.problems else {"code": report.result}
        self._fail(path, problem["code"], problem.get("message_vi", ""), problem.get("message_en", ""))
        return report

    def _fail(self, path: Path, code: str, message_vi: str, message_en: str) -> RowReport:
        moved = self._file_away(path, self.failed)
        reason = moved.with_name(moved.name + ".reason.txt")
        reason.write_text(
            f"Tệp / file: {path.name}\n"
            f"Lý do: {message_vi}\n"
            f"Reason: {message_en}\n"
            f"Mã / code: {code}\n"
            f"Thời điểm / at: {datetime.now(UTC).isoformat(timespec='seconds')}\n",
            encoding="utf-8",
        )
        self.journal.forget(path.name)
        log.warning("không tải lên được / failed %s: [%s] %s / %s", path.name, code, message_vi, message_en)
        return RowReport(0, path.name, "rejected", [{"code": code, "message_vi": message_vi, "message_en": message_en}])

    def _file_away(self, path: Path, target_dir: Path) -> Path:
        """Move the file (and its sidecar) into ``target_dir`` under a name not yet taken."""
        target = target_dir / path.name
        counter = 1
        while target.exists():
            target = target_dir / f"{path.stem}-{counter}{path.suffix}"
            counter += 1
        os.replace(path, target)
        sidecar = path.with_name(path.name + ".json")
        if sidecar.exists():
            os.replace(sidecar, target.with_name(target.name + ".json"))
        self._seen.pop(path.name, None)
        return target

    # --- the loop ------------------------------------------------------------------------------
    def beat(self) -> None:
        (self.state / HEARTBEAT).write_text(datetime.now(UTC).isoformat())

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        self.lock()
        try:
            log.info("theo dõi / watching %s (ổn định / settle %.1fs)", self.folder, self.settle_s)
            while not stop.is_set():
                self.beat()
                for path in self.stable_files():
                    if stop.is_set():
                        break
                    try:
                        self.handle(path)
                    except OSError as exc:  # the file moved away under us, a full disk: next round
                        log.warning("bỏ qua lượt này / skipped this round %s: %s", path.name, exc)
                stop.wait(interval_s)
        finally:
            self.unlock()


def heartbeat_fresh(folder: Path, within_s: float = 15.0) -> bool:
    """The launcher's health check of a running watcher."""
    try:
        return time.time() - (folder / STATE_DIR / HEARTBEAT).stat().st_mtime < within_s
    except OSError:
        return False
