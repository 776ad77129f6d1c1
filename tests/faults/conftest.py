"""The cluster profile under test: started fresh once per run (``make test-faults``).

It takes the test stack's ports (node 1 of NATS and Elasticsearch, the S3 balancer
on MinIO's, the services' own), so it runs in a pytest session of its own, never
alongside the single-node ``stack`` fixture at the same offset.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from deploy.local.cluster import ClusterStack
from deploy.local.processes import LaunchError
from tests.faults.chaos import cluster_under_test


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterStack]:
    stack = cluster_under_test()
    keep = os.environ.get("MAM_TEST_KEEP_SERVERS") == "1"
    if not keep:
        stack.down()
        shutil.rmtree(stack.local.home, ignore_errors=True)
    began = time.monotonic()
    try:
        stack.up()
    except LaunchError as exc:
        pytest.fail(f"the cluster did not start: {exc}", pytrace=False)
    print(f"\ncluster started in {time.monotonic() - began:.0f}s", flush=True)
    yield stack
    if not keep:
        stack.down()
