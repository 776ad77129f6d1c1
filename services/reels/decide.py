"""The reel aggregate: its state folded from its events, and pure decisions.

Every command is load → decide → append (``shared.commands.run_command``): the
functions here get the reel's history (and the facts of the assets it names,
loaded beforehand) and return the events to append, or raise
:class:`~shared.commands.Refused` with a reason in Vietnamese and English.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from services.reels.assets import AssetFacts
from shared.auth import Principal
from shared.commands import Refused, not_found
from shared.events.models import AssetKind, EventPayload
from shared.events.reels import (
    ReelCreatedV1,
    ReelItem,
    ReelItemsSetV1,
    ReelProfile,
    ReelRenderedV1,
    ReelRenderFailedV1,
    ReelRenderRequestedV1,
    ReelRenderStartedV1,
    RenderSource,
)
from shared.fields import Line, Title
from shared.policy import ARCHIVE, may_see
from shared.ports import StoredEvent

# in/out may overshoot a probed duration by this much (container vs stream duration rounding).
DURATION_TOLERANCE_S = 0.0005


class ReelStatus(StrEnum):
    DRAFT = "draft"  # never rendered, or edited since its last render
    QUEUED = "queued"  # render requested, no renderer has started it yet
    RENDERING = "rendering"
    RENDERED = "rendered"
    FAILED = "failed"


RUNNING = frozenset({ReelStatus.QUEUED, ReelStatus.RENDERING})


@dataclass(frozen=True)
class Limits:
    max_items: int = 500
    max_total_s: float = 4 * 3600.0
    max_still_s: float = 60.0


@dataclass(frozen=True)
class ReelState:
    reel_id: str
    owner: str
    created_at: datetime
    title: str
    subtitle: str
    profile: ReelProfile
    items: tuple[ReelItem, ...] = ()
    total_s: float = 0.0
    status: ReelStatus = ReelStatus.DRAFT
    job_id: str | None = None  # the latest render job
    job_requested_by: str | None = None
    attempt: int = 0
    rendered: ReelRenderedV1 | None = None  # the latest successful render
    failure: ReelRenderFailedV1 | None = None  # the latest job's failure
    updated_at: datetime | None = None
    last_sequence: int = 0
    finished_jobs: frozenset[str] = field(default_factory=frozenset)


def fold_reel(history: Iterable[StoredEvent]) -> ReelState | None:
    state: ReelState | None = None
    for stored in history:
        event = stored.envelope
        p = event.typed_payload()
        if isinstance(p, ReelCreatedV1):
            state = ReelState(
                reel_id=event.aggregate_id,
                owner=event.actor,
                created_at=event.occurred_at,
                title=p.title,
                subtitle=p.subtitle,
                profile=p.profile,
            )
        elif state is None:
            continue
        elif isinstance(p, ReelItemsSetV1):
            state = replace(state, items=p.items, total_s=p.total_s, status=ReelStatus.DRAFT)
        elif isinstance(p, ReelRenderRequestedV1):
            state = replace(
                state,
                status=ReelStatus.QUEUED,
                job_id=p.job_id,
                job_requested_by=event.actor,
                attempt=0,
                failure=None,
            )
        elif isinstance(p, ReelRenderStartedV1):
            if p.job_id == state.job_id and p.job_id not in state.finished_jobs:
                state = replace(state, status=ReelStatus.RENDERING, attempt=p.attempt)
        elif isinstance(p, ReelRenderedV1):
            finished = state.finished_jobs | {p.job_id}
            state = replace(state, finished_jobs=finished, rendered=p)
            if p.job_id == state.job_id:
                state = replace(state, status=ReelStatus.RENDERED)
        elif isinstance(p, ReelRenderFailedV1):
            state = replace(state, finished_jobs=state.finished_jobs | {p.job_id})
            if p.job_id == state.job_id:
                state = replace(state, status=ReelStatus.FAILED, failure=p)
        state = replace(state, updated_at=event.occurred_at, last_sequence=stored.sequence)
    return state


def reel_not_found(reel_id: str) -> Refused:
    return not_found("reel_not_found", "phim tổng hợp", "reel", reel_id)


def may_edit(who: Principal, reel: ReelState) -> bool:
    """Producers edit their own reels; archivists and admins any (``REEL_EDIT`` was checked before)."""
    return who.role in ARCHIVE or reel.owner == who.actor


def _existing(reel: ReelState | None, reel_id: str, who: Principal) -> ReelState:
    if reel is None:
        raise reel_not_found(reel_id)
    if not may_edit(who, reel):
        raise Refused(
            "not_reel_owner",
            "Chỉ người tạo phim tổng hợp (hoặc lưu trữ viên) mới sửa được phim này.",
            "Only the reel's owner (or an archivist) may change it.",
            status=403,
        )
    return reel


def decide_create(reel: ReelState | None, title: Title, subtitle: Line, profile: ReelProfile) -> list[EventPayload]:
    if reel is not None:
        raise Refused("reel_exists", "Phim tổng hợp này đã tồn tại.", "This reel already exists.", status=409)
    return [ReelCreatedV1(title=title, subtitle=subtitle, profile=profile)]


def _rendering(reel_id: str) -> Refused:
    return Refused(
        "reel_rendering",
        f"Phim {reel_id} đang được dựng; chờ dựng xong rồi hãy sửa.",
        f"Reel {reel_id} is being rendered; edit it once the render is done.",
        status=409,
    )


def _bad_item(index: int, code: str, vi: str, en: str, status: int = 422) -> Refused:
    return Refused(code, f"Đoạn số {index + 1}: {vi}", f"Segment {index + 1}: {en}", status=status, item=index)


def check_item(
    index: int, item: ReelItem, asset: AssetFacts | None, who: Principal, now: datetime, limits: Limits
) -> None:
    """Refuse one segment that cannot be rendered as asked (bilingual, naming the segment)."""
    if asset is None or not may_see(who, asset.visibility, now):
        # One the caller may not see is not there for them (the same answer as unknown).
        raise _bad_item(
            index, "unknown_asset", f"không tìm thấy tư liệu {item.asset_id}.", f"no asset {item.asset_id}.", 422
        )
    if asset.failed_code is not None:
        vi, en = asset.failed_reason or ("", "")
        raise _bad_item(
            index,
            "asset_processing_failed",
            f"tư liệu {item.asset_id} xử lý không thành công ({vi}); không dùng được.",
            f"asset {item.asset_id} failed processing ({en}); it cannot be used.",
        )
    if item.in_s >= item.out_s:
        raise _bad_item(
            index,
            "in_not_before_out",
            f"điểm vào ({item.in_s:.3f} s) phải trước điểm ra ({item.out_s:.3f} s).",
            f"in_s ({item.in_s:.3f}) must be before out_s ({item.out_s:.3f}).",
        )
    if asset.kind is AssetKind.PHOTO:
        if item.out_s - item.in_s > limits.max_still_s:
            raise _bad_item(
                index,
                "still_too_long",
                f"ảnh tĩnh hiện tối đa {limits.max_still_s:g} giây.",
                f"a photo is shown as a still for at most {limits.max_still_s:g} s.",
            )
        return
    if asset.duration_s is None:
        raise _bad_item(
            index,
            "asset_not_ready",
            f"tư liệu {item.asset_id} chưa được xử lý xong (chưa biết thời lượng); thử lại sau.",
            f"asset {item.asset_id} is not processed yet (its duration is unknown); retry later.",
            409,
        )
    if item.out_s > asset.duration_s + DURATION_TOLERANCE_S:
        raise _bad_item(
            index,
            "out_of_range",
            f"đoạn {item.in_s:.3f}–{item.out_s:.3f} s vượt quá thời lượng {asset.duration_s:.3f} s của tư liệu.",
            f"{item.in_s:.3f}–{item.out_s:.3f} s is outside the asset's {asset.duration_s:.3f} s.",
        )


def decide_set_items(
    reel: ReelState | None,
    reel_id: str,
    items: Sequence[ReelItem],
    assets: Mapping[str, AssetFacts | None],
    who: Principal,
    now: datetime,
    limits: Limits,
) -> list[EventPayload]:
    state = _existing(reel, reel_id, who)
    if state.status in RUNNING:
        raise _rendering(reel_id)
    if not items:
        raise Refused("no_items", "Phim tổng hợp cần ít nhất một đoạn.", "A reel needs at least one segment.")
    if len(items) > limits.max_items:
        raise Refused(
            "too_many_items",
            f"Phim tổng hợp có tối đa {limits.max_items} đoạn (yêu cầu có {len(items)}).",
            f"A reel has at most {limits.max_items} segments ({len(items)} given).",
        )
    for index, item in enumerate(items):
        check_item(index, item, assets.get(item.asset_id), who, now, limits)
    total = round(sum(item.out_s - item.in_s for item in items), 3)
    if total > limits.max_total_s:
        raise Refused(
            "too_long",
            f"Tổng thời lượng {total:.0f} s vượt giới hạn {limits.max_total_s:.0f} s.",
            f"The total duration {total:.0f} s exceeds the limit of {limits.max_total_s:.0f} s.",
        )
    if tuple(items) == state.items:
        return []  # the same list again: nothing changed
    return [ReelItemsSetV1(items=tuple(items), total_s=total)]


def source_for(item: ReelItem, asset: AssetFacts, profile: ReelProfile) -> RenderSource:
    """Where the renderer cuts ``item`` from: the original, or the proxy for a draft."""
    media = asset.original
    if profile is ReelProfile.DRAFT and asset.kind is not AssetKind.PHOTO and asset.proxy is not None:
        media = asset.proxy
    return RenderSource(
        asset_id=asset.asset_id,
        kind=asset.kind,
        sha256=asset.sha256,
        bucket=media.bucket,
        key=media.key,
        in_s=item.in_s,
        out_s=item.out_s,
        caption=item.caption,
    )


@dataclass(frozen=True)
class RenderDecision:
    events: list[EventPayload]
    job_id: str  # the new job, or the one already running


def decide_render(
    reel: ReelState | None,
    reel_id: str,
    job_id: str,
    assets: Mapping[str, AssetFacts | None],
    who: Principal,
    now: datetime,
    limits: Limits,
) -> RenderDecision:
    """Request a render; while one is queued or running, the answer is that job (nothing appended)."""
    state = _existing(reel, reel_id, who)
    if state.status in RUNNING and state.job_id is not None:
        return RenderDecision([], state.job_id)
    if not state.items:
        raise Refused("no_items", "Phim tổng hợp chưa có đoạn nào để dựng.", "The reel has no segments to render.")
    sources = []
    for index, item in enumerate(state.items):
        asset = assets.get(item.asset_id)
        # The assets may have changed since the items were set (failed, restricted): check again.
        check_item(index, item, asset, who, now, limits)
        assert asset is not None
        if state.profile is ReelProfile.DRAFT and asset.kind is not AssetKind.PHOTO and asset.proxy is None:
            raise _bad_item(
                index,
                "proxy_not_ready",
                f"bản xem trước của tư liệu {item.asset_id} chưa có; dựng bản nháp sau, hoặc dựng bản phát sóng.",
                f"asset {item.asset_id} has no proxy yet; render the draft later, or the broadcast profile.",
                409,
            )
        sources.append(source_for(item, asset, state.profile))
    requested = ReelRenderRequestedV1(
        job_id=job_id, title=state.title, subtitle=state.subtitle, profile=state.profile, sources=tuple(sources)
    )
    return RenderDecision([requested], job_id)
