"""``mam import FOLDER --captions SHEET``: a folder of files and their caption sheet,
uploaded through the archive's resumable upload endpoint.

Each row: its file is hashed; if the archive already holds those bytes (asset
ids derive from content: one ``GET /v1/assets/{id}``) nothing is sent;
otherwise it is sent with tus, and the server's verdict awaited (stored as
asset X, or rejected with the reason). The journal (journal.py) makes a re-run
skip what is done and resume what was cut.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from deploy.bulk_import.client import ArchiveClient, ArchiveProblem, Outcome, file_sha256
from deploy.bulk_import.journal import Entry, Journal
from deploy.bulk_import.sheet import Sheet, SheetRow
from shared.http import UserError

# What the dry run and the import say about a row; "problems" are why a row is not sent.
PROBLEM_TEXT = {
    "missing_filename": ("Dòng không có tên tệp.", "The row has no file name."),
    "duplicate_row": ("Tệp đã có ở một dòng trước.", "The file is already on an earlier row."),
    "outside_folder": ("Tên tệp trỏ ra ngoài thư mục.", "The file name points outside the folder."),
    "missing_file": ("Không tìm thấy tệp trong thư mục.", "The file is not in the folder."),
}


@dataclass
class RowReport:
    line: int
    file: str
    # dry run: "ready" | "in_archive" | "problem"
    # import:  "stored" | "in_archive" | "done_earlier" | "rejected" | "problem" | "failed"
    result: str
    problems: list[dict[str, str]] = field(default_factory=list)
    asset_id: str = ""
    resumed_from: int | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _problem(code: str, vi: str = "", en: str = "") -> dict[str, str]:
    default_vi, default_en = PROBLEM_TEXT.get(code, (vi, en))
    return {"code": code, "message_vi": vi or default_vi, "message_en": en or default_en}


def row_problems(folder: Path, rows: tuple[SheetRow, ...]) -> dict[int, list[dict[str, str]]]:
    """Problems found without the archive: names, files, repeated rows."""
    root = folder.resolve()
    seen: set[str] = set()
    found: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        problems = found.setdefault(row.line, [])
        if not row.filename:
            problems.append(_problem("missing_filename"))
            continue
        if row.filename in seen:
            problems.append(_problem("duplicate_row"))
        seen.add(row.filename)
        path = (folder / row.filename).resolve()
        if not path.is_relative_to(root):
            problems.append(_problem("outside_folder"))
        elif not path.is_file():
            problems.append(_problem("missing_file"))
    return found


_FIELD_CODES = {
    "activity_type": "unknown_activity_type",
    "recorded_at": "invalid_recorded_at",
    "title": "invalid_title",
    "caption": "invalid_caption",
    "source_org": "invalid_source_org",
}


def metadata_problems(row: SheetRow) -> list[dict[str, str]]:
    """The ingest service's own metadata rules, checked here for the dry run."""
    from services.ingest.domain import validate_metadata

    try:
        validate_metadata(row.title, row.caption, row.recorded_at, row.activity_type, row.source_org)
    except UserError as exc:
        problems = exc.extra.get("problems") or [{"message": exc.message_vi, "message_en": exc.message_en}]
        return [
            _problem(
                "missing_activity_type"
                if p.get("field") == "activity_type" and not row.activity_type
                else _FIELD_CODES.get(str(p.get("field")), "invalid_metadata"),
                str(p.get("message", "")),
                str(p.get("message_en", "")),
            )
            for p in problems
        ]
    return []


def unlisted_files(folder: Path, sheet: Sheet) -> list[str]:
    """Files in the folder that no row names (told, never uploaded)."""
    listed = {row.filename for row in sheet.rows}
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.name not in listed and p.resolve() != sheet.path.resolve() and not p.name.startswith(".")
    )


def dry_run(folder: Path, sheet: Sheet, client: ArchiveClient | None) -> list[RowReport]:
    """Every row checked, nothing sent. With a client, files already in the archive are
    found by their SHA-256 (the same bytes are the same asset)."""
    found = row_problems(folder, sheet.rows)
    reports = []
    for row in sheet.rows:
        problems = found[row.line] + metadata_problems(row)
        report = RowReport(row.line, row.filename, "problem" if problems else "ready", problems)
        if not any(p["code"] in PROBLEM_TEXT for p in problems) and client is not None:
            asset_id = client.existing_asset(file_sha256(folder / row.filename))
            if asset_id:
                report.asset_id = asset_id
                report.problems.append(
                    _problem(
                        "already_in_archive",
                        f"Đã có trong kho: tư liệu {asset_id} (sẽ không tải lại).",
                        f"Already in the archive: asset {asset_id} (will not be sent again).",
                    )
                )
                if report.result == "ready":
                    report.result = "in_archive"
        reports.append(report)
    return reports


class Importer:
    """Sends a sheet's rows; ``jobs`` files at a time, each awaited to its verdict."""

    def __init__(
        self,
        folder: Path,
        sheet: Sheet,
        client: ArchiveClient,
        journal: Journal,
        *,
        jobs: int = 2,
        progress: Progress | None = None,
        on_report: Callable[[RowReport], None] | None = None,
    ) -> None:
        self.folder = folder
        self.sheet = sheet
        self.client = client
        self.journal = journal
        self.jobs = max(1, jobs)
        self.progress = progress
        self.on_report = on_report
        self._overall: TaskID | None = None
        self._counted: dict[str, int] = {}  # bytes of each file already on the overall bar
        self._lock = threading.Lock()

    def run(self) -> list[RowReport]:
        found = row_problems(self.folder, self.sheet.rows)
        sizes = {
            row.line: (self.folder / row.filename).stat().st_size for row in self.sheet.rows if not found[row.line]
        }
        rows_total, rows_done = len(self.sheet.rows), 0
        if self.progress is not None:
            # Overall in bytes (speed and time left mean something); the label counts files.
            self._overall = self.progress.add_task(f"Tổng / overall 0/{rows_total}", total=sum(sizes.values()))
        reports: list[RowReport] = []

        def one(row: SheetRow) -> RowReport:
            nonlocal rows_done
            problems = found[row.line]
            try:
                report = RowReport(row.line, row.filename, "problem", problems) if problems else self.import_row(row)
            except OSError as exc:  # the file went away or became unreadable meanwhile: this row only
                report = RowReport(
                    row.line,
                    row.filename,
                    "failed",
                    [_problem("unreadable_file", f"Không đọc được tệp: {exc}", f"Cannot read the file: {exc}")],
                )
            with self._lock:
                rows_done += 1
                if self.progress is not None and self._overall is not None:
                    # What its bar has not counted yet: all of a skipped file, the rest of a sent one.
                    self.progress.update(
                        self._overall,
                        advance=sizes.get(row.line, 0) - self._counted.pop(row.filename, 0),
                        description=f"Tổng / overall {rows_done}/{rows_total}",
                    )
                if self.on_report:
                    self.on_report(report)
            return report

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mam-import")
        try:
            # In the sheet's order; a worker's exception surfaces here, not lost in a thread.
            futures = [pool.submit(one, row) for row in self.sheet.rows]
            reports.extend(future.result() for future in futures)
        except BaseException:
            # Ctrl-C or a bug: rows not started are dropped; the journal holds what the others did.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return reports

    def import_row(self, row: SheetRow) -> RowReport:
        return import_file(
            self.folder / row.filename,
            row,
            self.client,
            self.journal,
            key=row.filename,
            progress=self._file_progress,
        )

    @contextmanager
    def _file_progress(self, name: str, total: int) -> Iterator[BytesProgress]:
        if self.progress is None:
            yield lambda done, total: None
            return
        progress, overall = self.progress, self._overall
        task = progress.add_task(name[-40:], total=total)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            with self._lock:  # the overall bar moves with every chunk of every file
                delta = done - self._counted.get(name, 0)
                self._counted[name] = done
            if overall is not None:
                progress.advance(overall, delta)

        try:
            yield update
        finally:
            progress.remove_task(task)


BytesProgress = Callable[[int, int], None]
# Opens a progress bar for one file (name, size) for the length of its transfer.
FileProgress = Callable[[str, int], AbstractContextManager[BytesProgress]]


def import_file(
    path: Path,
    row: SheetRow,
    client: ArchiveClient,
    journal: Journal,
    *,
    key: str,
    progress: FileProgress | None = None,
) -> RowReport:
    """One file to its verdict; every step recorded in the journal under ``key``.
    Shared by ``mam import`` and ``mam watch``."""
    report = RowReport(row.line, row.filename, "failed")
    stat = path.stat()
    known = journal.current(key, path)
    if known is not None and known.state == "stored":
        report.result, report.asset_id = "done_earlier", known.asset_id
        return report
    resuming = known is not None and known.state in ("uploading", "sent") and bool(known.url)
    try:
        if known is not None and resuming:
            entry = known
        else:
            sha256 = file_sha256(path)
            existing = client.existing_asset(sha256)
            if existing:
                journal.put(key, Entry("stored", stat.st_size, stat.st_mtime_ns, sha256=sha256, asset_id=existing))
                report.result, report.asset_id = "in_archive", existing
                return report
            entry = Entry("uploading", stat.st_size, stat.st_mtime_ns, sha256=sha256)
        outcome = _send_and_wait(path, row, client, journal, key, entry, report, resuming, progress)
    except ArchiveProblem as exc:
        if exc.code in TRANSIENT:
            # The archive could not be reached: the journal keeps the upload to resume next time.
            report.result = "failed"
        else:
            refused = known or Entry("rejected", stat.st_size, stat.st_mtime_ns)
            refused.state, refused.url = "rejected", ""  # a new run starts afresh (the sheet may be fixed)
            refused.reason_vi, refused.reason_en = exc.message_vi, exc.message_en
            journal.put(key, refused)
            report.result = "rejected"
        report.problems.append(_problem(exc.code, exc.message_vi, exc.message_en))
        return report
    if outcome.state == "stored":
        entry.state, entry.asset_id, entry.duplicate = "stored", outcome.asset_id, outcome.duplicate
        report.result = "in_archive" if outcome.duplicate else "stored"
        report.asset_id = outcome.asset_id
    else:
        entry.state, entry.url = "rejected", ""
        entry.reason_vi, entry.reason_en = outcome.message_vi, outcome.message_en
        report.result = "rejected"
        report.problems.append(_problem(outcome.code, outcome.message_vi, outcome.message_en))
    journal.put(key, entry)
    return report


# Errors after which the same upload is resumed, not started again.
TRANSIENT = frozenset({"unreachable", "finalisation_timeout", "status_failed"})


def _send_and_wait(
    path: Path,
    row: SheetRow,
    client: ArchiveClient,
    journal: Journal,
    key: str,
    entry: Entry,
    report: RowReport,
    resuming: bool,
    progress: FileProgress | None,
) -> Outcome:
    """The tus transfer (resumed at the server's offset when ``resuming``), then the verdict."""
    first_offset: list[int] = []

    def remember_url(url: str) -> None:
        entry.url, entry.state = url, "uploading"
        journal.put(key, entry)

    bar = progress(row.filename or path.name, entry.size) if progress else _no_progress()
    with bar as on_bytes:

        def on_progress(done: int, total: int) -> None:
            if not first_offset:
                first_offset.append(done)
            on_bytes(done, total)

        url = client.upload(
            path,
            upload_metadata(row, path),
            resume_url=entry.url if resuming else "",
            on_url=remember_url,
            on_progress=on_progress,
        )
    if resuming and first_offset and url == entry.url:
        report.resumed_from = first_offset[0]
    entry.url, entry.state = url, "sent"
    journal.put(key, entry)
    return client.wait_final(url)


@contextmanager
def _no_progress() -> Iterator[BytesProgress]:
    yield lambda done, total: None


def upload_metadata(row: SheetRow, path: Path) -> dict[str, str]:
    filetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {**row.metadata(), "filename": row.filename or path.name, "filetype": filetype}


# --- the command ------------------------------------------------------------------------
RESULT_TEXT = {
    "ready": "sẵn sàng / ready",
    "in_archive": "đã có trong kho / already in the archive",
    "problem": "có lỗi / problem",
    "stored": "đã lưu / stored",
    "done_earlier": "đã xong lần trước / done in an earlier run",
    "rejected": "bị từ chối / rejected",
    "failed": "lỗi / failed",
}


def new_progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def describe_sheet(sheet: Sheet) -> str:
    assumed = " (đoán / assumed)" if sheet.encoding == "Windows-1258" else ""
    lines = [
        f"Bảng chú thích / caption sheet: {sheet.path.name} — {len(sheet.rows)} dòng / rows; "
        f"mã hoá / encoding: {sheet.encoding}{assumed}"
    ]
    if sheet.normalised_cells:
        lines.append(
            f"  {sheet.normalised_cells} ô đã chuẩn hoá về NFC / cells normalised to NFC "
            "(NFD hoặc dấu thanh tách rời / NFD or separate tone marks)"
        )
    if sheet.ignored_columns:
        lines.append(f"  Cột bỏ qua / ignored columns: {', '.join(sheet.ignored_columns)}")
    return "\n".join(lines)


def print_report(console: Console, reports: list[RowReport], as_json: bool) -> None:
    for report in reports:
        print_row(console, report, as_json)


def print_row(console: Console, report: RowReport, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    asset = f" → {report.asset_id}" if report.asset_id else ""
    resumed = f" (tiếp từ byte / resumed at byte {report.resumed_from})" if report.resumed_from else ""
    console.print(
        f"  dòng/row {report.line:>4}  {report.file}: {RESULT_TEXT.get(report.result, report.result)}{asset}{resumed}",
        markup=False,
        highlight=False,
    )
    for problem in report.problems:
        console.print(
            f"      [{problem['code']}] {problem['message_vi']} / {problem['message_en']}",
            markup=False,
            highlight=False,
        )


def summary(reports: list[RowReport]) -> str:
    counts = Counter(r.result for r in reports)
    kinds = Counter(p["code"] for r in reports for p in r.problems)
    text = ", ".join(f"{RESULT_TEXT.get(k, k)}: {n}" for k, n in sorted(counts.items()))
    if kinds:
        text += "\n  " + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
    return text
