"""The compose file's `cluster` profile has the shape of `mam up --cluster` (no Docker engine
here: parsed and checked, like tests/unit/test_compose_file.py)."""

from pathlib import Path
from typing import Any

import yaml

from deploy.local.cluster import ES_NODES, MINIO_SERVERS, NATS_NODES, SERVICE_REPLICAS
from deploy.local.stack import SERVICES

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _cluster() -> tuple[dict[str, Any], dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = {name: spec for name, spec in compose["services"].items() if "cluster" in spec.get("profiles", [])}
    return compose, services


def test_the_cluster_profile_runs_three_nats_four_minio_servers_three_es_nodes_and_a_balancer() -> None:
    compose, cluster = _cluster()
    assert {f"nats-c{n}" for n in range(1, NATS_NODES + 1)} <= set(cluster)
    assert {f"minio-c{n}" for n in range(1, MINIO_SERVERS + 1)} <= set(cluster)
    assert {f"es-c{n}" for n in range(1, ES_NODES + 1)} <= set(cluster)
    assert "s3-balancer" in cluster
    nats_conf = compose["configs"]["nats_cluster_conf"]["content"]
    assert "sync_interval: always" in nats_conf
    assert all(f"nats-route://nats-c{n}:6222" in nats_conf for n in range(1, NATS_NODES + 1))
    for n in range(1, MINIO_SERVERS + 1):  # one erasure set over every server's drive
        assert cluster[f"minio-c{n}"]["command"][:2] == ["server", f"http://minio-c{{1...{MINIO_SERVERS}}}/data"]
    balancer = compose["configs"]["s3_balancer_cfg"]["content"]
    assert all(f"server minio-c{n} minio-c{n}:9000 check" in balancer for n in range(1, MINIO_SERVERS + 1))
    for n in range(1, ES_NODES + 1):
        env = cluster[f"es-c{n}"]["environment"]
        assert env["discovery.seed_hosts"] == ",".join(f"es-c{i}" for i in range(1, ES_NODES + 1))
        assert "-Xmx512m" in env["ES_JAVA_OPTS"]


def test_every_service_has_two_cluster_containers_that_reach_every_node() -> None:
    _, cluster = _cluster()
    for name in SERVICES:
        for replica in range(1, SERVICE_REPLICAS + 1):
            spec = cluster[f"{name}-c{replica}"]
            assert spec["command"] == ["python", "-m", f"services.{name}"]
            env = spec["environment"]
            assert all(f"@nats-c{n}:4222" in env["MAM_NATS_URL"] for n in range(1, NATS_NODES + 1))
            assert all(f"@es-c{n}:9200" in env["MAM_ES_URL"] for n in range(1, ES_NODES + 1))
            assert env["MAM_S3_ENDPOINT"] == "s3-balancer:9000"
