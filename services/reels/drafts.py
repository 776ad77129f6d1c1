"""Drafting a reel from a search (or a collection): which assets, which seconds of each.

The candidates come from the search API, called with the producer's own
credentials, so a draft holds only what the producer may see (the search
service applies ``shared.policy.visibility_filter``); each one's facts are then
read from its events like any item's.

What "the most speech-like / non-black part" rests on, honestly: the archive
has no speech or voice-activity analysis yet (the tagger reads text, not
sound). The one per-asset fact about content that exists is the transcoder's
poster time (``asset.renditions_ready.poster_time_s``): the first frame it
found that is not black. A video's segment is the ``seconds`` around that
frame (clipped to the asset); without it, the middle of the clip. Audio starts
at 0; a photo is a still of ``seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.reels.assets import AssetFacts, load_assets
from shared.auth import Principal
from shared.events.models import AssetKind
from shared.events.reels import ReelItem, ReelProfile
from shared.fields import Line, Title
from shared.http import UserError
from shared.ports import EventLog

# Search pages read for one draft (100 hits each).
_MAX_PAGES = 10
_PAGE = 100
# Prefer moving pictures over stills over sound when one activity has several.
_KIND_RANK = {AssetKind.VIDEO: 0, AssetKind.PHOTO: 1, AssetKind.AUDIO: 2}


class DraftRule(StrEnum):
    ONE_PER_ACTIVITY = "one_per_activity"  # one segment per activity (or per day and type without one)
    EACH_ASSET = "each_asset"  # one segment per asset found


class DraftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Title
    subtitle: Line = ""
    profile: ReelProfile = ReelProfile.BROADCAST
    q: str = Field(default="", max_length=500)
    year: int | None = Field(default=None, ge=1945, le=2100)
    activity_type: list[str] = Field(default_factory=list, max_length=20)
    collection: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    rule: DraftRule = DraftRule.ONE_PER_ACTIVITY
    seconds: float = Field(default=10.0, gt=0, le=600)
    max_items: int = Field(default=50, ge=1, le=500)


def _search_params(body: DraftRequest) -> list[tuple[str, str | int | float | bool | None]]:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("q", body.q),
        ("size", str(_PAGE)),
        ("sort", "date"),
        ("order", "asc"),
    ]
    if body.year is not None:
        params += [("date_from", f"{body.year}-01-01"), ("date_to", f"{body.year}-12-31")]
    params += [("activity_type", code) for code in body.activity_type]
    params += [("kind", k.value) for k in AssetKind]
    if body.collection:
        params.append(("collection", body.collection))
    return params


async def search_hits(body: DraftRequest, search_url: str, authorization: str) -> list[dict[str, Any]]:
    """The hits of the draft's search, oldest first, following cursors for a few pages."""
    hits: list[dict[str, Any]] = []
    cursor: str | None = None
    async with httpx.AsyncClient(timeout=30.0) as client:
        for _ in range(_MAX_PAGES):
            params = _search_params(body) + ([("cursor", cursor)] if cursor else [])
            try:
                response = await client.get(
                    f"{search_url}/v1/search", params=params, headers={"Authorization": authorization}
                )
            except httpx.HTTPError as exc:
                raise UserError(
                    503,
                    "search_unavailable",
                    "Dịch vụ tìm kiếm không phản hồi; thử lại sau.",
                    "The search service does not answer; retry later.",
                ) from exc
            if response.status_code >= 500:
                raise UserError(
                    503, "search_unavailable", "Dịch vụ tìm kiếm đang lỗi.", "The search service is failing."
                )
            if response.status_code >= 400:  # the search's own bilingual refusal, passed on
                error = response.json().get("error", {})
                raise UserError(
                    response.status_code,
                    str(error.get("code", "search_refused")),
                    str(error.get("message", "Tìm kiếm bị từ chối.")),
                    str(error.get("message_en", "The search was refused.")),
                )
            page = response.json()
            hits += page.get("hits", [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return hits


def segment_for(asset: AssetFacts, seconds: float, max_still_s: float, caption: str) -> ReelItem | None:
    """The ``seconds`` of ``asset`` a draft takes (see the module doc); None if it has none."""
    if asset.failed_code is not None:
        return None
    if asset.kind is AssetKind.PHOTO:
        return ReelItem(asset_id=asset.asset_id, in_s=0.0, out_s=round(min(seconds, max_still_s), 3), caption=caption)
    duration = asset.duration_s
    if not duration or duration <= 0:
        return None
    length = min(seconds, duration)
    if asset.kind is AssetKind.AUDIO:
        start = 0.0
    else:
        centre = asset.poster_time_s if asset.poster_time_s is not None else duration / 2
        start = min(max(centre - length / 2, 0.0), duration - length)
    start = round(start, 3)
    end = round(min(start + length, duration), 3)
    # Rounding to milliseconds must not push out_s past the asset's end.
    while end > duration:
        end = round(end - 0.001, 3)
    if end <= start:
        return None
    return ReelItem(asset_id=asset.asset_id, in_s=start, out_s=end, caption=caption)


def _group(hit: dict[str, Any]) -> str:
    if hit.get("activity_id"):
        return f"activity:{hit['activity_id']}"
    day = str(hit.get("recorded_at") or "")[:10]
    return f"day:{day}:{hit.get('activity_type') or ''}" if day else f"asset:{hit.get('asset_id')}"


def choose(
    hits: Sequence[dict[str, Any]],
    assets: dict[str, AssetFacts | None],
    body: DraftRequest,
    max_still_s: float,
) -> list[ReelItem]:
    """One item per activity (or per asset), ordered by date, at most ``max_items``."""
    picked: dict[str, tuple[tuple[int, int], str, ReelItem]] = {}
    for rank, hit in enumerate(hits):
        asset = assets.get(str(hit.get("asset_id")))
        if asset is None:
            continue
        caption = (asset.title or "")[:200].strip()
        item = segment_for(asset, body.seconds, max_still_s, caption)
        if item is None:
            continue
        group = _group(hit) if body.rule is DraftRule.ONE_PER_ACTIVITY else f"asset:{asset.asset_id}"
        preference = (_KIND_RANK[asset.kind], rank)
        when = str(hit.get("recorded_at") or "9999")
        if group not in picked or preference < picked[group][0]:
            picked[group] = (preference, when, item)
    ordered = sorted(picked.values(), key=lambda p: (p[1], p[0][1]))
    return [item for _, _, item in ordered][: body.max_items]


async def draft_items(
    body: DraftRequest, search_url: str, authorization: str, events: EventLog, who: Principal, max_still_s: float
) -> tuple[list[ReelItem], dict[str, Any]]:
    """The draft's items, and notes for the producer on how they were chosen."""
    hits = await search_hits(body, search_url, authorization)
    assets = await load_assets(events, (str(h.get("asset_id")) for h in hits if h.get("asset_id")))
    items = choose(hits, assets, body, max_still_s)
    notes = {
        "rule": body.rule.value,
        "hits": len(hits),
        "segment_basis": "poster_time_s (the transcoder's first non-black frame); no speech analysis exists yet",
    }
    return items, notes
