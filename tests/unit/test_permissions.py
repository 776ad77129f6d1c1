"""The permission matrix: every route of every service, read from the apps
themselves, × every role (and the anonymous public, an expired token, a token
signed by another key), against one table written here.

A new route without a declared action fails the first test; a change of the
policy that the table does not agree with fails the second. Only the access
decision is exercised: the apps are built without their servers, so an allowed
request goes on to fail for another reason (no adapters), never with 401/403.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from deploy.local.stack import SERVICES
from shared.access import declared_action
from shared.auth import Principal, Role, ensure_signing_keys, issue_access_token, load_private_key
from shared.policy import Action
from tests.conftest import test_settings as stack_settings

# Who may take each action: the table the policy must agree with.
STAFF = {"phong-vien", "luu-tru", "bien-tap", "quan-tri"}
ARCHIVE = {"luu-tru", "quan-tri"}
EXPECTED: dict[Action, set[str]] = {
    Action.ASSET_UPLOAD: {"phong-vien", "luu-tru", "quan-tri"},
    Action.ASSET_READ: STAFF,
    Action.ASSET_EDIT: ARCHIVE,
    Action.ASSET_CORRECT: {"phong-vien", *ARCHIVE},
    Action.ASSET_PUBLISH: ARCHIVE,
    Action.ARCHIVE_RETAG: ARCHIVE,
    Action.SEARCH: STAFF,
    Action.ACTIVITY_READ: STAFF,
    Action.ACTIVITY_EDIT: ARCHIVE,
    Action.PEOPLE_READ: STAFF,
    Action.PEOPLE_EDIT: ARCHIVE,
    Action.CLASSIFY: STAFF,
    Action.OPERATIONS: {"quan-tri"},
    Action.ACCOUNTS: {"quan-tri"},
    Action.FEED: {*STAFF, "public"},
    Action.REEL_READ: {"bien-tap", *ARCHIVE},
    Action.REEL_EDIT: {"bien-tap", *ARCHIVE},
    Action.COLLECTION_READ: {"bien-tap", *ARCHIVE},
    Action.COLLECTION_EDIT: {"bien-tap", *ARCHIVE},
    Action.DELEGATE_REPORT: STAFF,
    Action.PROCESSING_READ: ARCHIVE,
}
UNGUARDED = {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
# Signing in, refreshing and out check the credentials in their bodies, and "who am I"
# answers any valid credential: no policy action (tests/integration/test_accounts_service.py).
UNGUARDED |= {"/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/me"}
# The web pages' sign-in, sign-out and language switch: no account needed, CSRF-checked
# (tests/browser/test_web_session.py).
UNGUARDED |= {"/sign-in", "/sign-out", "/language"}
CALLERS = [r.value for r in Role] + ["expired", "other-key"]


def _apps(tmp: Any) -> dict[str, FastAPI]:
    settings = stack_settings(home=tmp)
    ensure_signing_keys(settings.resolved_jwt_private_key_file, settings.resolved_jwt_public_key_file)
    apps = {}
    for name in SERVICES:
        module = __import__(f"services.{name}.app", fromlist=["create_app"])
        apps[name] = module.create_app(settings)
    return apps


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    return _apps(tmp_path_factory.mktemp("permissions"))


def _flatten(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI ≥ 0.16x includes routers lazily
        if included is not None:
            yield from _flatten(included.routes)


def _routes(apps: dict[str, FastAPI]) -> Iterator[tuple[str, APIRoute]]:
    for name, app in apps.items():
        for route in _flatten(app.routes):
            if route.path not in UNGUARDED:
                yield name, route


def test_the_matrix_sees_the_routes_of_every_http_service(apps: dict[str, FastAPI]) -> None:
    paths = {f"{name} {route.path}" for name, route in _routes(apps)}
    assert {"ingest /v1/assets", "search /v1/search", "catalogue /v1/activities", "reels /v1/reels"} <= paths


def _action(route: APIRoute) -> Action | None:
    found = {declared_action(dep.call) for dep in route.dependant.dependencies} - {None}
    return found.pop() if len(found) == 1 else None


def test_every_route_of_every_service_declares_exactly_one_action(apps: dict[str, FastAPI]) -> None:
    missing = [f"{name} {sorted(r.methods)} {r.path}" for name, r in _routes(apps) if _action(r) is None]
    assert not missing, f"routes without a declared action: {missing}"


def test_the_table_covers_every_action_of_the_policy() -> None:
    assert set(EXPECTED) == set(Action)


def _credentials(caller: str, settings: Any) -> dict[str, str]:
    if caller == "public":
        return {}
    if caller in ("expired", "other-key"):
        key = (
            load_private_key(settings.resolved_jwt_private_key_file)
            if caller == "expired"
            else Ed25519PrivateKey.generate()
        )
        when = datetime.now(UTC) - (timedelta(hours=1) if caller == "expired" else timedelta(0))
        token, _ = issue_access_token(Principal("x", "x", Role.QUAN_TRI), key, 60, now=when)
        return {"Authorization": f"Bearer {token}"}
    key = load_private_key(settings.resolved_jwt_private_key_file)
    token, _ = issue_access_token(Principal(f"user-{caller}", caller, Role(caller)), key, 300)
    return {"Authorization": f"Bearer {token}"}


def _path(route: APIRoute) -> str:
    return route.path.format(**{p.name: f"{p.name[0]}{'0' * 32}" for p in route.dependant.path_params})


@pytest.mark.parametrize("caller", CALLERS)
def test_each_role_may_take_exactly_the_actions_of_the_table(apps: dict[str, FastAPI], caller: str) -> None:
    wrong = []
    for name, route in _routes(apps):
        action = _action(route)
        assert action is not None
        app = apps[name]
        settings = app.state.settings
        client = TestClient(app, raise_server_exceptions=False)  # no lifespan: no servers needed
        method = sorted(route.methods)[0]
        response = client.request(method, _path(route), headers=_credentials(caller, settings))
        denied = response.status_code in (401, 403)
        should_allow = caller in EXPECTED[action]
        if denied == should_allow:
            wrong.append(f"{name} {method} {route.path}: {response.status_code} for {caller}")
        if denied and method != "HEAD":  # a HEAD answer has no body to read
            error = response.json()["error"]
            assert error["message"] and error["message_en"] and set(error) == {"code", "message", "message_en"}
            expected_status = 403 if caller in STAFF else 401
            if response.status_code != expected_status:
                wrong.append(f"{name} {method} {route.path}: {response.status_code}, not {expected_status}")
    assert not wrong, "\n".join(wrong)


def test_the_matrix_sees_the_collection_routes_with_their_actions(apps: dict[str, FastAPI]) -> None:
    actions = {f"{name} {sorted(r.methods)[0]} {r.path}": _action(r) for name, r in _routes(apps)}
    assert actions["catalogue POST /v1/collections"] is Action.COLLECTION_EDIT
    assert actions["catalogue POST /v1/collections/{collection_id}/assets"] is Action.COLLECTION_EDIT
    assert actions["catalogue GET /v1/collections/{collection_id}"] is Action.COLLECTION_READ
    assert actions["search GET /v1/collections/{collection_id}/page"] is Action.COLLECTION_READ
    assert actions["search POST /v1/collections/{collection_id}/exports"] is Action.COLLECTION_READ
    assert actions["search GET /v1/stats/collections"] is Action.COLLECTION_READ
    assert actions["search GET /v1/stats/organs"] is Action.SEARCH
