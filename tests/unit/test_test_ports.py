"""Parallel test stacks (one per developer or helper) never share a port."""

from tests.conftest import SAFE_PORT_OFFSETS, TEST_PORTS


def test_no_two_test_stacks_at_safe_offsets_share_a_port() -> None:
    used: dict[int, tuple[int, str]] = {}
    for offset in SAFE_PORT_OFFSETS:
        for name, base in TEST_PORTS.items():
            port = base + offset
            assert port not in used, f"{name}+{offset} = {port} is also {used[port]}"
            used[port] = (offset, name)


def test_test_stack_ports_stay_below_the_ephemeral_range() -> None:
    # Linux hands out 32768-60999 to outgoing connections; a server there may find its port taken.
    assert max(TEST_PORTS.values()) + max(SAFE_PORT_OFFSETS) < 32768
