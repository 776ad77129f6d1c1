"""The cluster profile's launcher, without servers: names, ports, order, settings."""

from deploy.local.cluster import ClusterPorts, ClusterStack, cluster_settings
from deploy.local.stack import SERVICES
from tests import conftest


def test_services_see_every_node_of_nats_and_elasticsearch_and_the_balancer_for_s3() -> None:
    s = cluster_settings(conftest.test_settings())
    ports = ClusterPorts(s.cluster_port_base)
    assert s.nats_servers == [f"nats://127.0.0.1:{ports.nats_client(s, n)}" for n in (1, 2, 3)]
    assert s.es_hosts == [f"http://127.0.0.1:{ports.es_http(s, n)}" for n in (1, 2, 3)]
    assert s.resolved_s3_endpoint == f"127.0.0.1:{s.minio_port}"


def test_every_service_gets_a_second_replica_on_its_own_port_and_both_search_replicas_project() -> None:
    cluster = ClusterStack(conftest.test_settings())
    names = cluster.service_names()
    assert names == [n for s in SERVICES for n in (s, f"{s}-2")]
    env = {name: cluster.service_spec(name).env for name in names}
    ports = {int(e[f"MAM_{name.split('-')[0].upper()}_PORT"]) for name, e in env.items()}
    assert len(ports) == len(names)  # HTTP replicas on distinct ports
    assert all(env[name].get("MAM_SEARCH_RUN_PROJECTOR", "true") == "true" for name in ("search", "search-2"))


def test_the_whole_cluster_stops_services_first_and_the_event_log_last() -> None:
    order = ClusterStack(conftest.test_settings()).stop_order()
    assert order[: 2 * len(SERVICES)] == list(reversed(ClusterStack.service_names()))
    assert order.index("elasticsearch-1") < order.index("s3-balancer") < order.index("minio-1")
    assert order[-3:] == ["nats-3", "nats-2", "nats-1"]
