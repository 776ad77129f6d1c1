"""Delegates per term: reading the council's list (CSV with Vietnamese or English headers,
XLSX), deciding imports and speech decisions, and the report's shaping."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from services.catalogue.decide import AssetState
from services.catalogue.delegates import SpeechDecision, decide_register_delegate, decide_speeches
from services.search.delegates import NOTHING_COUNTED, ReportParams, report_body, report_csv, report_xlsx, shape_report
from shared.activities import Activity
from shared.delegates import (
    Delegate,
    DelegateListError,
    delegate_id_for,
    parse_delegate_rows,
    parse_delegate_xlsx,
)
from shared.events.delegates import AssetSpeechesEditedV1, DelegateEditedV1, DelegateRegisteredV1, HandSetSpeech
from shared.events.envelope import new_event
from shared.events.speech import SpeechTag
from shared.events.tagging import AssetTaggedV1
from shared.people import Person, Registry, person_id_for
from shared.speeches import fold_speech_event
from tests.conftest import refusal

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "delegates_sample.csv"


def test_a_csv_list_with_vietnamese_headers_reads_every_delegate_with_unit_and_group() -> None:
    rows = parse_delegate_rows(SAMPLE.read_text("utf-8"))
    assert len(rows) == 14
    hung = rows[0]
    assert (hung.name, hung.term, hung.group) == ("Nguyễn Văn Hùng", "2021-2026", "Tổ đại biểu huyện Ninh Hải")
    assert hung.electoral_unit.startswith("Đơn vị bầu cử số 3") and hung.person_id == person_id_for(hung.name)
    assert hung.delegate_id == delegate_id_for(hung.person_id, "2021-2026")


def test_english_headers_semicolons_and_a_bom_are_read_too() -> None:
    text = "\ufeffName;Term;Group;Electoral unit\nLê Văn Tám;2026-2031;Tổ đại biểu huyện Ninh Sơn;Đơn vị số 7\n"
    (row,) = parse_delegate_rows(text)
    assert (row.name, row.term, row.group, row.electoral_unit) == (
        "Lê Văn Tám",
        "2026-2031",
        "Tổ đại biểu huyện Ninh Sơn",
        "Đơn vị số 7",
    )


def test_a_list_without_name_or_term_column_or_with_an_unknown_term_is_refused_in_both_languages() -> None:
    with pytest.raises(DelegateListError) as caught:
        parse_delegate_rows("ho_ten,to_dai_bieu\nA B,Tổ 1\n")
    assert "nhiệm kỳ" in caught.value.message_vi and "term" in caught.value.message_en
    with pytest.raises(DelegateListError, match="Row 2"):
        parse_delegate_rows("ho_ten,nhiem_ky\nA B,1990-1995\n")


def _xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_list_reads_like_the_csv_and_garbage_is_refused() -> None:
    data = _xlsx([["Họ và tên", "Nhiệm kỳ", "Tổ đại biểu"], ["Trần Thị Mỹ Hạnh", "2021-2026", "Tổ TP"], ["", "", ""]])
    (row,) = parse_delegate_xlsx(data)
    assert (row.name, row.group) == ("Trần Thị Mỹ Hạnh", "Tổ TP")
    with pytest.raises(DelegateListError):
        parse_delegate_xlsx(b"PK\x03\x04 not really a workbook")


def test_importing_a_row_registers_it_once_and_a_changed_row_is_an_edit() -> None:
    (row, *_) = parse_delegate_rows(SAMPLE.read_text("utf-8"))
    (registered,) = decide_register_delegate(None, row)
    assert isinstance(registered, DelegateRegisteredV1) and registered.group == row.group
    current = Delegate(
        row.delegate_id, row.person_id, row.name, row.term, row.electoral_unit, row.group, row.role, row.organ
    )
    assert decide_register_delegate(current, row) == []
    moved = Delegate(
        row.delegate_id, row.person_id, row.name, row.term, row.electoral_unit, "Tổ cũ", row.role, row.organ
    )
    (edit,) = decide_register_delegate(moved, row)
    assert isinstance(edit, DelegateEditedV1) and edit.group == row.group and edit.name is None


def _asset(tags: dict[str, object]) -> AssetState:
    return AssetState("a1", dict(tags), 7)


def test_confirming_keeps_the_automatic_recognitions_and_correcting_resolves_registered_names() -> None:
    auto = [{"name": "Võ Minh Tuấn", "person_id": "p1", "role": "speaks", "kind": "chat-van", "setting": ""}]
    (confirmed,) = decide_speeches(_asset({"speech_auto": auto}), "a1", SpeechDecision(action="confirm"), Registry())
    assert isinstance(confirmed, AssetSpeechesEditedV1) and confirmed.confirmed
    assert [(s.name, s.person_id, s.kind) for s in confirmed.speeches] == [("Võ Minh Tuấn", "p1", "chat-van")]
    registry = Registry([Person("p-hanh", "Trần Thị Mỹ Hạnh")])
    fix = SpeechDecision(action="correct", speeches=[HandSetSpeech(name="Tran Thi My Hanh", kind="thao-luan")])
    (corrected,) = decide_speeches(_asset({"speech_auto": auto}), "a1", fix, registry)
    assert isinstance(corrected, AssetSpeechesEditedV1) and not corrected.confirmed
    assert [(s.name, s.person_id) for s in corrected.speeches] == [("Trần Thị Mỹ Hạnh", "p-hanh")]
    assert refusal(lambda: decide_speeches(_asset({}), "a1", SpeechDecision(action="confirm"), registry)).status == 409
    assert refusal(lambda: decide_speeches(None, "a1", fix, registry)).status == 404
    assert decide_speeches(_asset({"speech_auto": auto}), "a1", SpeechDecision(action="reset"), registry) == []


def test_a_confirmed_or_kept_speaker_keeps_the_taggers_evidence_with_the_archivists_note_beside_it() -> None:
    evidence = "Đại biểu Võ Minh Tuấn chất vấn về tiến độ giải ngân"
    auto = SpeechTag(name="Võ Minh Tuấn", person_id="p1", known=True, role="speaks", kind="chat-van", evidence=evidence)
    other = SpeechTag(name="Lê Văn Hai", role="appears", evidence="cùng ông Lê Văn Hai")
    tagged = AssetTaggedV1(
        activity_type="ky-hop",
        activity_type_source="uploader",
        proposed_activity_type="ky-hop",
        confidence=0.9,
        speeches=(auto, other),
        vocabulary_version="v1",
    )
    doc = fold_speech_event({"asset_id": "a1"}, new_event(tagged, aggregate_id="a1", actor="tagger"))
    (confirm,) = decide_speeches(
        AssetState("a1", dict(doc), 2), "a1", SpeechDecision(action="confirm", note="Đã xem băng gốc"), Registry()
    )
    confirmed = fold_speech_event(doc, new_event(confirm, aggregate_id="a1", actor="luu-tru"))
    assert confirmed["speech_status"] == "confirmed" and confirmed["speech_note"] == "Đã xem băng gốc"
    assert [(s["name"], s["origin"], s["evidence"]) for s in confirmed["speeches"]] == [
        ("Võ Minh Tuấn", "manual", evidence),
        ("Lê Văn Hai", "manual", "cùng ông Lê Văn Hai"),
    ]
    # Corrected: the row kept as it was keeps its words; a changed role or a new name has none.
    fix = AssetSpeechesEditedV1(
        speeches=(
            HandSetSpeech(name="Võ Minh Tuấn", person_id="p1", kind="phat-bieu"),
            HandSetSpeech(name="Lê Văn Hai", role="answers", kind="tra-loi"),
            HandSetSpeech(name="Trần Thị Mỹ Hạnh"),
        ),
        note="Sửa theo biên bản",
    )
    corrected = fold_speech_event(confirmed, new_event(fix, aggregate_id="a1", actor="luu-tru"))
    assert [s["evidence"] for s in corrected["speeches"]] == [evidence, None, None]
    assert corrected["speech_note"] == "Sửa theo biên bản"
    reset = AssetSpeechesEditedV1(reset=True)
    handed_back = fold_speech_event(corrected, new_event(reset, aggregate_id="a1", actor="luu-tru"))
    assert handed_back["speech_note"] is None and handed_back["speech_status"] is None
    assert [(s["origin"], s["evidence"]) for s in handed_back["speeches"]] == [
        ("auto", evidence),
        ("auto", "cùng ông Lê Văn Hai"),
    ]


def _bucket(key: str, count: int, **aggs: object) -> dict[str, object]:
    return {"key": key, "doc_count": count, **aggs}


def _hits(*ids: str) -> dict[str, object]:
    return {"hits": {"hits": [{"_id": i} for i in ids]}}


def test_the_report_joins_buckets_with_delegates_and_sessions_into_the_checklist() -> None:
    delegates = [
        Delegate("d1", "p1", "Võ Minh Tuấn", "2021-2026", group="Tổ A"),
        Delegate("d2", "p2", "Đạo Văn Tâm", "2021-2026", group="Tổ B"),
    ]
    sessions = [Activity("s1", "Kỳ họp thứ 7", "ky-hop", __import__("datetime").date(2023, 7, 11), term="2021-2026")]
    p = ReportParams(term="2021-2026")
    body = report_body(p, ["p1", "p2"], ["s1"], visible=None)
    assert body["size"] == 0 and body["query"]["bool"]["filter"] == [{"term": {"term": "2021-2026"}}]
    kinds = {"buckets": [_bucket("chat-van", 2)]}
    response = {
        "aggregations": {
            "speeches": {
                "spoke": {
                    "people": {
                        "buckets": [
                            _bucket(
                                "p1",
                                2,
                                kinds=kinds,
                                sessions={"buckets": [_bucket("s1", 2, kinds=kinds, evidence=_hits("a1", "a2"))]},
                                last={"value_as_string": "2023-07-11T02:00:00.000Z"},
                                evidence=_hits("a1", "a2"),
                            )
                        ]
                    }
                },
                "plenary": {
                    "sessions": {
                        "buckets": [_bucket("s1", 1, people={"buckets": [_bucket("p1", 1, evidence=_hits("a1"))]})]
                    }
                },
            },
            "appearances": {
                "buckets": [
                    _bucket("p2", 3, last={"value_as_string": "2023-05-01T18:00:00.000Z"}, evidence=_hits("a9"))
                ]
            },
        }
    }
    report = shape_report(p, delegates, sessions, response)
    tuan, tam = report["delegates"]
    assert (tuan["speeches"], tuan["by_kind"], tuan["speech_evidence"]) == (2, {"chat-van": 2}, ["a1", "a2"])
    assert tuan["by_session"] == [
        {"session": "s1", "title": "Kỳ họp thứ 7", "count": 2, "by_kind": {"chat-van": 2}, "evidence": ["a1", "a2"]}
    ]
    assert (tam["speeches"], tam["appearances"], tam["last_recorded_at"]) == (0, 3, "2023-05-02")
    assert report["checklist"]["delegates_without_speech"] == [
        {"person_id": "p2", "name": "Đạo Văn Tâm", "group": "Tổ B"}
    ]
    assert report["checklist"]["groups_without_opinion"] == [
        {"session": "s1", "title": "Kỳ họp thứ 7", "groups": ["Tổ B"]}
    ]
    assert report_csv(report).decode("utf-8-sig").splitlines()[1].startswith("Võ Minh Tuấn,Tổ A,,0,0,2,2,")
    sheets = load_workbook(io.BytesIO(report_xlsx(report)), read_only=True).sheetnames
    assert sheets == ["Đại biểu", "Tổ theo kỳ họp", "Chỉ tiêu"]


def test_a_term_without_delegates_reports_nothing_counted_and_no_target_met_or_missed() -> None:
    report = shape_report(ReportParams(term="2026-2031"), [], [], NOTHING_COUNTED)
    assert report["delegates"] == [] and report["totals"]["delegates"] == 0
    assert report["checklist"]["delegates_without_speech"] == [] and report["sessions"] == []
    # Not "every delegate has spoken": there is nobody to have spoken yet.
    assert report["checklist"]["every_delegate_has_spoken"] is None
    assert report["checklist"]["every_group_at_every_session"] is None
