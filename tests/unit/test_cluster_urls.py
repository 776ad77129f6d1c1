"""Every NATS client of the services takes the list of a cluster's nodes, never the comma string."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ONE_SERVER = (r"NatsBroker\(\s*settings\.resolved_nats_url", r"nats\.connect\(\s*settings\.resolved_nats_url")


def test_no_service_hands_the_comma_separated_nats_url_to_a_client_as_one_server() -> None:
    offenders = []
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py"), *ROOT.glob("deploy/**/*.py")]:
        text = path.read_text()
        for pattern in ONE_SERVER:
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert not offenders, f"use settings.nats_servers (a list) so a cluster's other nodes are tried: {offenders}"
