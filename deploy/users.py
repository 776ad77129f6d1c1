"""``mam user add|passwd|disable|enable|list``: accounts managed on the server itself.

Talks to the NATS KV buckets directly (whoever can reach NATS administers the
archive anyway), so it works before any account exists: the first
administrator of a fresh install is made with ``mam user add <name> --role
quan-tri``. Changes are recorded in the event log like the API's, with the
actor ``mam-cli:<os user>`` and ``via: cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable

import nats

from services.accounts.accounts import Accounts
from services.accounts.domain import ACCOUNT_ROLES
from services.accounts.store import AccountBuckets
from shared.auth import ROLE_LABELS_VI, Role
from shared.eventstore import EventStore
from shared.http import UserError
from shared.settings import Settings

ROLE_CHOICES = [r.value for r in ACCOUNT_ROLES]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    user = sub.add_parser("user", help="manage accounts directly in NATS KV (also the first administrator)")
    actions = user.add_subparsers(dest="user_command", required=True)
    add = actions.add_parser("add", help="create an account (asks for its password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES)
    add.add_argument("--name", default="", help="display name (Vietnamese); default: the user name")
    passwd = actions.add_parser("passwd", help="set a new password (also unlocks; ends the account's sign-ins)")
    passwd.add_argument("username")
    for name, text in (("disable", "stop an account from signing in"), ("enable", "let it sign in again")):
        actions.add_parser(name, help=text).add_argument("username")
    actions.add_parser("list", help="every account, its role and state")
    for parser in (add, passwd):
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input (one line)"
        )


def read_password(from_stdin: bool) -> str:
    """One line of standard input, or asked twice on the terminal."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Mật khẩu / password: ")
    if getpass.getpass("Nhập lại / again: ") != first:
        raise UserError(422, "password_mismatch", "Hai lần nhập không khớp.", "The two entries differ.")
    return first


async def _run(settings: Settings, args: argparse.Namespace, password: Callable[[], str]) -> int:
    nc = await nats.connect(settings.nats_servers, name="mam-cli", connect_timeout=5, max_reconnect_attempts=1)
    events = await EventStore.from_settings(settings)
    try:
        buckets = await AccountBuckets.open(
            nc.jetstream(),
            session_max_s=settings.refresh_session_max_s,
            guard_ttl_s=settings.signin_failure_window_s + settings.signin_lockout_s,
            api_key_cache_ttl_s=0,
            replicas=settings.nats_replicas,
        )
        accounts = Accounts(buckets, events, settings)
        actor = f"mam-cli:{getpass.getuser()}"
        command = args.user_command
        if command == "list":
            users = await accounts.users()
            for u in users:
                state = "hoạt động / active" if u.active else "vô hiệu / disabled"
                if u.guard.locked_until and u.guard.locked_until > accounts.clock():
                    state += f", khóa đến / locked until {u.guard.locked_until:%Y-%m-%d %H:%M} UTC"
                print(f"{u.username:<24} {u.role.value:<11} {state:<28} {u.display_name}")
            if not users:
                print("(chưa có tài khoản nào / no accounts yet)")
            return 0
        if command == "add":
            role = Role(args.role)
            user = await accounts.create_user(
                actor, args.username, args.name or args.username, role, password(), via="cli"
            )
            print(f"Đã tạo / created: {user.username} ({ROLE_LABELS_VI[role]})")
        elif command == "passwd":
            user = await accounts.change_user(actor, args.username, password=password(), via="cli")
            print(f"Đã đổi mật khẩu / password changed: {user.username}")
        else:
            user = await accounts.change_user(actor, args.username, active=command == "enable", via="cli")
            print(f"{'Đã mở lại / enabled' if user.active else 'Đã vô hiệu / disabled'}: {user.username}")
        return 0
    finally:
        await events.close()
        await nc.drain()


def run(settings: Settings, args: argparse.Namespace) -> int:
    password = lambda: read_password(getattr(args, "password_stdin", False))  # noqa: E731
    try:
        return asyncio.run(_run(settings, args, password))
    except UserError as exc:
        print(f"Lỗi / error: {exc.message_vi} / {exc.message_en}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.Error) as exc:
        print(
            f"Lỗi / error: không kết nối được NATS / cannot reach NATS at {settings.resolved_nats_url}: {exc}",
            file=sys.stderr,
        )
        return 1
