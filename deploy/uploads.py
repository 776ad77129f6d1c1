"""``mam uploads``: the resumable uploads in flight, read from NATS KV (where ingest keeps them).

mam uploads                  uploads receiving or being verified, newest first
mam uploads --all            also those finished (stored / rejected) and not yet forgotten
mam uploads --user NAME      one user's
mam uploads --json           one JSON object per line (the fields of GET /v1/uploads/{id})
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

import nats

from services.ingest.upload_store import UploadStore
from services.ingest.uploads import UploadRecord, status_view
from shared.settings import Settings

IN_FLIGHT = ("receiving", "verifying")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    uploads = sub.add_parser("uploads", help="list resumable uploads in flight (NATS KV)")
    uploads.add_argument("--all", action="store_true", help="also finished uploads not yet forgotten")
    uploads.add_argument("--user", default="", help="only this user's uploads")
    uploads.add_argument("--json", action="store_true", help="one JSON object per line")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"


def render(records: list[UploadRecord], now: datetime) -> list[str]:
    """The table, Vietnamese headings first."""
    lines = [
        f"{'mã / id':<32}  {'người tải / owner':<16}  {'trạng thái / state':<18}  {'đã nhận / received':>24}  "
        f"{'hết hạn sau / expires in':>24}  tệp / file"
    ]
    for r in records:
        received = f"{_size(r.offset)}/{_size(r.length)} {100 * r.offset // max(r.length, 1):>3}%"
        left = max(0, int((r.expires_at - now).total_seconds()))
        expires = f"{left // 3600} h {left % 3600 // 60:02d} min"
        name = r.filename or r.meta.title
        lines.append(f"{r.id:<32}  {r.owner[:16]:<16}  {r.state:<18}  {received:>24}  {expires:>24}  {name}")
    if len(lines) == 1:
        lines.append("Không có lượt tải lên nào đang dở. / No uploads in flight.")
    return lines


async def _records(settings: Settings) -> list[UploadRecord]:
    nc = await nats.connect(settings.nats_servers, name="mam-cli", connect_timeout=5, max_reconnect_attempts=1)
    try:
        store = await UploadStore.open(
            nc.jetstream(), settings.upload_lock_lease_s, settings.upload_state_bucket, settings.nats_replicas
        )
        return await store.all()
    finally:
        await nc.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        records = asyncio.run(_records(settings))
    except Exception as exc:  # NATS not reachable: say so plainly
        print(f"Lỗi / error: không đọc được NATS KV / cannot read NATS KV: {exc}", file=sys.stderr)
        return 1
    chosen = [r for r in records if (args.all or r.state in IN_FLIGHT) and (not args.user or r.owner == args.user)]
    chosen.sort(key=lambda r: r.created_at, reverse=True)
    if args.json:
        for r in chosen:
            print(json.dumps(status_view(r), ensure_ascii=False))
    else:
        print("\n".join(render(chosen, datetime.now(UTC))))
    return 0
