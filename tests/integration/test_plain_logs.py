"""Service logs written to a file are plain text: FastStream's loggers colour their level names
with ANSI escapes whatever the stream, so a real broker's start is logged into a file here."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from deploy.local.stack import LocalStack

pytestmark = pytest.mark.integration

# A service's logging as run_service sets it up, then a FastStream NATS broker that subscribes
# (logging "waiting for messages"), handles one message (logging its processing) and stops.
BROKER_RUN = """
import asyncio, sys
from faststream.nats import NatsBroker
from shared.service import configure_logging

configure_logging()

async def main() -> None:
    broker = NatsBroker(sys.argv[1])
    got = asyncio.Event()

    @broker.subscriber(sys.argv[2])
    async def on_message(body: str) -> None:
        got.set()

    await broker.start()
    await broker.publish("xin chào", sys.argv[2])
    await asyncio.wait_for(got.wait(), 20)
    await broker.stop()

asyncio.run(main())
"""


def test_faststream_logs_in_a_file_are_plain_text_in_the_services_format(stack: LocalStack, tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    subject = f"test.plain-logs.{uuid.uuid4().hex}"
    with log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-c", BROKER_RUN, stack.settings.resolved_nats_url, subject],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=False,
        )
    text = log.read_text("utf-8")
    assert done.returncode == 0, text
    assert "waiting for messages" in text and "Received" in text, text  # FastStream did log
    assert "\x1b[" not in text, text  # no ANSI colour codes
    assert " INFO faststream.access.nats: " in text, text  # the services' own format
