"""Event store over NATS JetStream: one stream holds every domain event.

The stream is the source of truth, so it is file-backed, keeps events forever
and denies deletes and purges. Appends carry ``Nats-Msg-Id`` = event id (the
server drops a duplicate inside the dedup window) and, for commands that must
see current state, an expected last sequence for the aggregate's subjects
(optimistic concurrency).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from shared.events.envelope import EventEnvelope
from shared.nats_liveness import liveness
from shared.ports import AppendResult, ConcurrencyConflict, StoredEvent
from shared.settings import Settings, split_urls
from shared.subjects import ALL_EVENTS, aggregate_filter

__all__ = ["AppendResult", "ConcurrencyConflict", "EventStore", "StoredEvent"]

log = logging.getLogger("mam.eventstore")
_READY_TIMEOUT_S = 2.0
_READER_IDLE_S = 10.0
# Times in a row a reader whose consumer went away is given a new one before the read fails.
_READER_REPLACEMENTS = 3


async def _connect(url: str) -> NatsClient:
    """``url``: one server, or a cluster's nodes comma-separated (the client fails over among them)."""
    return await nats.connect(split_urls(url), name="mam-event-store", max_reconnect_attempts=-1, **liveness())


# JetStream's error code for a failed expected-last-sequence check.
_WRONG_LAST_SEQUENCE = 10071
_HDR_MSG_ID = "Nats-Msg-Id"
_HDR_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
# Lets the expected sequence apply to a wildcard (all events of one aggregate)
# instead of the exact subject (NATS server ≥ 2.11).
_HDR_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"


# How long one pull request may wait on the server for its batch (a batch the stream holds
# comes at once: this only bounds a request the server never answers).
_PULL_EXPIRES_S = 10.0


def stream_sequence(reply: str) -> int:
    """The stream sequence in a JetStream delivery's reply subject: ``$JS.ACK.<stream>.<consumer>.
    <delivered>.<stream seq>.<consumer seq>.<time>.<pending>``, or the newer form with a domain
    and an account hash after ``$JS.ACK`` and a random token at the end."""
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class _Pull:
    """Pull requests on one inbox: each asks a consumer for a batch and gathers what comes."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._sub: Subscription | None = None
        self._inbox = ""
        self._got: list[tuple[int, str, bytes]] = []
        self._want = 0
        self._status: str | None = None
        self._done = asyncio.Event()

    async def open(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)

    async def reopen(self) -> None:
        """A fresh inbox: a late message of the abandoned request must not join the next batch."""
        await self.close()
        await self.open()

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_message(self, msg: Msg) -> None:
        if not msg.reply:  # a status (no messages, request expired, consumer deleted): no event
            if len(self._got) < self._want:
                self._status = (msg.headers or {}).get("Status", "?") + " " + (msg.headers or {}).get("Description", "")
            self._done.set()
            return
        self._got.append((stream_sequence(msg.reply), msg.subject, msg.data))
        if len(self._got) >= self._want:
            self._done.set()

    async def next_batch(self, stream: str, consumer: str, count: int) -> list[tuple[int, str, bytes]]:
        """Up to ``count`` events from ``consumer`` (it holds at least that many)."""
        self._got, self._want, self._status = [], count, None
        self._done.clear()
        request = orjson.dumps({"batch": count, "expires": int(_PULL_EXPIRES_S * 1e9)})
        await self._nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", request, reply=self._inbox)
        await asyncio.wait_for(self._done.wait(), _PULL_EXPIRES_S + 5.0)
        got = self._got
        if not got and self._status is not None:
            raise ServiceUnavailableError(description=f"stream read answered {self._status.strip()}")
        return got


class EventStore:
    """Append and read domain events in one JetStream stream."""

    def __init__(self, nc: NatsClient, stream: str, dedup_window_s: float) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self.stream = stream
        self._dedup_window_s = dedup_window_s
        self._url: str | None = None  # known when made by connect(): a closed client is then replaced
        self._reconnecting = asyncio.Lock()
        self._closed_by_us = False

    @classmethod
    async def connect(
        cls, url: str, stream: str, dedup_window_s: float = 3600.0, *, configure: bool = True
    ) -> EventStore:
        """Connect; with ``configure`` (services) also create the stream or bring it to this
        config. A tool that only reads (the index rebuild) leaves the stream as it is."""
        store = cls(await _connect(url), stream, dedup_window_s)
        store._url = url
        if configure:
            await store.ensure_stream()
        return store

    @classmethod
    async def from_settings(cls, settings: Settings) -> EventStore:
        """The event store every service wires: the configured server and stream."""
        return await cls.connect(settings.resolved_nats_url, settings.event_stream, settings.event_dedup_window_s)

    async def close(self) -> None:
        self._closed_by_us = True
        await self._nc.drain()

    async def _jetstream(self) -> JetStreamContext:
        """The JetStream context of a live client.

        nats-py closes its client for good when the server answers a protocol
        error (anything but a stale connection), and the client then refuses
        every call. One such request must not take the service down until a
        restart: a client closed under us is replaced here.
        """
        if self._nc.is_closed and self._url is not None and not self._closed_by_us:
            async with self._reconnecting:
                if self._nc.is_closed:
                    log.warning("NATS connection was closed (%s); reconnecting", self._nc.last_error)
                    self._nc = await _connect(self._url)
                    self._js = self._nc.jetstream()
        return self._js

    async def jetstream(self) -> JetStreamContext:
        """The live JetStream context, for the KV buckets a service reads (API keys)."""
        return await self._jetstream()

    async def ready(self) -> bool:
        """The server answers and the stream exists (for readiness checks)."""
        try:
            await asyncio.wait_for((await self._jetstream()).stream_info(self.stream), timeout=_READY_TIMEOUT_S)
        except Exception:
            return False
        return True

    def stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.stream,
            description="HĐND media archive: every domain event (source of truth)",
            subjects=[ALL_EVENTS],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            max_age=0,  # keep forever
            deny_delete=True,
            deny_purge=True,
            duplicate_window=self._dedup_window_s,
            allow_direct=True,
        )

    async def ensure_stream(self) -> None:
        """Create the stream, or bring an existing one to the current config."""
        config = self.stream_config()
        try:
            existing = await (await self._jetstream()).stream_info(self.stream)
        except NotFoundError:
            await (await self._jetstream()).add_stream(config)
            return
        # A cluster's operator (or `mam up --cluster`) sets the replica count; a service
        # bringing the config up to date must not scale a replicated stream back to one.
        config.num_replicas = existing.config.num_replicas
        await (await self._jetstream()).update_stream(config)

    async def append(
        self, event: EventEnvelope, expected_last_sequence: int | None = None, *, guard: str | None = None
    ) -> AppendResult:
        """Append one event.

        ``expected_last_sequence`` is the stream sequence of the aggregate's
        latest event as the caller saw it (0 = the aggregate must not exist yet),
        or, with ``guard``, of the latest event matching that subject filter
        (a command whose decision read several aggregates). A mismatch raises
        :class:`ConcurrencyConflict`.
        """
        headers = {_HDR_MSG_ID: event.event_id}
        agg_filter = guard or aggregate_filter(event.aggregate, event.aggregate_id)
        if expected_last_sequence is not None:
            headers[_HDR_EXPECTED_LAST_SUBJECT_SEQ] = str(expected_last_sequence)
            headers[_HDR_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT] = agg_filter
        try:
            js = await self._jetstream()
            ack = await js.publish(event.subject, event.to_bytes(), stream=self.stream, headers=headers)
        except APIError as exc:
            if exc.err_code != _WRONG_LAST_SEQUENCE:
                raise
            # The server checks the expected sequence before deduplicating, so a
            # retry of an append that already landed looks like a conflict: it
            # is a duplicate if this very event is in the aggregate's history.
            for stored in await self.history(event.aggregate, event.aggregate_id):
                if stored.envelope.event_id == event.event_id:
                    return AppendResult(sequence=stored.sequence, duplicate=True)
            raise ConcurrencyConflict(agg_filter, expected_last_sequence or 0, str(exc.description)) from exc
        return AppendResult(sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def read_batches(
        self, subject_filter: str, start_sequence: int = 1, batch: int = 256
    ) -> AsyncGenerator[list[StoredEvent], None]:
        """Events matching ``subject_filter`` from stream sequence ``start_sequence``
        to the end of the stream as of the call, in stream order, in lists of at
        most ``batch`` (one server round trip each: bulk readers such as the index
        rebuild use large batches).

        Uses an ephemeral, unacknowledged, in-memory pull consumer, deleted when
        the read ends: the server allows a stream a bounded number of consumers
        (1000 by default since NATS 2.15), and a busy service reads histories far
        faster than an idle ephemeral consumer would expire.
        """
        async with aclosing(self.read_raw_batches(subject_filter, start_sequence, batch)) as batches:
            async for raw in batches:
                yield [StoredEvent(seq, subject, EventEnvelope.from_bytes(data)) for seq, subject, data in raw]

    async def read_raw_batches(
        self, subject_filter: str, start_sequence: int = 1, batch: int = 256
    ) -> AsyncGenerator[list[tuple[int, str, bytes]], None]:
        """:meth:`read_batches` as (sequence, subject, bytes) triples, the envelopes left unparsed.

        The pull loop is our own rather than nats-py's ``fetch``, which waits for each
        message with a timeout of its own (a task per message: most of a replay's read
        cost): one pull request per batch, the messages gathered by a subscription
        callback, the stream sequence taken from the reply subject.
        """
        js = await self._jetstream()
        next_start = max(1, start_sequence)
        # The stream leader's word on the last matching event: the reader's consumer may sit on
        # a replica still catching up (a restarted node; seen right after a leader was killed),
        # whose count ends the read early, and an aggregate's history would come back short.
        last_wanted = await self.last_sequence(subject_filter)
        name, remaining = await self._reader(js, subject_filter, next_start)
        replaced = 0
        behind = 0
        pull = _Pull(self._nc)
        await pull.open()
        try:
            while remaining > 0 or next_start <= last_wanted:
                if remaining <= 0:  # the reader ended before the leader's last event: a replica behind
                    behind += 1
                    if behind > _READER_REPLACEMENTS:
                        raise ServiceUnavailableError(
                            description=f"stream replica behind: {subject_filter} read to {next_start - 1}, "
                            f"the leader has {last_wanted}"
                        )
                    log.info("stream reader %s ended at %d before %d; reading on", name, next_start - 1, last_wanted)
                    await asyncio.sleep(0.1 * 2**behind)
                    await self._drop_reader(js, name)
                    name, remaining = await self._reader(js, subject_filter, next_start)
                    continue
                try:
                    raw = await pull.next_batch(self.stream, name, min(batch, remaining))
                except (TimeoutError, ServiceUnavailableError, NoRespondersError, NotFoundError):
                    # The consumer is gone: a reader whose caller kept it waiting past the
                    # idle threshold (a rebuild on a busy machine), or a server restart.
                    # Reading goes on from the next event, up to the end as of the call.
                    replaced += 1
                    if replaced > _READER_REPLACEMENTS:
                        raise
                    log.info("stream reader %s went away at sequence %d; reading on", name, next_start)
                    await self._drop_reader(js, name)
                    await pull.reopen()
                    name, _ = await self._reader(js, subject_filter, next_start)
                    continue
                replaced = 0
                remaining -= len(raw)
                if raw:
                    next_start = raw[-1][0] + 1
                yield raw
        finally:
            await pull.close()
            await self._drop_reader(js, name)

    async def _reader(self, js: JetStreamContext, subject_filter: str, start_sequence: int) -> tuple[str, int]:
        """An ephemeral pull consumer from ``start_sequence``: (name, events it has)."""
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_sequence,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=_READER_IDLE_S,  # a backstop: a crashed reader's consumer goes soon
            mem_storage=True,
            filter_subject=subject_filter,
        )
        info = await js.add_consumer(self.stream, config=config)
        return str(info.name), info.num_pending or 0

    async def _drop_reader(self, js: JetStreamContext, name: str) -> None:
        with contextlib.suppress(NotFoundError, NoRespondersError, ServiceUnavailableError, asyncio.TimeoutError):
            await js.delete_consumer(self.stream, name)

    async def read_subjects(
        self, subject_filter: str, batch: int = 256, start_sequence: int = 1
    ) -> AsyncIterator[StoredEvent]:
        """Every event matching ``subject_filter`` (from ``start_sequence``), in stream order."""
        async with aclosing(self.read_batches(subject_filter, start_sequence, batch)) as batches:
            async for chunk in batches:
                for event in chunk:
                    yield event

    async def history(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        """One aggregate's events, oldest first (empty if it does not exist)."""
        return [event async for event in self.read_subjects(aggregate_filter(aggregate, aggregate_id))]

    async def next_sequence(self, subject_filter: str, after: int) -> int:
        """The sequence of the first event matching ``subject_filter`` after ``after`` (0: none):
        one server round trip, however long the stream (the server's next-by-subject lookup)."""
        js = await self._jetstream()
        try:
            return int((await js.get_msg(self.stream, seq=after + 1, subject=subject_filter, next=True)).seq or 0)
        except NotFoundError:
            return 0

    async def last_sequence(self, subject_filter: str | None = None) -> int:
        """The stream's last sequence, or that of the latest event matching ``subject_filter`` (0: none)."""
        js = await self._jetstream()
        if subject_filter is None:
            return int((await js.stream_info(self.stream)).state.last_seq)
        try:
            return int((await js.get_last_msg(self.stream, subject_filter)).seq or 0)
        except NotFoundError:
            return 0
