"""``mam import`` and ``mam watch``: the arguments and what they print."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console

from deploy.bulk_import.client import ArchiveClient, ArchiveProblem, Credentials
from deploy.bulk_import.journal import Journal, journal_path_for
from deploy.bulk_import.run import (
    Importer,
    RowReport,
    describe_sheet,
    dry_run,
    new_progress,
    print_report,
    print_row,
    summary,
    unlisted_files,
)
from deploy.bulk_import.sheet import Sheet, SheetError, read_sheet
from deploy.bulk_import.watch import FolderBusy, Watcher
from shared.settings import Settings

CREDENTIALS_HELP = (
    "credentials: MAM_TOKEN (an access token or an API key, sent as Bearer), "
    "or --user NAME (password from MAM_PASSWORD or asked)"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="", help="the archive's ingest service (default: the local one)")
    parser.add_argument("--accounts-url", default="", help="where --user signs in (default: the local one)")
    parser.add_argument("--user", default="", help="sign in as this account instead of MAM_TOKEN")
    parser.add_argument("--chunk-size", type=int, default=8 * 1024 * 1024, help="bytes per PATCH (default 8 MiB)")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    imp = sub.add_parser(
        "import",
        help="upload a folder with its caption sheet (resumable; re-runs skip what is done)",
        epilog=CREDENTIALS_HELP,
    )
    imp.add_argument("folder", type=Path)
    imp.add_argument("--captions", type=Path, required=True, help="caption sheet: .csv (any encoding) or .xlsx")
    imp.add_argument("--dry-run", action="store_true", help="check every row and report; send nothing")
    imp.add_argument("--jobs", type=int, default=2, help="files sent at once (default 2)")
    imp.add_argument("--journal", type=Path, default=None, help="resume journal (default: under ~/.local/state)")
    imp.add_argument("--json", action="store_true", help="one JSON line per row instead of text and bars")
    _common(imp)
    watch = sub.add_parser(
        "watch", help="upload files dropped in a folder once they stop growing", epilog=CREDENTIALS_HELP
    )
    watch.add_argument("folder", type=Path)
    watch.add_argument("--captions", type=Path, default=None, help="a caption sheet (default: sidecars, folder sheets)")
    watch.add_argument("--settle", type=float, default=None, help="seconds a file must stay unchanged (default 5)")
    watch.add_argument("--caption-wait", type=float, default=300.0, help="seconds to wait for a file's caption")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between looks at the folder")
    _common(watch)


def _client(settings: Settings, args: argparse.Namespace) -> ArchiveClient:
    token = os.environ.get("MAM_TOKEN", "")
    if not token and args.command == "watch" and settings.watch_api_key is not None:
        token = settings.watch_api_key.get_secret_value()
    if args.user:
        password = os.environ.get("MAM_PASSWORD") or getpass.getpass(f"Mật khẩu / password ({args.user}): ")
        credentials = Credentials(
            accounts_url=args.accounts_url or settings.accounts_url, username=args.user, password=password
        )
    else:
        credentials = Credentials(bearer=token)
    return ArchiveClient(args.url or settings.ingest_url, credentials, chunk_size=args.chunk_size)


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    console = Console(stderr=args.json, soft_wrap=True)  # report lines stay whole (grep, logs)
    try:
        sheet = read_sheet(args.captions)
    except SheetError as exc:
        console.print(f"Lỗi / error: {exc}", markup=False)
        return 2
    if not args.folder.is_dir():
        console.print(f"Lỗi / error: không có thư mục / no folder {args.folder}", markup=False)
        return 2
    console.print(describe_sheet(sheet), markup=False, highlight=False)
    client = _client(settings, args)
    try:
        if args.dry_run:
            return _dry_run(console, args, sheet, client)
        journal = Journal(args.journal or journal_path_for(args.folder, args.captions, client.ingest_url))
        console.print(f"Nhật ký / journal: {journal.path}", markup=False, highlight=False)
        progress = new_progress(console, enabled=not args.json and console.is_terminal)
        with progress:
            importer = Importer(
                args.folder,
                sheet,
                client,
                journal,
                jobs=args.jobs,
                progress=progress,
                on_report=lambda report: print_row(progress.console, report, args.json),
            )
            reports = importer.run()
    except ArchiveProblem as exc:
        console.print(f"Lỗi / error: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        # Uploads under way are cut like a dropped link: the journal (written after every
        # step) resumes them. Exit now rather than wait for the threads to finish their files.
        console.print(
            "Đã dừng; chạy lại đúng lệnh này để tiếp tục / stopped; run the same command again to resume",
            markup=False,
        )
        sys.stdout.flush()
        os._exit(130)
    finally:
        client.close()
    console.print("Kết quả / result: " + summary(reports), markup=False, highlight=False)
    return 0 if all(r.result in ("stored", "in_archive", "done_earlier") for r in reports) else 1


def _dry_run(console: Console, args: argparse.Namespace, sheet: Sheet, client: ArchiveClient) -> int:
    checked: ArchiveClient | None = client
    if not client.credentials.header() and not args.user:
        console.print(
            "Không có MAM_TOKEN: không kiểm tra tệp đã có trong kho / no MAM_TOKEN: files already in the "
            "archive are not looked for",
            markup=False,
        )
        checked = None
    reports: list[RowReport] = dry_run(args.folder, sheet, checked)
    console.print("Chạy thử, không gửi gì / dry run, nothing sent:", markup=False)
    print_report(console, reports, args.json)
    for name in unlisted_files(args.folder, sheet):
        console.print(f"  (không có trong bảng / not in the sheet, not sent) {name}", markup=False, highlight=False)
    console.print("Tổng hợp / summary: " + summary(reports), markup=False, highlight=False)
    return 0 if all(r.result in ("ready", "in_archive") for r in reports) else 1


def run_watch(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    if not args.folder.is_dir():
        print(f"Lỗi / error: không có thư mục / no folder {args.folder}", file=sys.stderr)
        return 2
    client = _client(settings, args)
    watcher = Watcher(
        args.folder,
        client,
        settle_s=args.settle if args.settle is not None else settings.watch_settle_s,
        caption_wait_s=args.caption_wait,
        sheet=args.captions,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watcher.run(stop, interval_s=args.interval)
    except FolderBusy as exc:
        print(f"Lỗi / error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0
