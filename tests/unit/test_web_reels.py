"""The reel builder's timecodes (hh:mm:ss.ff at 25 fps) and the statistics bars."""

from __future__ import annotations

from starlette.datastructures import FormData

from services.web.reels import parse_timecode, segments_from_form, timecode
from services.web.reports import bars


def test_timecodes_are_hours_minutes_seconds_and_frames_at_25_fps() -> None:
    assert parse_timecode("00:01:05.12") == 65.48
    assert parse_timecode("01:00:00") == 3600.0
    assert parse_timecode("00:00:00:24") == 0.96
    for wrong in ("00:00:99.00", "00:00:01.25", "1:2:3", "", "abc", "00:60:00.00"):
        assert parse_timecode(wrong) is None, wrong
    assert timecode(65.48) == "00:01:05.12" and timecode(3725.0) == "01:02:05.00"
    assert all(parse_timecode(timecode(f / 25)) == round(f / 25, 3) for f in range(0, 3000, 7))


def test_segments_typed_wrong_are_refused_next_to_their_field_and_kept_as_typed() -> None:
    form = FormData(
        [
            ("asset_id", "a1"),
            ("in", "00:00:01.00"),
            ("out", "00:00:02.00"),
            ("caption", " Mở đầu "),
            ("asset_id", "a2"),
            ("in", "00:00:05.00"),
            ("out", "00:00:04.00"),
            ("caption", ""),
            ("asset_id", "a3"),
            ("in", "5 giây"),
            ("out", "00:00:09.00"),
            ("caption", ""),
        ]
    )
    items, errors, rows = segments_from_form(form)
    assert items[0] == {"asset_id": "a1", "in_s": 1.0, "out_s": 2.0, "caption": "Mở đầu"}
    assert set(errors) == {"out-1", "in-2"}
    assert errors["out-1"][0] == "Điểm ra phải sau điểm vào."
    assert "hh:mm:ss.ff" in errors["in-2"][0]
    assert rows[2]["in"] == "5 giây"


def test_bars_scale_to_the_tallest_and_keep_their_order() -> None:
    geometry = bars([10.0, 5.0, 0.0], width=300, height=100)
    assert [round(b["h"]) for b in geometry] == [100, 50, 0]
    assert geometry[0]["x"] < geometry[1]["x"] < geometry[2]["x"]
    assert bars([]) == [] and bars([0.0])[0]["h"] == 0
