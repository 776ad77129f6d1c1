"""NATS KV buckets: mutable state that does not belong in the event log (accounts, secrets).

A bucket is bound if it exists and created otherwise, so the first process that
needs it (the accounts service, ``mam user add`` on a fresh install, a service
verifying API keys) makes it; an existing bucket keeps its configuration, except
that one with fewer replicas than asked (``settings.nats_replicas``: 3 on the
cluster) is scaled up — a bucket made while a cluster was one node, or by a
process of the single-node profile, would otherwise stay on one server.
Updates are optimistic: ``update(key, value, last=revision)`` fails with
:class:`KeyWrongLastSequenceError` when someone else wrote the key meanwhile, and so does
:func:`create_key` (never nats-py's ``create`` directly) when the key exists.
"""

from __future__ import annotations

import contextlib
import time

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KV_MARKER_REASON, KV_OP, KeyValue

__all__ = ["KeyNotFoundError", "KeyValue", "KeyWrongLastSequenceError", "latest_values", "open_bucket"]

_READ_BATCH = 256


async def open_bucket(
    js: JetStreamContext, name: str, description: str, *, ttl_s: float | None = None, replicas: int = 1
) -> KeyValue:
    """Bind the bucket ``name``, creating it (file storage, latest value only, on ``replicas``
    servers) if it is missing; an existing one on fewer servers is scaled to ``replicas``."""
    try:
        bucket = await js.key_value(name)
    except (BucketNotFoundError, NotFoundError):
        pass
    else:
        await _at_least(js, bucket, replicas)
        return bucket
    config = api.KeyValueConfig(
        bucket=name, description=description, history=1, storage=api.StorageType.FILE, replicas=replicas
    )
    if ttl_s:
        config = config.evolve(ttl=ttl_s)
    return await js.create_key_value(config)


async def create_key(bucket: KeyValue, key: str, value: bytes) -> int:
    """``bucket.create``: the key's first revision, :class:`KeyWrongLastSequenceError` if it exists.

    nats-py's create, refused because the key has a revision already, reads the key back to
    tell a deleted key (which it then writes over) from a live one. On a cluster that read may
    be answered by a replica that has not seen the winning write yet: "not found", raised as
    :class:`KeyNotFoundError` from a race the caller lost, which it handles as any lost race
    (seen as a 500 on uploads racing for one user's quota key while a NATS node was frozen)."""
    try:
        return int(await bucket.create(key, value))
    except KeyNotFoundError as exc:
        raise KeyWrongLastSequenceError(description=f"{key} was created meanwhile") from exc


async def _at_least(js: JetStreamContext, bucket: KeyValue, replicas: int) -> None:
    info = (await bucket.status()).stream_info
    if (info.config.num_replicas or 1) < replicas:
        # Two replicas of a service scaling the same bucket at once both ask for the same config.
        await js.update_stream(info.config.evolve(num_replicas=replicas))


async def latest_values(bucket: KeyValue, *, deadline_s: float = 30.0) -> dict[str, bytes]:
    """Every live key of ``bucket`` with its latest value, read in one pass.

    Not nats-py's ``keys()`` / ``watchall()``: their "all delivered" mark comes from
    comparing the consumer's pending count with what its callback has handled so far,
    and when the server has already pushed every value but the callback has not run,
    the mark comes first and the listing is short (a just-created upload missing from
    ``mam uploads`` in a fresh-clone run). A pull consumer delivers only what is asked
    for, so its pending count is exact: read until a value says nothing is left."""
    # nats-py's KeyValue keeps its JetStream context private; the names below are the
    # KV convention every NATS client uses (stream KV_<bucket>, subjects $KV.<bucket>.<key>).
    js: JetStreamContext = bucket._js
    name = bucket._name
    prefix = f"$KV.{name}."
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
        num_replicas=1,
    )
    sub = await js.pull_subscribe(f"{prefix}>", stream=f"KV_{name}", config=config)
    found: dict[str, bytes] = {}
    give_up = time.monotonic() + deadline_s
    try:
        info = await sub.consumer_info()
        pending = info.num_pending or 0
        while pending > 0:
            if time.monotonic() > give_up:
                raise TimeoutError(f"KV bucket {name}: {pending} values still unread after {deadline_s:.0f} s")
            try:
                messages = await sub.fetch(min(pending, _READ_BATCH), timeout=2)
            except NatsTimeoutError:
                pending = (await sub.consumer_info()).num_pending or 0  # keys purged meanwhile lower it
                continue
            for msg in messages:
                key = msg.subject[len(prefix) :]
                headers = msg.headers or {}
                if headers.get(KV_OP) or headers.get(KV_MARKER_REASON):  # a delete, purge or expiry
                    found.pop(key, None)
                else:
                    found[key] = msg.data
                pending = msg.metadata.num_pending or 0
    finally:
        # The consumer would also go away by itself after a minute without reads.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
            await js.delete_consumer(f"KV_{name}", info.name)
    return found
