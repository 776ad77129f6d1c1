"""Schemathesis against every HTTP service of the cluster, each of its two replicas on its own:
no 5xx and no answer outside the documented schema, whichever replica a client reaches
(the same strategies as tests/e2e/test_api_fuzz.py). Afterwards every replica is ready
and the projection has caught up with the fuzzed writes.

Bounded: ``MAM_CLUSTER_FUZZ_EXAMPLES`` cases per operation and replica (default 8);
only in ``make test-faults``.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import httpx
import pytest

from deploy.local.cluster import ClusterStack
from shared.settings import Settings
from tests.conftest import ADMIN, wait_for
from tests.e2e.test_api_fuzz import fuzz
from tests.faults.load import replica_urls

pytestmark = [pytest.mark.integration, pytest.mark.fault_full]
EXAMPLES = int(os.environ.get("MAM_CLUSTER_FUZZ_EXAMPLES", "8"))
# The services with an API, the operation each must have exercised, and what is left out:
# re-tagging the whole archive is a real, heavy request that would keep the tagger busy.
APIS = {
    "ingest": ("POST /v1/assets", frozenset[str]()),
    "search": ("GET /v1/search", frozenset[str]()),
    "catalogue": ("PATCH /v1/assets/{asset_id}/metadata", frozenset({"/v1/retag"})),
    "accounts": ("POST /v1/auth/token", frozenset[str]()),
    "reels": ("PUT /v1/reels/{reel_id}/items", frozenset[str]()),
}


def parked_writes(settings: Settings) -> set[tuple[str, int]]:
    """The projector's parked writes (asset, sequence), as the search API lists them."""
    body = httpx.get(f"{settings.search_url}/v1/projection", headers=ADMIN, timeout=30).json()
    return {(str(f["asset_id"]), int(f["sequence"])) for f in body["failures"]}


@pytest.fixture(scope="module")
def parked_before_fuzzing(cluster: ClusterStack) -> set[tuple[str, int]]:
    """What earlier tests of the session left parked by design (the poison event's writes)."""
    return parked_writes(cluster.settings)


@pytest.mark.parametrize("service", list(APIS))
def test_each_replica_of_the_service_answers_anything_without_a_server_error_or_a_schema_violation(
    cluster: ClusterStack, service: str, parked_before_fuzzing: set[tuple[str, int]]
) -> None:
    must_have, skip = APIS[service]
    statuses: Counter[str] = Counter()
    operations: set[str] = set()
    for url in replica_urls(cluster.settings, service):
        seen = fuzz(url, skip=skip, examples=EXAMPLES, on_status=lambda code: statuses.update([f"{code // 100}xx"]))
        assert must_have in seen, (url, seen)
        operations |= set(seen)
    answers = sum(statuses.values())
    print(
        f"\nschemathesis {service}: {len(operations)} operations × 2 replicas, {answers} examples answered "
        f"({dict(sorted(statuses.items()))}), 5xx 0, schema violations 0",
        flush=True,
    )
    assert statuses["5xx"] == 0 and answers >= len(operations) * 2


def test_after_the_fuzzing_every_replica_is_ready_and_the_projection_has_caught_up(
    cluster: ClusterStack, parked_before_fuzzing: set[tuple[str, int]]
) -> None:
    s = cluster.settings
    with httpx.Client(timeout=30.0) as http:
        for service in (*APIS, "tagger", "transcoder"):
            for url in replica_urls(s, service):

                def ready(url: str = url) -> bool:
                    return http.get(f"{url}/readyz").status_code == 200

                wait_for(ready, timeout=60, what=f"{url} ready")

        # Caught up: nothing left to deliver, nothing unacknowledged but what was parked before.
        def caught_up() -> dict[str, Any] | None:
            body: dict[str, Any] = http.get(f"{s.search_url}/v1/projection", headers=ADMIN).json()
            return body if body["pending"] == 0 and body["awaiting_ack"] <= len(parked_before_fuzzing) else None

        status = wait_for(caught_up, timeout=180, what="the projection to catch up with the fuzzed writes")
        # No fuzzed write was parked: the failures are the ones earlier tests left (none if run alone).
        assert parked_writes(s) == parked_before_fuzzing, status
        assert status["healthy"] is (not parked_before_fuzzing), status
