"""Schemathesis against every service's own OpenAPI description: whatever a
client sends that the schema allows (and much it does not), no answer is a
5xx and no answer breaks the documented response schema. Afterwards the
projection is healthy and every service is ready (issue 10).

Examples per operation: ``MAM_FUZZ_EXAMPLES`` (a short run inside ``make
test``; ``make test-fuzz`` runs a long one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.settings import Settings
from tests.conftest import ADMIN, ARCHIVIST, wait_for

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("MAM_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def fuzz(
    url: str,
    *,
    skip: frozenset[str] = frozenset(),
    examples: int = EXAMPLES,
    on_status: Callable[[int], None] | None = None,
) -> list[str]:
    """Every operation of the service at ``url``, ``examples`` generated cases each
    (``on_status`` sees every answer's status, for a summary).

    Drives schemathesis's Hypothesis strategies directly: its pytest plugin does
    not support this pytest version. Returns the operations exercised.
    """
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # a part of the document schemathesis cannot read: say which
            raise result.err()
        operation = result.ok()
        if operation.path in skip:
            continue

        @settings(FUZZ, max_examples=examples)
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case[Any]) -> None:
            response = case.call_and_validate(headers=ARCHIVIST, checks=CHECKS)
            if on_status is not None:
                on_status(response.status_code)

        call()
        seen.append(f"{operation.method.upper()} {operation.path}")
    return seen


def test_the_ingest_api_answers_anything_without_a_server_error(services: Settings) -> None:
    assert "POST /v1/assets" in fuzz(services.ingest_url)


def test_the_search_api_answers_anything_without_a_server_error(services: Settings) -> None:
    assert "GET /v1/search" in fuzz(services.search_url)


def test_the_catalogue_api_answers_anything_without_a_server_error(services: Settings) -> None:
    # Re-tagging the whole archive is a real, heavy request: fuzzing it would only
    # keep the tagger busy for the rest of the run.
    assert "PATCH /v1/assets/{asset_id}/metadata" in fuzz(services.catalogue_url, skip=frozenset({"/v1/retag"}))


def test_the_accounts_api_answers_anything_without_a_server_error(services: Settings) -> None:
    assert "POST /v1/auth/token" in fuzz(services.accounts_url)


def test_the_reels_api_answers_anything_without_a_server_error(services: Settings) -> None:
    assert "PUT /v1/reels/{reel_id}/items" in fuzz(services.reels_url)


def test_after_the_fuzzing_the_projection_is_healthy_and_every_service_is_ready(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    for url in (
        s.ingest_url,
        s.search_url,
        s.catalogue_url,
        s.tagger_url,
        s.transcoder_url,
        s.accounts_url,
        s.reels_url,
    ):
        ready = http.get(f"{url}/readyz")
        assert ready.status_code == 200, (url, ready.text)

    def caught_up() -> dict[str, object] | None:
        body = http.get(f"{s.search_url}/v1/projection", headers=ADMIN).json()
        return body if body["pending"] == 0 and body["awaiting_ack"] == 0 else None

    status = wait_for(caught_up, timeout=120, what="the projection to catch up with the fuzzed writes")
    assert status["healthy"] is True and status["failures"] == [], status
