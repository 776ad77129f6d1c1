"""Parallel test stacks (one per developer or helper) never share a port — nor do the
servers a bench starts beside its stack (tests/bench/ports.py), nor the soak's cluster."""

import re
from pathlib import Path

import pytest

from deploy.local.cluster import ClusterPorts
from deploy.local.stack import SERVICES
from shared.settings import Settings
from tests.bench.ports import bench_stacks
from tests.conftest import SAFE_PORT_OFFSETS, TEST_PORTS, TEST_REPLICA_PORT_SHIFT
from tests.conftest import test_settings as stack_settings
from tests.faults.chaos import cluster_under_test

BENCHES = Path(__file__).resolve().parents[1] / "bench"


def _stack_ports() -> dict[str, int]:
    """Every port one test stack may listen on, the cluster profile's included, at offset 0."""
    ports = {name: base for name, base in TEST_PORTS.items() if name != "cluster_port_base"}
    for i, port in enumerate(ClusterPorts(TEST_PORTS["cluster_port_base"]).all()):
        ports[f"cluster block #{i}"] = port
    for service in SERVICES:
        ports[f"{service} replica 2"] = TEST_PORTS[f"{service}_port"] + TEST_REPLICA_PORT_SHIFT
    return ports


def _port_settings(settings: Settings) -> dict[str, int]:
    return {name: value for name, value in settings.model_dump().items() if name.endswith("_port")}


def _at_offset(monkeypatch: pytest.MonkeyPatch, offset: int) -> Settings:
    monkeypatch.setenv("MAM_TEST_PORT_OFFSET", str(offset))
    return stack_settings()


def _bench_ports(stack: Settings) -> dict[int, str]:
    """The ports the benches' own servers take beside ``stack``: the ones they move."""
    ports: dict[int, str] = {}
    stack_ports = _port_settings(stack)
    for bench, settings in bench_stacks(stack).items():
        for name, port in _port_settings(settings).items():
            if port != stack_ports[name]:
                ports[port] = f"bench {bench} {name}"
    return ports


def test_no_two_test_stacks_at_safe_offsets_share_a_port() -> None:
    used: dict[int, tuple[int, str]] = {}
    for offset in SAFE_PORT_OFFSETS:
        for name, base in _stack_ports().items():
            port = base + offset
            assert port not in used, f"{name}+{offset} = {port} is also {used[port]}"
            used[port] = (offset, name)


def test_test_stack_ports_stay_below_the_ephemeral_range() -> None:
    # Linux hands out 32768-60999 to outgoing connections; a server there may find its port taken.
    assert max(_stack_ports().values()) + max(SAFE_PORT_OFFSETS) < 32768
    assert min(_stack_ports().values()) > 1024


def test_no_bench_server_takes_a_port_of_any_stack_or_of_a_bench_at_another_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stacks = {
        base + offset: f"{name}+{offset}" for offset in SAFE_PORT_OFFSETS for name, base in _stack_ports().items()
    }
    benches: dict[int, str] = {}
    for offset in SAFE_PORT_OFFSETS:
        ports = _bench_ports(_at_offset(monkeypatch, offset))
        assert ports, "the benches start servers of their own"
        for port, what in ports.items():
            where = f"{what} at offset {offset} = {port}"
            assert port not in stacks, f"{where} is also the test stack's {stacks[port]}"
            assert port not in benches, f"{where} is also {benches[port]}"
            assert 1024 < port < 32768, where
        benches.update({port: f"{what} at offset {offset}" for port, what in ports.items()})


def test_every_bench_moves_its_ports_through_the_shared_table() -> None:
    """A port shift written in a bench itself would escape the check above."""
    for path in sorted(BENCHES.glob("bench_*.py")):
        shifted = re.findall(r"_port\s*\+\s*\d+", path.read_text("utf-8"))
        assert not shifted, f"{path.name}: {shifted} (use tests/bench/ports.py)"


def test_the_soaks_cluster_listens_only_on_its_test_stacks_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for offset in SAFE_PORT_OFFSETS:
        _at_offset(monkeypatch, offset)
        cluster = cluster_under_test()  # what `make soak` and the fault suite start
        s = cluster.settings
        node_one = {s.nats_port, s.nats_monitor_port, s.es_port, s.es_transport_port, s.minio_port}
        replicas = {
            getattr(s, f"{name}_port") + s.cluster_replica_port_shift * r for name in SERVICES for r in range(2)
        }
        listening = set(ClusterPorts(s.cluster_port_base).all()) | node_one | replicas
        allowed = {base + offset for base in _stack_ports().values()}
        assert listening <= allowed, (offset, sorted(listening - allowed))
