"""reels HTTP API: thin handlers. Commands load the reel's history (and the facts of
the assets it names), decide purely (``decide.py``) and append with the expected
sequence (``shared.commands.run_command``); queries fold the reel's events and
read the renderer's progress from NATS KV."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from faststream.nats import NatsBroker
from pydantic import BaseModel, ConfigDict, Field

from services.reels import decide
from services.reels.assets import load_assets
from services.reels.drafts import DraftRequest, draft_items
from services.reels.progress import ProgressBoard
from services.reels.worker import job_id_for
from shared.access import requires
from shared.auth import Principal
from shared.commands import Decision, Refused, run_command
from shared.events.reels import ReelItem, ReelProfile
from shared.fields import Line, Title
from shared.http import UserError, app_deps, checked_id
from shared.ids import uuid7
from shared.objectstore import ObjectStore
from shared.policy import Action
from shared.ports import EventLog, StoredEvent
from shared.settings import Settings
from shared.subjects import aggregate_type_filter

# A body may name this many items at most; the configured maximum (reels_max_items) is
# checked by decide with its own message, this only bounds what is parsed.
_MAX_BODY_ITEMS = 10_000


@dataclass
class ReelDirectory:
    """Every reel's events, caught up incrementally from the log: the list and filters."""

    histories: dict[str, list[StoredEvent]] = field(default_factory=dict)
    last_sequence: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def catch_up(self, events: EventLog) -> dict[str, list[StoredEvent]]:
        async with self.lock:
            if await events.last_sequence(aggregate_type_filter("reel")) > self.last_sequence:
                async for stored in events.read_subjects(aggregate_type_filter("reel"), 512, self.last_sequence + 1):
                    self.histories.setdefault(stored.envelope.aggregate_id, []).append(stored)
                    self.last_sequence = stored.sequence
        return self.histories


@dataclass
class ReelsDeps:
    settings: Settings
    events: EventLog
    objects: ObjectStore
    board: ProgressBoard
    broker: NatsBroker | None = None
    directory: ReelDirectory = field(default_factory=ReelDirectory)

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "s3": await self.objects.ready()}

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
        await self.events.close()

    @property
    def limits(self) -> decide.Limits:
        s = self.settings
        return decide.Limits(s.reels_max_items, s.reels_max_total_s, s.reels_max_still_s)


Deps = Annotated[ReelsDeps, Depends(app_deps)]
router = APIRouter(prefix="/v1")
# Every route names the action it takes (shared/policy.py decides who may).
Reader = Annotated[Principal, Depends(requires(Action.REEL_READ))]
Editor = Annotated[Principal, Depends(requires(Action.REEL_EDIT))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateReel(_Body):
    title: Title
    subtitle: Line = ""
    profile: ReelProfile = ReelProfile.BROADCAST


class SetItems(_Body):
    items: list[ReelItem] = Field(max_length=_MAX_BODY_ITEMS)
    # The reel's ``version`` as the editor last read it: set, a change by anyone else since
    # then is a 409 (two producers editing one reel: the second to save is told to reload).
    version: int | None = Field(default=None, ge=0)


def _reel_id(value: str) -> str:
    return checked_id("reel", value, "phim tổng hợp", "reel")


async def reel_view(d: ReelsDeps, reel: decide.ReelState) -> dict[str, Any]:
    """What a producer sees: the reel, its status and progress, the output's URLs when done."""
    percent = 0.0
    if reel.status in decide.RUNNING and reel.job_id is not None:
        current = await d.board.get(reel.reel_id)
        if current is not None and current.job_id == reel.job_id:
            percent = current.percent
    elif reel.status is decide.ReelStatus.RENDERED:
        percent = 100.0
    output: dict[str, Any] | None = None
    if reel.rendered is not None:
        r = reel.rendered
        output = {
            "job_id": r.job_id,
            "url": await d.objects.presigned_get(r.bucket, r.output_key),
            "chapters_url": await d.objects.presigned_get(r.bucket, r.chapters_key),
            "size_bytes": r.size_bytes,
            "duration_s": r.duration_s,
            "integrated_lufs": r.integrated_lufs,
            "true_peak_dbtp": r.true_peak_dbtp,
            "width": r.width,
            "height": r.height,
            "frame_rate": r.frame_rate,
            "chapters": [c.model_dump() for c in r.chapters],
            "segments_rendered": r.segments_rendered,
            "segments_cached": r.segments_cached,
            "elapsed_s": r.elapsed_s,
            # False once the items changed after this render: the file shows the older cut.
            "current": reel.status is decide.ReelStatus.RENDERED,
        }
    error = None
    if reel.failure is not None:
        f = reel.failure
        error = {"code": f.code, "message": f.reason, "message_en": f.reason_en, "detail": f.detail}
    return {
        **summary(reel),
        "items": [item.model_dump() for item in reel.items],
        "progress": round(percent, 1),
        "job_id": reel.job_id,
        "output": output,
        "error": error,
    }


def summary(reel: decide.ReelState) -> dict[str, Any]:
    return {
        "reel_id": reel.reel_id,
        "title": reel.title,
        "subtitle": reel.subtitle,
        "profile": reel.profile.value,
        "owner": reel.owner,
        "status": reel.status.value,
        "item_count": len(reel.items),
        "total_s": reel.total_s,
        "created_at": reel.created_at.isoformat(),
        "updated_at": reel.updated_at.isoformat() if reel.updated_at else None,
        "version": reel.last_sequence,
    }


async def _load(d: ReelsDeps, reel_id: str) -> decide.ReelState:
    reel = decide.fold_reel(await d.events.history("reel", _reel_id(reel_id)))
    if reel is None:
        raise decide.reel_not_found(reel_id)
    return reel


@router.post("/reels", status_code=201, summary="Tạo phim tổng hợp / create a reel")
async def create_reel(body: CreateReel, who: Editor, d: Deps) -> dict[str, Any]:
    reel_id = "r" + uuid7().hex
    await run_command(
        d.events,
        "reel",
        reel_id,
        lambda h: decide.decide_create(decide.fold_reel(h), body.title, body.subtitle, body.profile),
        actor=who.actor,
    )
    return await reel_view(d, await _load(d, reel_id))


@router.put("/reels/{reel_id}/items", summary="Đặt các đoạn của phim (theo thứ tự) / set the reel's segments")
async def set_items(reel_id: str, body: SetItems, who: Editor, d: Deps) -> dict[str, Any]:
    _reel_id(reel_id)
    # Over the limit the answer is a refusal anyway: no asset history is read for it.
    too_many = len(body.items) > d.limits.max_items
    assets = {} if too_many else await load_assets(d.events, (item.asset_id for item in body.items))
    now = datetime.now(UTC)

    def decide_items(history: list[StoredEvent]) -> Decision:
        reel = decide.fold_reel(history)
        if body.version is not None and reel is not None and reel.last_sequence != body.version:
            raise _stale(reel_id, body.version, reel.last_sequence)
        return decide.decide_set_items(reel, reel_id, body.items, assets, who, now, d.limits)

    # One attempt: a concurrent edit is the other producer's, not ours to overwrite.
    await run_command(d.events, "reel", reel_id, decide_items, actor=who.actor, attempts=1)
    return await reel_view(d, await _load(d, reel_id))


def _stale(reel_id: str, seen: int, now: int) -> Refused:
    return Refused(
        "conflict",
        f"Phim {reel_id} vừa được người khác sửa (phiên bản {seen} → {now}); hãy tải lại rồi sửa tiếp.",
        f"Reel {reel_id} was changed by someone else (version {seen} → {now}); reload and edit again.",
        status=409,
        version=now,
    )


@router.post("/reels/{reel_id}/render", status_code=202, summary="Dựng phim / render the reel")
async def render(reel_id: str, who: Editor, d: Deps) -> dict[str, Any]:
    reel = await _load(d, reel_id)
    assets = await load_assets(d.events, (item.asset_id for item in reel.items))
    now = datetime.now(UTC)
    job_id = job_id_for(reel_id, reel.last_sequence)
    chosen: list[str] = []

    def decide_render(history: list[StoredEvent]) -> Decision:
        decision = decide.decide_render(decide.fold_reel(history), reel_id, job_id, assets, who, now, d.limits)
        chosen[:] = [decision.job_id]
        return decision.events

    await run_command(d.events, "reel", reel_id, decide_render, actor=who.actor)
    view = await reel_view(d, await _load(d, reel_id))
    return {**view, "job_id": chosen[-1]}


@router.get("/reels/{reel_id}", summary="Một phim tổng hợp: các đoạn, trạng thái, tiến độ / one reel")
async def get_reel(reel_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    return await reel_view(d, await _load(d, reel_id))


@router.get("/reels", summary="Danh sách phim tổng hợp / list reels")
async def list_reels(
    who: Reader,
    d: Deps,
    owner: Annotated[str | None, Query(max_length=150, description="người tạo")] = None,
    status: Annotated[decide.ReelStatus | None, Query(description="draft, queued, rendering, rendered, failed")] = None,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    histories = await d.directory.catch_up(d.events)
    reels = [r for r in (decide.fold_reel(h) for h in histories.values()) if r is not None]
    chosen = [r for r in reels if (owner is None or r.owner == owner) and (status is None or r.status is status)]
    chosen.sort(key=lambda r: r.updated_at or r.created_at, reverse=True)
    return {"total": len(chosen), "reels": [summary(r) for r in chosen[:size]]}


@router.post("/reels/draft", status_code=201, summary="Phác thảo phim từ kết quả tìm kiếm / draft a reel")
async def draft_reel(body: DraftRequest, who: Editor, d: Deps, request: Request) -> dict[str, Any]:
    authorization = request.headers.get("Authorization", "")
    items, notes = await draft_items(
        body,
        d.settings.reels_search_url or d.settings.search_url,
        authorization,
        d.events,
        who,
        d.settings.reels_max_still_s,
    )
    if not items:
        raise UserError(
            422,
            "nothing_to_draft",
            "Tìm kiếm không có tư liệu hình ảnh hay âm thanh nào dùng được cho phim.",
            "The search found no usable video, photo or audio for a reel.",
        )
    reel_id = "r" + uuid7().hex
    assets = await load_assets(d.events, (i.asset_id for i in items))
    now = datetime.now(UTC)

    def decide_draft(history: list[StoredEvent]) -> Decision:
        created = decide.decide_create(decide.fold_reel(history), body.title, body.subtitle, body.profile)
        reel = decide.ReelState(reel_id, who.actor, now, body.title, body.subtitle, body.profile)
        return [*created, *decide.decide_set_items(reel, reel_id, items, assets, who, now, d.limits)]

    await run_command(d.events, "reel", reel_id, decide_draft, actor=who.actor)
    return {**await reel_view(d, await _load(d, reel_id)), "draft": notes}
