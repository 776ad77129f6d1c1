"""NATS KV buckets: mutable state that does not belong in the event log (accounts, secrets).

A bucket is bound if it exists and created otherwise, so the first process that
needs it (the accounts service, ``mam user add`` on a fresh install, a service
verifying API keys) makes it; an existing bucket keeps its configuration.
Updates are optimistic: ``update(key, value, last=revision)`` fails with
:class:`KeyWrongLastSequenceError` when someone else wrote the key meanwhile.
"""

from __future__ import annotations

from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

__all__ = ["KeyNotFoundError", "KeyValue", "KeyWrongLastSequenceError", "open_bucket"]


async def open_bucket(js: JetStreamContext, name: str, description: str, *, ttl_s: float | None = None) -> KeyValue:
    """Bind the bucket ``name``, creating it (file storage, latest value only) if it is missing."""
    try:
        return await js.key_value(name)
    except (BucketNotFoundError, NotFoundError):
        pass
    config = api.KeyValueConfig(bucket=name, description=description, history=1, storage=api.StorageType.FILE)
    if ttl_s:
        config = config.evolve(ttl=ttl_s)
    return await js.create_key_value(config)
