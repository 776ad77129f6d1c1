"""``mam reel render ID``: ask the reels service to render a reel and follow it with a progress bar.

Talks to the reels API like any client, with a token (``--token`` or
``MAM_TOKEN``: an access token or an API key of a producer, archivist or
administrator). A render already running is followed rather than started again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from shared.settings import Settings

POLL_S = 0.25


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    reel = sub.add_parser("reel", help="reels: render one and follow its progress")
    actions = reel.add_subparsers(dest="reel_command", required=True)
    render = actions.add_parser("render", help="render a reel (or follow the render already running)")
    render.add_argument("reel_id")
    render.add_argument("--token", default=os.environ.get("MAM_TOKEN", ""), help="access token or API key (MAM_TOKEN)")
    render.add_argument("--url", default="", help="the reels service (default: MAM_REELS_PORT on this machine)")
    render.add_argument("--timeout", type=float, default=3600.0, help="give up following after this many seconds")


def _error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['message']} / {error['message_en']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def follow(client: httpx.Client, base: str, reel_id: str, timeout_s: float, console: Console) -> dict[str, Any]:
    """Poll the reel until its render ends, drawing the progress; the final view."""
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"Đang dựng / rendering {reel_id}", total=100)
        while True:
            response = client.get(f"{base}/v1/reels/{reel_id}")
            if response.status_code != 200:
                raise RuntimeError(_error(response))
            view: dict[str, Any] = response.json()
            bar.update(task, completed=view["progress"], description=f"{view['status']} {reel_id}")
            if view["status"] not in ("queued", "rendering"):
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"still {view['status']} after {timeout_s:g} s")
            time.sleep(POLL_S)


def run(settings: Settings, args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if not args.token:
        print("Lỗi / error: cần mã truy cập / a token is needed (--token or MAM_TOKEN)", file=sys.stderr)
        return 2
    base = (args.url or settings.reels_url).rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"}
    try:
        with httpx.Client(headers=headers, timeout=30.0) as client:
            started = client.post(f"{base}/v1/reels/{args.reel_id}/render")
            if started.status_code != 202:
                print(f"Lỗi / error: {_error(started)}", file=sys.stderr)
                return 1
            view = follow(client, base, args.reel_id, args.timeout, console)
    except (httpx.HTTPError, RuntimeError, TimeoutError) as exc:
        print(f"Lỗi / error: {exc}", file=sys.stderr)
        return 1
    if view["status"] != "rendered":
        error = view.get("error") or {}
        print(f"Dựng thất bại / render failed: {error.get('message')} / {error.get('message_en')}", file=sys.stderr)
        return 1
    out = view["output"]
    print(f"Xong / done: {out['duration_s']:.2f} s, {out['integrated_lufs']:.1f} LUFS, {len(out['chapters'])} chương")
    print(f"  video:    {out['url']}")
    print(f"  chapters: {out['chapters_url']}")
    return 0
