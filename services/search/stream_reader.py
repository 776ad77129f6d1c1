"""A rebuild's read of the event stream, in a process of its own.

A full replay spends about a fifth of its CPU in nats-py taking messages off the
wire (its parser, a message object and parsed headers per event: ~11 µs an event,
measured). The fold that follows is the other four fifths, in one Python process,
and is the replay's bottleneck. On a machine with a second core that part of the
work can run beside the fold instead of before it: this module's child process
pulls the raw events (:meth:`EventStore.read_raw_batches`, the same reader) and
hands each batch over a pipe, pickled as (sequence, subject, bytes) triples; the
rebuild only decodes and folds them. The events and their order are exactly the
in-process read's.

The child is this module run with ``python -m``: it reads its job (servers, stream,
filter, first sequence, batch) as one JSON line on stdin (never argv: server URLs
may carry credentials) and writes length-prefixed frames to stdout, a zero length
at the end. It reports a failure on stderr and exits non-zero; the parent then
raises :class:`StreamReaderError` with that reason. When the parent stops reading
(the rebuild failed or was cancelled) the child is killed; when the parent dies,
the child's next write fails and it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import struct
import sys
from collections.abc import AsyncGenerator

from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.ports import StoredEvent

_LENGTH = struct.Struct(">Q")
# What the parent keeps of the child's stderr for its error message.
_REASON_CHARS = 2000
# How long a child that wrote its last frame has to exit before it is killed.
_EXIT_WAIT_S = 10.0


class StreamReaderError(RuntimeError):
    """The reading process failed (its reason is in the message) or broke its protocol."""


class ChildStreamReader:
    """One read of the stream by a child process (see the module doc): :meth:`start` it
    early (the child takes half a second to start, which the caller can spend on other
    work), take its :meth:`batches`, and always :meth:`close` it."""

    def __init__(self, child: asyncio.subprocess.Process, errors: asyncio.Future[bytes]) -> None:
        self._child = child
        self._errors = errors

    @classmethod
    async def start(
        cls, nats_url: str, stream: str, subject_filter: str, start_sequence: int = 1, batch: int = 1000
    ) -> ChildStreamReader:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None and child.stderr is not None
        # Read all along: a child writing a full stderr pipe would stall.
        reader = cls(child, asyncio.ensure_future(child.stderr.read()))
        try:
            job = {
                "nats_url": nats_url,
                "stream": stream,
                "subject_filter": subject_filter,
                "start_sequence": start_sequence,
                "batch": batch,
            }
            child.stdin.write(json.dumps(job).encode() + b"\n")
            with contextlib.suppress(ConnectionError):  # it died at once: batches() says why
                await child.stdin.drain()
            child.stdin.close()
        except BaseException:
            await reader.close()
            raise
        return reader

    async def batches(self) -> AsyncGenerator[list[StoredEvent], None]:
        """What :meth:`EventStore.read_batches` yields for the job, in the same order."""
        stdout = self._child.stdout
        assert stdout is not None
        while True:
            try:
                (length,) = _LENGTH.unpack(await stdout.readexactly(_LENGTH.size))
                if not length:
                    break
                raw: list[tuple[int, str, bytes]] = pickle.loads(await stdout.readexactly(length))
            except asyncio.IncompleteReadError:
                raise await self._failure("the stream reader stopped") from None
            yield [StoredEvent(seq, subject, EventEnvelope.from_bytes(data)) for seq, subject, data in raw]
        with contextlib.suppress(TimeoutError):  # every event is here: a slow exit is no failure
            await asyncio.wait_for(self._child.wait(), _EXIT_WAIT_S)
        if self._child.returncode:
            raise await self._failure("the stream reader failed after its last batch")

    async def close(self) -> None:
        """Stop the child if it still runs, and reap it."""
        if self._child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._child.kill()
            await self._child.wait()
        if not self._errors.done():
            self._errors.cancel()
        await asyncio.gather(self._errors, return_exceptions=True)

    async def _failure(self, what: str) -> StreamReaderError:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._child.wait(), _EXIT_WAIT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._errors), _EXIT_WAIT_S)
        said = self._errors.result() if self._errors.done() and not self._errors.cancelled() else b""
        reason = said.decode("utf-8", "replace").strip()[-_REASON_CHARS:]
        return StreamReaderError(f"{what} (exit {self._child.returncode}): {reason or 'no reason given'}")


async def _serve(job: dict[str, object]) -> None:
    """The child: every batch of the job's read, as frames on stdout."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    out = asyncio.StreamWriter(transport, protocol, None, loop)
    store = await EventStore.connect(str(job["nats_url"]), str(job["stream"]), configure=False)
    try:
        async for raw in store.read_raw_batches(
            str(job["subject_filter"]),
            int(str(job["start_sequence"])),
            int(str(job["batch"])),
        ):
            blob = pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL)
            out.write(_LENGTH.pack(len(blob)))
            out.write(blob)
            await out.drain()  # the parent folds slower than this reads: wait for it, loop still running
        # The last drain waits for every byte to reach the pipe: nothing is left in a buffer
        # that closing the loop would drop.
        transport.set_write_buffer_limits(high=0)
        out.write(_LENGTH.pack(0))
        await out.drain()
    finally:
        await store.close()
        out.close()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        job = json.loads(sys.stdin.readline())
        asyncio.run(_serve(job))
    except Exception as exc:  # the parent reports it: one line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
