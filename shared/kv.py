"""NATS KV buckets: mutable state that does not belong in the event log (accounts, secrets).

A bucket is bound if it exists and created otherwise, so the first process that
needs it (the accounts service, ``mam user add`` on a fresh install, a service
verifying API keys) makes it; an existing bucket keeps its configuration, except
that one with fewer replicas than asked (``settings.nats_replicas``: 3 on the
cluster) is scaled up — a bucket made while a cluster was one node, or by a
process of the single-node profile, would otherwise stay on one server.
Updates are optimistic: ``update(key, value, last=revision)`` fails with
:class:`KeyWrongLastSequenceError` when someone else wrote the key meanwhile.
"""

from __future__ import annotations

from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

__all__ = ["KeyNotFoundError", "KeyValue", "KeyWrongLastSequenceError", "open_bucket"]


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


async def _at_least(js: JetStreamContext, bucket: KeyValue, replicas: int) -> None:
    info = (await bucket.status()).stream_info
    if (info.config.num_replicas or 1) < replicas:
        # Two replicas of a service scaling the same bucket at once both ask for the same config.
        await js.update_stream(info.config.evolve(num_replicas=replicas))
