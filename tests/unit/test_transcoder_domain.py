"""Transcoder logic without servers: keys, commands, poster choice, retries, facts."""

from __future__ import annotations

from pathlib import Path

import pytest
from minio.error import S3Error

from services.transcoder import domain
from services.transcoder.worker import _classify
from shared.events.envelope import new_event
from shared.events.media import AssetProcessingFailedV1, ProcessingStage, RenditionName
from shared.events.models import AssetKind
from shared.media.facts import av_facts, exif_datetime, iso6709, stream_rotation


def test_rendition_keys_are_deterministic_and_never_contain_a_file_name() -> None:
    assert domain.rendition_key("a0123abc", RenditionName.PROXY) == "a0123abc/v1/proxy.mp4"
    with pytest.raises(ValueError):
        domain.rendition_key("../etc", RenditionName.PROXY)


def test_every_ffmpeg_command_forces_the_demuxer_and_allows_only_the_file_protocol() -> None:
    src, out = Path("/w/original"), Path("/w/out/proxy.mp4")
    argv = domain.proxy_command(src, "mov", out, duration_s=10, has_audio=True, threads=2)
    i = argv.index("-i")
    head = argv[:i]
    assert argv[i + 1] == "file:/w/original"
    assert head[head.index("-f") + 1] == "mov" and head[head.index("-protocol_whitelist") + 1] == "file"
    assert head[head.index("-enable_drefs") + 1] == "0"
    assert "+faststart" in argv and "libx264" in argv and "-nostdin" in argv
    wave = domain.waveform_command(src, "wav", out, 2)
    assert wave[wave.index("-protocol_whitelist") + 1] == "file" and "-enable_drefs" not in wave


def test_the_poster_skips_black_and_flat_frames() -> None:
    black, flat, busy = domain.FrameStats(3, 1), domain.FrameStats(128, 2), domain.FrameStats(110, 40)
    assert domain.choose_poster([black, black, busy]) == 2
    assert domain.choose_poster([busy, flat, busy]) == 2  # the very first frame only as a last resort
    assert domain.choose_poster([black, flat]) == 1  # nothing usable: the most detailed


def test_the_storyboard_has_at_most_a_hundred_tiles_and_a_cue_per_tile() -> None:
    plan = domain.storyboard_plan(2 * 3600)
    assert plan.tiles == 100 and plan.interval_s == 72
    vtt = domain.storyboard_vtt(3, 1.0, 2.5, 160, 90)
    assert vtt.startswith("WEBVTT") and "00:00:02.000 --> 00:00:02.500" in vtt
    assert "storyboard.jpg#xywh=320,0,160,90" in vtt


def test_file_faults_fail_at_once_and_machine_faults_retry_a_bounded_number_of_times() -> None:
    file_fault = domain.JobFailure(ProcessingStage.PROBE, "corrupt_media", "Hỏng", "Corrupt", "", False)
    machine = domain.JobFailure(ProcessingStage.STORE, "storage_unavailable", "Kho", "Storage", "", True)
    assert domain.decide(file_fault, 1, 3) == "give_up"
    assert [domain.decide(machine, n, 3) for n in (1, 2, 3)] == ["retry", "retry", "give_up"]
    assert domain.retry_delay(1, 5) == 5 and domain.retry_delay(10, 5) == 300


def test_a_failure_event_carries_a_vietnamese_reason_in_nfc() -> None:
    decomposed = "Te\u0302\u0323p ho\u0309ng"
    payload = domain.failed_payload(
        domain.JobFailure(ProcessingStage.RENDER, "ffmpeg_failed", decomposed, "Broken", "moov atom not found", False),
        1,
    )
    assert isinstance(payload, AssetProcessingFailedV1) and payload.reason == "Tệp hỏng"
    event = new_event(payload, aggregate_id="a1", actor="transcoder")
    assert event.type == "asset.processing_failed" and event.typed_payload() == payload


def test_probe_facts_read_rotation_dates_camera_and_gps_from_ffprobe_json() -> None:
    info = {
        "format": {
            "duration": "12.5",
            "bit_rate": "800000",
            "tags": {
                "creation_time": "2024-05-01T02:30:00.000000Z",
                "com.apple.quicktime.make": "Apple",
                "com.apple.quicktime.model": "iPhone 13",
                "location": "+21.0285+105.8542/",
            },
        },
        "streams": [
            {
                "codec_type": "video",
                "codec_name": "hevc",
                "width": 1920,
                "height": 1080,
                "avg_frame_rate": "30000/1001",
                "side_data_list": [{"rotation": -90}],
            },
            {"codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "48000"},
        ],
    }
    facts = av_facts(AssetKind.VIDEO, "mov,mp4", info)
    assert (facts.width, facts.height, facts.rotation) == (1080, 1920, 90)
    assert facts.frame_rate == pytest.approx(29.97) and facts.camera == "Apple iPhone 13"
    assert facts.gps is not None and facts.gps.lat == pytest.approx(21.0285)
    assert facts.recorded_at is not None and facts.recorded_at.isoformat() == "2024-05-01T02:30:00+00:00"
    assert stream_rotation({"tags": {"rotate": "270"}}) == 270
    assert iso6709("garbage") is None


def test_exif_dates_without_an_offset_are_vietnam_local_time() -> None:
    when = exif_datetime("2024:05:01 09:30:00")
    assert when is not None and when.utcoffset() is not None and when.isoformat() == "2024-05-01T09:30:00+07:00"
    assert exif_datetime("2024:05:01 09:30:00", "+09:00").isoformat() == "2024-05-01T09:30:00+09:00"  # type: ignore[union-attr]
    assert exif_datetime("0000:00:00 00:00:00") is None


def test_inputs_no_attempt_can_get_past_fail_at_once_and_passing_faults_stay_retryable() -> None:
    with pytest.raises(domain.HopelessInput) as bad_id:
        domain.rendition_key("a-1", RenditionName.POSTER)
    assert bad_id.value.code == "invalid_asset_id"
    with pytest.raises(domain.HopelessInput) as bad_bucket:
        domain.check_original_address("Not_A_Bucket", "ab/cd")
    assert bad_bucket.value.code == "invalid_original_address"
    with pytest.raises(domain.HopelessInput):
        domain.check_original_address("originals", "ab/../cd")
    domain.check_original_address("originals", "ab/cd")  # a valid address passes

    hopeless = _classify(bad_id.value, ProcessingStage.FETCH)
    refused = _classify(S3Error(None, "InvalidBucketName", "bad", "/x", "r", "h"), ProcessingStage.FETCH)  # type: ignore[arg-type]
    passing = _classify(S3Error(None, "SlowDown", "busy", "/x", "r", "h"), ProcessingStage.FETCH)  # type: ignore[arg-type]
    assert [domain.decide(f, 1, 3) for f in (hopeless, refused, passing)] == ["give_up", "give_up", "retry"]
    assert hopeless.reason and hopeless.reason_en and hopeless.code == "invalid_asset_id"
