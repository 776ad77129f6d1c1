"""Schemathesis against every service's own OpenAPI description: whatever a
client sends that the schema allows (and much it does not), no answer is a
5xx and no answer breaks the documented response schema. Afterwards the
projection is healthy and every service is ready (issue 10).

Examples per operation: ``MAM_FUZZ_EXAMPLES`` (a short run inside ``make
test``; ``make test-fuzz`` runs a long one).
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.settings import Settings
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("MAM_FUZZ_EXAMPLES", "15"))
ARCHIVIST = {"Authorization": "Bearer test-token-luu-tru"}
CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _schema(url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def ingest_schema(services: Settings) -> schemathesis.BaseSchema:
    return _schema(services.ingest_url)


@pytest.fixture(scope="module")
def search_schema(services: Settings) -> schemathesis.BaseSchema:
    return _schema(services.search_url)


@pytest.fixture(scope="module")
def catalogue_schema(services: Settings) -> schemathesis.BaseSchema:
    # Re-tagging the whole archive is a real, heavy request: fuzzing it would only
    # keep the tagger busy for the rest of the run.
    return _schema(services.catalogue_url).exclude(path="/v1/retag")


ingest_api = schemathesis.pytest.from_fixture("ingest_schema")
search_api = schemathesis.pytest.from_fixture("search_schema")
catalogue_api = schemathesis.pytest.from_fixture("catalogue_schema")


@ingest_api.parametrize()
@FUZZ
def test_the_ingest_api_answers_anything_without_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=ARCHIVIST, checks=CHECKS)


@search_api.parametrize()
@FUZZ
def test_the_search_api_answers_anything_without_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=ARCHIVIST, checks=CHECKS)


@catalogue_api.parametrize()
@FUZZ
def test_the_catalogue_api_answers_anything_without_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=ARCHIVIST, checks=CHECKS)


def test_after_the_fuzzing_the_projection_is_healthy_and_every_service_is_ready(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    for url in (s.ingest_url, s.search_url, s.catalogue_url, s.tagger_url, s.transcoder_url):
        ready = http.get(f"{url}/readyz")
        assert ready.status_code == 200, (url, ready.text)

    def caught_up() -> dict[str, object] | None:
        body = http.get(f"{s.search_url}/v1/projection", headers=ARCHIVIST).json()
        return body if body["pending"] == 0 and body["awaiting_ack"] == 0 else None

    status = wait_for(caught_up, timeout=120, what="the projection to catch up with the fuzzed writes")
    assert status["healthy"] is True and status["failures"] == [], status
