"""What a reel needs to know about an asset, folded from the asset's own events.

Read from the event log (``asset.ingested``, ``asset.probed``,
``asset.renditions_ready``, ``asset.processing_failed`` and the publishing
events), never from another service's code or database: kind, duration, where
the original and the proxy are, whether processing failed, who may see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.events.envelope import EventEnvelope
from shared.events.media import AssetProbedV1, AssetProcessingFailedV1, AssetRenditionsReadyV1, RenditionName
from shared.events.models import AssetIngestedV1, AssetKind
from shared.policy import Visibility
from shared.ports import EventLog
from shared.publication import fold_visibility

# Asset histories loaded at once while checking a reel's items.
_ASSET_LOADS = 16


@dataclass(frozen=True)
class StoredMedia:
    bucket: str
    key: str


@dataclass(frozen=True)
class AssetFacts:
    asset_id: str
    kind: AssetKind
    sha256: str
    original: StoredMedia
    title: str
    recorded_at: datetime | None
    duration_s: float | None
    visibility: Visibility
    probed: bool = False
    proxy: StoredMedia | None = None  # video: the proxy; audio: the AAC rendition
    # The transcoder's representative frame: the first non-black one it found (poster).
    poster_time_s: float | None = None
    failed_code: str | None = None
    failed_reason: tuple[str, str] | None = None


def fold_asset_facts(asset_id: str, history: Iterable[EventEnvelope]) -> AssetFacts | None:
    """The facts of one asset (None: no such asset, i.e. no ``asset.ingested``)."""
    facts: AssetFacts | None = None
    visibility: Visibility | None = None
    for event in history:
        visibility = fold_visibility(visibility, event)
        payload = event.typed_payload()
        if isinstance(payload, AssetIngestedV1):
            facts = AssetFacts(
                asset_id=asset_id,
                kind=payload.kind,
                sha256=payload.sha256,
                original=StoredMedia(payload.bucket, payload.object_key),
                title=payload.title,
                recorded_at=payload.recorded_at,
                duration_s=payload.duration_s,
                visibility=visibility or Visibility(uploaded_by=event.actor),
            )
        elif facts is None:
            continue
        elif isinstance(payload, AssetProbedV1):
            facts = replace(facts, probed=True, duration_s=payload.duration_s, kind=payload.kind)
        elif isinstance(payload, AssetRenditionsReadyV1):
            wanted = {RenditionName.PROXY, RenditionName.AUDIO}
            proxy = next((r for r in payload.renditions if r.name in wanted), None)
            facts = replace(
                facts,
                proxy=StoredMedia(proxy.bucket, proxy.key) if proxy else None,
                poster_time_s=payload.poster_time_s,
                failed_code=None,
                failed_reason=None,
            )
        elif isinstance(payload, AssetProcessingFailedV1):
            facts = replace(facts, failed_code=payload.code, failed_reason=(payload.reason, payload.reason_en))
        if facts is not None and visibility is not None:
            facts = replace(facts, visibility=visibility)
    return facts


async def load_assets(events: EventLog, asset_ids: Iterable[str]) -> dict[str, AssetFacts | None]:
    """The facts of each named asset, from its own events (a bounded number at once)."""
    gate = asyncio.Semaphore(_ASSET_LOADS)

    async def one(asset_id: str) -> tuple[str, AssetFacts | None]:
        async with gate:
            history = await events.history("asset", asset_id)
        return asset_id, fold_asset_facts(asset_id, (s.envelope for s in history))

    return dict(await asyncio.gather(*(one(a) for a in dict.fromkeys(asset_ids))))
