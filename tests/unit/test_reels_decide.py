"""The reel aggregate's decisions, without servers: what each command appends, every
refusal (bilingual), and how the renderer's events fold into the status producers see."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import pytest

from services.reels.assets import AssetFacts, StoredMedia, fold_asset_facts
from services.reels.decide import (
    Limits,
    ReelState,
    ReelStatus,
    decide_create,
    decide_render,
    decide_set_items,
    fold_reel,
)
from services.reels.drafts import DraftRequest, choose, segment_for
from shared.auth import Principal, Role
from shared.events.envelope import new_event
from shared.events.media import (
    AssetProbedV1,
    AssetProcessingFailedV1,
    AssetRenditionsReadyV1,
    ProcessingStage,
    Rendition,
    RenditionName,
)
from shared.events.models import AssetIngestedV1, AssetKind, EventPayload
from shared.events.reels import (
    ReelCreatedV1,
    ReelItem,
    ReelItemsSetV1,
    ReelProfile,
    ReelRenderedV1,
    ReelRenderFailedV1,
    ReelRenderRequestedV1,
    ReelRenderStartedV1,
)
from shared.policy import Restriction, Visibility
from shared.ports import StoredEvent
from tests.conftest import refusal

NOW = datetime(2026, 1, 5, tzinfo=UTC)
PRODUCER = Principal("bien-tap", "bien-tap", Role.BIEN_TAP)
OTHER_PRODUCER = Principal("bien-tap-2", "bien-tap-2", Role.BIEN_TAP)
ARCHIVIST = Principal("luu-tru", "luu-tru", Role.LUU_TRU)
LIMITS = Limits(max_items=5, max_total_s=60.0, max_still_s=8.0)
SHA = "ab" * 32
REEL = "r" + "1" * 32


def facts(
    asset_id: str, kind: AssetKind = AssetKind.VIDEO, duration: float | None = 10.0, **extra: object
) -> AssetFacts:
    base = AssetFacts(
        asset_id=asset_id,
        kind=kind,
        sha256=SHA,
        original=StoredMedia("mam-originals", f"sha256/{asset_id}"),
        title=f"Tư liệu {asset_id}",
        recorded_at=None,
        duration_s=None if kind is AssetKind.PHOTO else duration,
        visibility=Visibility(uploaded_by="phong-vien"),
        probed=True,
        proxy=StoredMedia("mam-renditions", f"{asset_id}/proxy.mp4"),
    )
    from dataclasses import replace

    return replace(base, **extra)  # type: ignore[arg-type]


ASSETS = {
    "v1": facts("v1"),
    "p1": facts("p1", AssetKind.PHOTO),
    "s1": facts("s1", AssetKind.AUDIO, 30.0),
    "bad": facts("bad", failed_code="undecodable", failed_reason=("không giải mã được", "cannot decode")),
    "secret": facts("secret", visibility=Visibility(uploaded_by="x", restriction=Restriction.RESTRICTED)),
}


def history(*payloads: EventPayload, actor: str = "bien-tap") -> list[StoredEvent]:
    seq = count(1)
    return [
        StoredEvent(n, f"mam.reel.{REEL}.x", new_event(p, aggregate_id=REEL, actor=actor))
        for n, p in zip(seq, payloads, strict=False)
    ]


CREATED = ReelCreatedV1(title="Tổng kết hoạt động HĐND tỉnh năm 2023", profile=ReelProfile.BROADCAST)
ITEMS = (ReelItem(asset_id="v1", in_s=1.0, out_s=4.5, caption="Khai mạc"),)


def state(*payloads: EventPayload) -> ReelState:
    folded = fold_reel(history(CREATED, *payloads))
    assert folded is not None
    return folded


def set_items(reel: ReelState | None, items: list[ReelItem], who: Principal = PRODUCER) -> list[EventPayload]:
    return decide_set_items(reel, REEL, items, ASSETS, who, NOW, LIMITS)


# --- create and items ------------------------------------------------------------------------------


def test_creating_a_reel_appends_one_created_event_and_a_second_create_of_the_same_id_is_a_conflict() -> None:
    [event] = decide_create(None, "Tổng kết 2023", "", ReelProfile.DRAFT)
    assert isinstance(event, ReelCreatedV1) and event.profile is ReelProfile.DRAFT
    assert refusal(lambda: decide_create(state(), "x", "", ReelProfile.DRAFT)).status == 409


def test_items_of_video_photo_and_audio_become_one_items_set_event_with_the_total_duration() -> None:
    items = [
        ReelItem(asset_id="v1", in_s=0.0, out_s=2.5),
        ReelItem(asset_id="p1", in_s=0.0, out_s=3.0),
        ReelItem(asset_id="s1", in_s=10.0, out_s=12.25),
    ]
    [event] = set_items(state(), items)
    assert isinstance(event, ReelItemsSetV1)
    assert [i.asset_id for i in event.items] == ["v1", "p1", "s1"] and event.total_s == 7.75


def test_in_and_out_points_are_kept_to_the_millisecond() -> None:
    assert ReelItem(asset_id="v1", in_s=1.23456, out_s=2.0004).in_s == 1.235
    assert ReelItem(asset_id="v1", in_s=1.23456, out_s=2.0004).out_s == 2.0


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (ReelItem(asset_id="v1", in_s=3.0, out_s=3.0), "in_not_before_out"),
        (ReelItem(asset_id="v1", in_s=4.0, out_s=2.0), "in_not_before_out"),
        (ReelItem(asset_id="v1", in_s=8.0, out_s=10.5), "out_of_range"),
        (ReelItem(asset_id="nope", in_s=0.0, out_s=1.0), "unknown_asset"),
        (ReelItem(asset_id="secret", in_s=0.0, out_s=1.0), "unknown_asset"),
        (ReelItem(asset_id="bad", in_s=0.0, out_s=1.0), "asset_processing_failed"),
        (ReelItem(asset_id="p1", in_s=0.0, out_s=9.0), "still_too_long"),
    ],
)
def test_a_segment_that_cannot_be_rendered_is_refused_naming_the_segment(item: ReelItem, code: str) -> None:
    refused = refusal(lambda: set_items(state(), [ITEMS[0], item]))
    assert refused.code == code and refused.extra["item"] == 1
    assert "Đoạn số 2" in refused.message_vi and "Segment 2" in refused.message_en


def test_a_restricted_asset_is_usable_by_an_archivist_who_may_see_it() -> None:
    [event] = set_items(state(), [ReelItem(asset_id="secret", in_s=0, out_s=1)], who=ARCHIVIST)
    assert isinstance(event, ReelItemsSetV1)


def test_no_items_too_many_items_and_too_long_a_reel_are_refused() -> None:
    assert refusal(lambda: set_items(state(), [])).code == "no_items"
    six = [ReelItem(asset_id="v1", in_s=0, out_s=1)] * 6
    assert refusal(lambda: set_items(state(), six)).code == "too_many_items"
    long = [ReelItem(asset_id="s1", in_s=0, out_s=29)] * 3  # 87 s > 60 s
    assert refusal(lambda: set_items(state(), long)).code == "too_long"


def test_only_the_owner_or_an_archivist_edits_a_reel_and_an_unknown_reel_is_not_found() -> None:
    assert refusal(lambda: set_items(state(), list(ITEMS), who=OTHER_PRODUCER)).status == 403
    assert set_items(state(), list(ITEMS), who=ARCHIVIST)
    assert refusal(lambda: set_items(None, list(ITEMS))).status == 404


def test_setting_the_same_items_again_appends_nothing() -> None:
    assert set_items(state(ReelItemsSetV1(items=ITEMS, total_s=3.5)), list(ITEMS)) == []


def test_a_reel_being_rendered_cannot_be_edited() -> None:
    running = state(ReelItemsSetV1(items=ITEMS, total_s=3.5), requested("j1"))
    assert refusal(lambda: set_items(running, [ReelItem(asset_id="v1", in_s=0, out_s=1)])).status == 409


# --- render requests and the renderer's events --------------------------------------------------


def requested(job_id: str) -> ReelRenderRequestedV1:
    decision = decide_render(
        state(ReelItemsSetV1(items=ITEMS, total_s=3.5)), REEL, job_id, ASSETS, PRODUCER, NOW, LIMITS
    )
    [event] = decision.events
    assert isinstance(event, ReelRenderRequestedV1)
    return event


def test_a_render_request_resolves_each_segment_to_the_original_for_broadcast() -> None:
    event = requested("j1")
    assert event.job_id == "j1" and event.title == CREATED.title
    [source] = event.sources
    assert (source.bucket, source.key, source.in_s, source.out_s) == ("mam-originals", "sha256/v1", 1.0, 4.5)


def test_a_draft_render_cuts_from_the_proxy() -> None:
    draft = fold_reel(
        history(ReelCreatedV1(title="Nháp", profile=ReelProfile.DRAFT), ReelItemsSetV1(items=ITEMS, total_s=3.5))
    )
    [event] = decide_render(draft, REEL, "j2", ASSETS, PRODUCER, NOW, LIMITS).events
    assert isinstance(event, ReelRenderRequestedV1) and event.sources[0].key == "v1/proxy.mp4"


def test_a_second_render_request_while_one_runs_answers_the_running_job_and_appends_nothing() -> None:
    running = state(ReelItemsSetV1(items=ITEMS, total_s=3.5), requested("j1"))
    assert running.status is ReelStatus.QUEUED
    again = decide_render(running, REEL, "j-new", ASSETS, PRODUCER, NOW, LIMITS)
    assert again.events == [] and again.job_id == "j1"


def test_a_reel_without_items_cannot_be_rendered() -> None:
    assert refusal(lambda: decide_render(state(), REEL, "j", ASSETS, PRODUCER, NOW, LIMITS)).code == "no_items"


def rendered(job_id: str) -> ReelRenderedV1:
    return ReelRenderedV1(
        job_id=job_id,
        bucket="mam-reels",
        output_key=f"{REEL}/{job_id}.mp4",
        chapters_key=f"{REEL}/{job_id}.chapters.vtt",
        size_bytes=10,
        duration_s=5.0,
        integrated_lufs=-23.0,
        true_peak_dbtp=-1.5,
        segments_rendered=2,
        segments_cached=0,
        elapsed_s=1.0,
    )


def test_the_status_follows_request_start_and_finish_and_an_edit_makes_the_reel_a_draft_again() -> None:
    items = ReelItemsSetV1(items=ITEMS, total_s=3.5)
    started = ReelRenderStartedV1(job_id="j1", attempt=1, worker="w")
    assert state(items, requested("j1"), started).status is ReelStatus.RENDERING
    done = state(items, requested("j1"), started, rendered("j1"))
    assert done.status is ReelStatus.RENDERED and done.rendered is not None and "j1" in done.finished_jobs
    edited = state(items, requested("j1"), started, rendered("j1"), ReelItemsSetV1(items=ITEMS[:1], total_s=3.5))
    assert edited.status is ReelStatus.DRAFT and edited.rendered is not None  # the old output stays listed


def test_a_failed_render_keeps_its_bilingual_reason_and_a_new_request_clears_it() -> None:
    items = ReelItemsSetV1(items=ITEMS, total_s=3.5)
    failure = ReelRenderFailedV1(job_id="j1", code="x", reason="Lỗi", reason_en="Error", attempts=1)
    failed = state(items, requested("j1"), failure)
    assert failed.status is ReelStatus.FAILED and failed.failure is not None
    retried = state(items, requested("j1"), failure, requested("j2"))
    assert retried.status is ReelStatus.QUEUED and retried.failure is None


def test_a_started_event_of_a_finished_job_redelivered_late_does_not_reopen_the_reel() -> None:
    items = ReelItemsSetV1(items=ITEMS, total_s=3.5)
    late = ReelRenderStartedV1(job_id="j1", attempt=2, worker="w")
    assert state(items, requested("j1"), rendered("j1"), late).status is ReelStatus.RENDERED


# --- asset facts and drafts ---------------------------------------------------------------------


def test_asset_facts_fold_duration_proxy_poster_and_failure_from_the_assets_events() -> None:
    asset = "a" + "3" * 32
    ingested = AssetIngestedV1(
        sha256=SHA,
        size_bytes=9,
        kind=AssetKind.VIDEO,
        media_format="mov",
        mime_type="video/mp4",
        bucket="mam-originals",
        object_key="k",
        title="Kỳ họp",
        activity_type="ky-hop",
    )
    probed = AssetProbedV1(kind=AssetKind.VIDEO, container="mov", duration_s=12.5)
    proxy = Rendition(
        name=RenditionName.PROXY, bucket="mam-renditions", key="p.mp4", mime_type="video/mp4", size_bytes=1
    )
    ready = AssetRenditionsReadyV1(profile="v1", renditions=(proxy,), poster_time_s=3.0, elapsed_s=1)
    events = [new_event(p, aggregate_id=asset, actor="phong-vien") for p in (ingested, probed, ready)]
    got = fold_asset_facts(asset, events)
    assert got is not None and got.duration_s == 12.5 and got.poster_time_s == 3.0
    assert got.proxy == StoredMedia("mam-renditions", "p.mp4") and got.visibility.uploaded_by == "phong-vien"
    fail = AssetProcessingFailedV1(
        stage=ProcessingStage.RENDER, code="c", reason="r", reason_en="e", retryable=False, attempts=3
    )
    broken = fold_asset_facts(asset, [*events[:2], new_event(fail, aggregate_id=asset, actor="transcoder")])
    assert broken is not None and broken.failed_code == "c"
    assert fold_asset_facts(asset, events[1:]) is None  # no ingest: no asset


def test_a_draft_segment_is_centred_on_the_first_non_black_frame_and_kept_inside_the_clip() -> None:
    item = segment_for(facts("v1", poster_time_s=9.5), seconds=4, max_still_s=8, caption="c")
    assert item is not None and (item.in_s, item.out_s) == (6.0, 10.0)
    middle = segment_for(facts("v1"), seconds=4, max_still_s=8, caption="c")
    assert middle is not None and (middle.in_s, middle.out_s) == (3.0, 7.0)
    still = segment_for(ASSETS["p1"], seconds=20, max_still_s=8, caption="c")
    assert still is not None and (still.in_s, still.out_s) == (0.0, 8.0)
    assert segment_for(ASSETS["bad"], seconds=4, max_still_s=8, caption="c") is None


def test_a_draft_takes_one_segment_per_activity_preferring_video_ordered_by_date() -> None:
    hits = [
        {"asset_id": "p1", "activity_id": "act-b", "recorded_at": "2023-03-01T08:00:00+07:00"},
        {"asset_id": "v1", "activity_id": "act-b", "recorded_at": "2023-03-01T09:00:00+07:00"},
        {"asset_id": "s1", "activity_id": "act-a", "recorded_at": "2023-01-10T08:00:00+07:00"},
        {"asset_id": "bad", "activity_id": "act-c", "recorded_at": "2023-02-01T08:00:00+07:00"},
    ]
    body = DraftRequest(title="Tổng kết 2023", seconds=2)
    items = choose(hits, dict(ASSETS), body, max_still_s=8)
    assert [i.asset_id for i in items] == ["s1", "v1"]


# --- the search projector's reel documents ----------------------------------------------------


def test_a_reel_document_holds_folded_title_and_captions_and_the_status_of_the_latest_job() -> None:
    from services.search.reels import reel_document

    items = ReelItemsSetV1(items=(ReelItem(asset_id="v1", in_s=0, out_s=1, caption="Đại biểu chất vấn"),), total_s=1)
    late_start = ReelRenderStartedV1(job_id="j1", attempt=2, worker="w")
    events = [e.envelope for e in history(CREATED, items, requested("j1"), rendered("j1"), late_start)]
    doc = reel_document(events)
    assert doc is not None
    assert doc["title_folded"] == "tong ket hoat dong hdnd tinh nam 2023"
    assert doc["captions_folded"] == ["dai bieu chat van"] and doc["asset_ids"] == ["v1"]
    assert doc["status"] == "rendered" and doc["duration_s"] == 5.0
    assert reel_document(events[1:]) is None


def test_progress_maps_the_renderers_percent_into_the_render_phase_and_never_goes_back() -> None:
    from services.reels.progress import ProgressReporter

    reporter = ProgressReporter(board=None, reel_id=REEL, job_id="j1", per_s=4)  # type: ignore[arg-type]
    reporter.enter("rendering")
    assert reporter.percent == 10.0
    reporter.update(50.0)
    assert reporter.percent == pytest.approx(52.5)
    reporter.update(20.0)
    assert reporter.percent == pytest.approx(52.5)
    reporter.update(100.0)
    reporter.enter("storing")
    assert reporter.percent == 95.0
