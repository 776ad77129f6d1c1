"""``mam`` — the project's command line: run the local stack, load demo data.

mam up [--servers nats,minio,...] [--no-services]   start (idempotent)
mam up --cluster                                     the cluster profile: 3 NATS, 4 MinIO, 3 ES, 2 × every service
mam down                                             stop everything (a cluster too, in order)
mam status                                           what is running (a cluster: each node's health and role)
mam demo                                             load the demo set
mam run                                              up + demo, wait for Ctrl-C, then down
mam classify [TEXT ...]                              activity type per text (stdin: one per line)
mam rebuild-index [--keep N]                         replay the event stream into a new search index
mam docs [--check]                                   regenerate (or check) the event catalogue in docs/architecture.md
mam user add NAME --role ROLE [--name "Tên"]         create an account (the first administrator too)
mam user passwd|disable|enable NAME · mam user list  manage accounts directly in NATS KV
mam uploads [--all] [--user NAME] [--json]           resumable uploads in flight (NATS KV)
mam import FOLDER --captions SHEET [--dry-run]      upload a folder with its caption sheet (resumable)
mam watch FOLDER                                     upload files dropped in a folder once they stop growing
mam reel render ID [--token T]                      render a reel, following it with a progress bar
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import threading
import time

from deploy.local.processes import LaunchError
from deploy.local.stack import SERVERS, SERVICES, LocalStack
from shared.settings import Settings


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _default_servers(settings: Settings) -> list[str]:
    s3 = "seaweedfs" if settings.s3_backend == "seaweedfs" else "minio"
    return ["nats", s3, "elasticsearch"]


def cmd_up(stack: LocalStack, servers: list[str], services: list[str]) -> None:
    began = time.monotonic()
    for result in stack.up(servers, services):
        state = "đang chạy sẵn / already running" if result.reused else "đã khởi động / started"
        print(
            f"  ✓ {result.name:<14} pid {result.pid:<8} {state}, healthy in {result.seconds_to_healthy:.1f}s",
            flush=True,
        )
    print(f"Sẵn sàng / ready in {time.monotonic() - began:.1f}s — data in {stack.home}", flush=True)


def cmd_up_cluster(settings: Settings, services: list[str]) -> None:
    from deploy.local.cluster import ClusterStack

    began = time.monotonic()
    cluster = ClusterStack(settings)
    for result in cluster.up(tuple(services)):
        state = "đang chạy sẵn / already running" if result.reused else "đã khởi động / started"
        print(f"  ✓ {result.name:<16} pid {result.pid:<8} {state}, healthy in {result.seconds_to_healthy:.1f}s")
    print(
        f"Cụm sẵn sàng / cluster ready in {time.monotonic() - began:.1f}s — data in {cluster.local.home}\n"
        f"  NATS: {cluster.settings.resolved_nats_url}\n  Elasticsearch: {cluster.settings.resolved_es_url}\n"
        f"  S3 (HAProxy → 4 MinIO): {cluster.settings.resolved_s3_endpoint}",
        flush=True,
    )


def cmd_down(stack: LocalStack) -> None:
    from deploy.local.cluster import ClusterStack

    cluster = ClusterStack(stack.settings)
    stopped = cluster.down(lambda name, seconds: print(f"  ■ {name:<16} stopped in {seconds:.1f}s", flush=True))
    stopped += stack.down()
    print("Đã dừng / stopped: " + (", ".join(stopped) if stopped else "(nothing was running)"))


def cmd_status(stack: LocalStack) -> None:
    from deploy.local.cluster import ClusterStack

    cluster = ClusterStack(stack.settings)
    if cluster.running():
        status = cluster.status()
        for node in status.nodes:
            health = "khỏe / healthy" if node.healthy else "KHÔNG / unhealthy"
            running = f"pid {node.pid}" if node.pid else "không chạy / not running"
            print(f"  {node.name:<16} {running:<12} {health:<18} {node.role}")
        for line in status.summary:
            print(f"  {line}")
        return
    for server, pid in stack.status().items():
        print(f"  {server:<14} {'pid ' + str(pid) if pid else 'không chạy / not running'}")


def cmd_demo(settings: Settings) -> None:
    from deploy.demo import load_demo

    load_demo(settings)


def demo_accounts_line() -> str:
    """The demo accounts (user name / password), one per role, for the web address printed first."""
    from services.accounts.accounts import DEMO_ACCOUNTS

    return "Tài khoản mẫu / demo accounts: " + ", ".join(f"{a.username} / {a.password}" for a in DEMO_ACCOUNTS)


def cmd_run(stack: LocalStack, settings: Settings) -> None:
    from deploy.demo import sign_in

    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    try:
        cmd_up(stack, _default_servers(settings), list(SERVICES))
        cmd_demo(settings)
        token = sign_in(settings, ("luu-tru", "demo-luu-tru"))  # an archivist's, for a few minutes
        print(
            "\nKho tư liệu HĐND đang chạy / the archive is running:\n"
            f"  ➜ Trang web / web pages: {settings.web_url}/\n"
            f"    {demo_accounts_line()}\n"
            f"  Tìm kiếm / search:  {settings.search_url}/v1/search?q=tiep+xuc+cu+tri\n"
            f"  Tải lên / upload:   {settings.ingest_url}/v1/assets  (POST, multipart)\n"
            f"  Biên mục / catalogue: {settings.catalogue_url}/v1/activities  ·  /v1/assets/<id>/tags\n"
            f"  API docs:           {settings.search_url}/docs  ·  {settings.ingest_url}/docs"
            f"  ·  {settings.catalogue_url}/docs  ·  {settings.accounts_url}/docs\n"
            f"  Đăng nhập / sign in: curl -d username=luu-tru -d password=demo-luu-tru "
            f"{settings.accounts_url}/v1/auth/token  (tài khoản mẫu / demo accounts: README)\n"
            f"  Token (hết hạn sau {settings.access_token_ttl_s // 60} phút / expires in "
            f"{settings.access_token_ttl_s // 60} min): Authorization: Bearer {token}\n"
            f"  e.g. curl -H 'Authorization: Bearer {token}' '{settings.search_url}/v1/search?q=ky+hop'\n"
            "Ctrl-C (hoặc `make stop`) để dừng / to stop.",
            flush=True,
        )
        while not stop_requested.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("\nĐang dừng / stopping…", flush=True)
        cmd_down(stack)


def cmd_rebuild_index(settings: Settings, keep_previous: int) -> int:
    """Replay the whole stream into a new index and swap the alias; queries keep being served.

    It takes the same lease as a rebuild started from the admin page: one at a time."""
    import asyncio

    import nats

    from services.search.rebuild_lease import claim, lease_bucket, new_record, run_rebuild
    from shared.http import UserError

    last_print = [0.0]

    def progress(phase: str, done: int, known: int, rate: float) -> None:
        now = time.monotonic()
        if now - last_print[0] >= 1.0:
            last_print[0] = now
            print(f"  {phase:<10} {done:>9} / ~{known} sự kiện / events  ({rate:,.0f}/s)", flush=True)

    async def run() -> int:
        nc = await nats.connect(settings.nats_servers, name="mam-cli", connect_timeout=5, max_reconnect_attempts=1)
        try:
            kv = await lease_bucket(nc.jetstream())
            record = new_record(f"cli:{getpass.getuser()}")
            try:
                revision = await claim(kv, record)
            except UserError as exc:
                print(f"Lỗi / error: {exc.message_vi} / {exc.message_en}", file=sys.stderr)
                return 2
            print(f"Đang dựng lại chỉ mục / rebuilding the index from stream {settings.event_stream}…", flush=True)
            outcome = await run_rebuild(settings, kv, record, revision, keep_previous=keep_previous, progress=progress)
        finally:
            await nc.close()
        if outcome["state"] != "done":
            if outcome.get("swapped"):
                print(
                    f"Lỗi / error: đã chuyển sang chỉ mục mới nhưng còn sự kiện chưa ghi được, bộ chiếu "
                    f"sẽ ghi tiếp / the alias was swapped but an event is not indexed yet; the live "
                    f"projector keeps retrying it: {outcome['error']}",
                    file=sys.stderr,
                )
            else:
                print(
                    f"Lỗi / error: dựng lại thất bại, chỉ mục cũ giữ nguyên / rebuild failed, "
                    f"the live index is unchanged: {outcome['error']}",
                    file=sys.stderr,
                )
            return 1
        print(
            f"Xong / done: {outcome['events_done']} sự kiện / events in {outcome['seconds']:.1f}s "
            f"({outcome['rate']:,.0f}/s); "
            f"→ {outcome['new_index']} (trước / previous: {', '.join(outcome['previous']) or '-'}; "
            f"đã xóa / deleted: {', '.join(outcome['deleted']) or '-'})",
            flush=True,
        )
        return 0

    return asyncio.run(run())


def cmd_classify(texts: list[str]) -> int:
    """The classifier on its own, for archivists tuning the vocabulary and for evaluation."""
    import json

    from shared.vocabulary import classify

    lines = texts or (line.rstrip("\n") for line in sys.stdin)
    for text in lines:
        if text.strip():
            print(json.dumps({"text": text, **classify(text).as_json()}, ensure_ascii=False), flush=True)
    return 0


def cmd_docs(check: bool) -> int:
    """The event catalogue in docs/architecture.md, generated from the payload models."""
    from deploy.docs import DOC_PATH, DocError, stale_diff, write

    try:
        if check:
            diff = stale_diff(DOC_PATH)
            if diff:
                print(diff, end="")
                print(
                    f"Lỗi / error: {DOC_PATH.name} không khớp với mã nguồn / is out of date with shared/events; "
                    "run `mam docs` (or `make docs`) and commit the result.",
                    file=sys.stderr,
                )
                return 1
            print(f"{DOC_PATH.name}: up to date")
            return 0
        changed = write(DOC_PATH)
    except (DocError, OSError) as exc:
        print(f"Lỗi / error: {exc}", file=sys.stderr)
        return 1
    print(f"{DOC_PATH.name}: {'regenerated' if changed else 'already up to date'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mam", description="HĐND media archive — local stack")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install what is missing and start servers and services")
    up.add_argument("--servers", default="", help=f"comma list from {','.join(SERVERS)} (default: by MAM_S3_BACKEND)")
    up.add_argument("--services", default=",".join(SERVICES), help="comma list of services ('' for none)")
    up.add_argument("--cluster", action="store_true", help="the cluster profile on loopback (README: Cluster)")
    sub.add_parser("down", help="stop everything this launcher started")
    sub.add_parser("status", help="show what is running")
    sub.add_parser("demo", help="load the demo set through the HTTP API")
    sub.add_parser("run", help="up + demo, then wait for Ctrl-C and stop")
    classify = sub.add_parser("classify", help="propose activity types: one JSON line per text (argument or stdin)")
    classify.add_argument("text", nargs="*", help="texts to classify; none = read stdin, one text per line")
    rebuild = sub.add_parser("rebuild-index", help="replay the event stream into a new search index")
    rebuild.add_argument("--keep", type=int, default=1, help="previous indices kept for rollback (default 1)")
    docs = sub.add_parser("docs", help="regenerate the event catalogue in docs/architecture.md")
    docs.add_argument("--check", action="store_true", help="change nothing; exit 1 and show the diff if it is stale")
    from deploy import reels_cli, users

    users.add_parser(sub)
    from deploy import uploads

    uploads.add_parser(sub)
    from deploy.bulk_import import cli as bulk_import

    bulk_import.add_parsers(sub)
    reels_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "classify":
        return cmd_classify(args.text)
    if args.command == "docs":
        return cmd_docs(args.check)

    settings = Settings()
    if args.command == "user":
        return users.run(settings, args)
    if args.command == "uploads":
        return uploads.run(settings, args)
    if args.command == "import":
        return bulk_import.run_import(settings, args)
    if args.command == "watch":
        return bulk_import.run_watch(settings, args)
    if args.command == "reel":
        return reels_cli.run(settings, args)
    stack = LocalStack(settings)
    try:
        if args.command == "up" and args.cluster:
            cmd_up_cluster(settings, _split(args.services))
        elif args.command == "up":
            cmd_up(stack, _split(args.servers) or _default_servers(settings), _split(args.services))
        elif args.command == "down":
            cmd_down(stack)
        elif args.command == "status":
            cmd_status(stack)
        elif args.command == "demo":
            cmd_demo(settings)
        elif args.command == "run":
            cmd_run(stack, settings)
        elif args.command == "rebuild-index":
            return cmd_rebuild_index(settings, args.keep)
    except LaunchError as exc:
        print(f"Lỗi / error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
