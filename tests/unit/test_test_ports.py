"""Parallel test stacks (one per developer or helper) never share a port."""

from deploy.local.cluster import ClusterPorts
from deploy.local.stack import SERVICES
from tests.conftest import SAFE_PORT_OFFSETS, TEST_PORTS, TEST_REPLICA_PORT_SHIFT


def _stack_ports() -> dict[str, int]:
    """Every port one test stack may listen on, the cluster profile's included, at offset 0."""
    ports = {name: base for name, base in TEST_PORTS.items() if name != "cluster_port_base"}
    for i, port in enumerate(ClusterPorts(TEST_PORTS["cluster_port_base"]).all()):
        ports[f"cluster block #{i}"] = port
    for service in SERVICES:
        ports[f"{service} replica 2"] = TEST_PORTS[f"{service}_port"] + TEST_REPLICA_PORT_SHIFT
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
