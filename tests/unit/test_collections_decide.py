"""Collections without servers: the fold, the pure decisions, the search clause, the export's parts."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from services.catalogue.collections import (
    MAX_HAND_MEMBERS,
    CreateCollection,
    EditCollection,
    ExcludeAsset,
    PlaceAsset,
    decide_create,
    decide_edit,
    decide_exclude,
    decide_lift_exclusion,
    decide_place,
    decide_remove,
)
from services.search.collection_scope import NOTHING, collection_clause, scoped
from services.search.export import (
    ExportItem,
    IterReader,
    Progress,
    Source,
    caption_lines,
    media_source,
    write_contact_sheet,
    zip_chunks,
)
from shared.collections import Collection, Member, fold_collection
from shared.events.collections import CollectionKind, SavedSearch
from shared.events.envelope import new_event
from shared.events.models import EventPayload
from shared.ports import StoredEvent
from shared.taxonomy import activity_label
from tests.conftest import refusal

A, B, C = ("a" + c * 32 for c in "123")


def history(*payloads: EventPayload, collection_id: str = "c1") -> list[StoredEvent]:
    out = []
    for n, payload in enumerate(payloads, 1):
        event = new_event(payload, aggregate_id=collection_id, actor="luu-tru")
        out.append(StoredEvent(n, event.subject, event))
    return out


def created(**extra: Any) -> list[EventPayload]:
    return list(decide_create([], CreateCollection(kind=CollectionKind.ANNUAL, title="Tổng kết năm 2025", **extra)))


def state(*payloads: EventPayload) -> Collection:
    folded = fold_collection(history(*payloads))
    assert folded is not None
    return folded


def test_hand_members_fold_in_position_order_with_their_notes_and_a_move_goes_in_front() -> None:
    base = state(*created())
    placed = decide_place(base, "c1", [PlaceAsset(asset_id=a, note=f"n{a[1]}") for a in (A, B, C)], {A, B, C}, None)
    moved = decide_place(state(*created(), *placed), "c1", [PlaceAsset(asset_id=C, position=0)], {C}, None)
    folded = state(*created(), *placed, *moved)
    assert [m.asset_id for m in folded.ordered_members()] == [C, A, B]
    assert folded.members[C].note == "" and folded.members[A].note == "n1"


def test_placing_an_asset_where_it_already_is_decides_nothing_and_an_unknown_asset_is_refused() -> None:
    placed = decide_place(state(*created()), "c1", [PlaceAsset(asset_id=A)], {A}, None)
    again = decide_place(state(*created(), *placed), "c1", [PlaceAsset(asset_id=A)], {A}, None)
    assert list(again) == []
    assert refusal(lambda: decide_place(state(*created()), "c1", [PlaceAsset(asset_id=B)], set(), None)).status == 404


def test_a_collection_holds_at_most_its_bound_of_hand_members() -> None:
    full = replace(
        state(*created()), members={f"a{n:032x}": Member(f"a{n:032x}", n, "", n) for n in range(MAX_HAND_MEMBERS)}
    )
    refused = refusal(lambda: decide_place(full, "c1", [PlaceAsset(asset_id=A)], {A}, None))
    assert refused.code == "collection_too_large"
    assert list(
        decide_place(full, "c1", [PlaceAsset(asset_id="a" + "0" * 32, note="vẫn được sửa")], {"a" + "0" * 32}, None)
    )


def test_an_exclusion_takes_a_hand_member_out_and_lifting_it_gives_the_search_back_its_say() -> None:
    placed = decide_place(state(*created()), "c1", [PlaceAsset(asset_id=A)], {A}, None)
    excluded = decide_exclude(state(*created(), *placed), "c1", ExcludeAsset(asset_id=A, note="trùng"), {A}, None)
    folded = state(*created(), *placed, *excluded)
    assert A not in folded.members and folded.excluded == {A: "trùng"}
    lifted = decide_lift_exclusion(folded, "c1", A, None)
    assert state(*created(), *placed, *excluded, *lifted).excluded == {}


def test_removing_what_was_not_put_in_by_hand_is_refused_bilingually() -> None:
    refused = refusal(lambda: decide_remove(state(*created()), "c1", A, None))
    assert refused.status == 404 and "loại trừ" in refused.message_vi and "exclude" in refused.message_en


def test_a_stale_if_match_is_a_409_and_a_missing_collection_a_404() -> None:
    current = state(*created())
    assert (
        refusal(lambda: decide_place(current, "c1", [PlaceAsset(asset_id=A)], {A}, current.sequence + 1)).status == 409
    )
    assert refusal(lambda: decide_edit(None, "c9", EditCollection(title="Mới"), None)).status == 404


def test_an_edit_changes_only_what_it_names_and_can_drop_the_saved_search() -> None:
    start = created(saved_search=SavedSearch(q="tiếp xúc cử tri"), term="2021-2026")
    edited = decide_edit(state(*start), "c1", EditCollection(title="Tổng kết năm 2025 (bổ sung)"), None)
    folded = state(*start, *edited)
    assert folded.title == "Tổng kết năm 2025 (bổ sung)" and folded.term == "2021-2026"
    assert folded.saved_search is not None and folded.saved_search.q == "tiếp xúc cử tri"
    dropped = decide_edit(folded, "c1", EditCollection(drop_saved_search=True), None)
    assert state(*start, *edited, *dropped).saved_search is None


def test_a_saved_search_refuses_unknown_codes_and_reversed_ranges() -> None:
    with pytest.raises(ValidationError):
        SavedSearch(activity_type=("khong-co",))
    with pytest.raises(ValidationError):
        SavedSearch(duration_min=10, duration_max=5)
    assert (
        refusal(lambda: decide_create([], CreateCollection(kind=CollectionKind.TERM, title="X", term="1999"))).status
        == 422
    )


def test_the_search_clause_is_hand_members_or_the_saved_search_never_an_exclusion() -> None:
    assert collection_clause(state(*created())) == NOTHING
    placed = decide_place(
        state(*created(saved_search=SavedSearch(kind=("photo",)))), "c1", [PlaceAsset(asset_id=A)], {A}, None
    )
    excluded = decide_exclude(
        state(*created(saved_search=SavedSearch(kind=("photo",))), *placed), "c1", ExcludeAsset(asset_id=B), {B}, None
    )
    clause = collection_clause(state(*created(saved_search=SavedSearch(kind=("photo",))), *placed, *excluded))["bool"]
    assert clause["should"][0] == {"ids": {"values": [A]}}
    assert {"terms": {"kind": ["photo"]}} in clause["should"][1]["bool"]["filter"]
    assert clause["must_not"] == [{"ids": {"values": [B]}}] and clause["minimum_should_match"] == 1
    visible = {"term": {"restriction": "public"}}
    assert scoped(visible, NOTHING) == {"bool": {"filter": [visible, NOTHING]}}
    assert scoped(None, NOTHING) is NOTHING and scoped(visible, None) is visible


DOC = {
    "asset_id": A,
    "title": "Kỳ họp thứ 7 HĐND tỉnh",
    "caption": unicodedata.normalize("NFC", "Đại biểu Nguyễn Thị Hường chất vấn về giải phóng mặt bằng"),
    "recorded_at": "2025-07-09T02:00:00+00:00",
    "activity_type": "ky-hop",
    "people": ["Nguyễn Thị Hường"],
    "kind": "photo",
    "sha256": "f" * 64,
    "size_bytes": 10,
    "original_filename": "IMG_01.JPG",
    "renditions": {"web": {"bucket": "r", "key": "a/web.jpg", "size_bytes": 5}},
}


def test_the_contact_sheet_prints_the_vietnamese_captions_dates_activity_and_people(tmp_path: Path) -> None:
    item = ExportItem(DOC, "hand")
    assert caption_lines(item)[2] == f"09/07/2025 · {activity_label('ky-hop')}"
    path = tmp_path / "sheet.pdf"
    write_contact_sheet("Tổng kết năm 2025", [item] * 10, lambda _: None, path)
    reader = PdfReader(path)
    text = unicodedata.normalize("NFC", " ".join(" ".join(p.extract_text() or "" for p in reader.pages).split()))
    assert len(reader.pages) == 2  # nine to a page
    for line in caption_lines(item):
        assert line in text


def test_originals_and_web_renditions_are_named_in_order_and_the_zip_streams_what_it_is_given() -> None:
    item = ExportItem(DOC, "hand")
    original = media_source(item, "original", "mam-originals", 3)
    web = media_source(item, "web", "mam-originals", 3)
    assert original is not None and web is not None
    assert original.key == f"sha256/ff/ff/{'f' * 64}" and original.arcname == "media/0003-Kỳ-họp-thứ-7-HĐND-tỉnh.jpg"
    assert (web.bucket, web.key, web.arcname) == ("r", "a/web.jpg", "media/0003-Kỳ-họp-thứ-7-HĐND-tỉnh.jpg")
    progress = Progress(total=2)
    parts = {"k1": [b"x" * 1000, b"y" * 10], "k2": [b"z" * 5]}
    sources = [Source("b", k, f"media/{k}.bin", 0) for k in parts]
    zipped = IterReader(zip_chunks(sources, [], lambda s: iter(parts[s.key]), progress)).read()
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert archive.read("media/k1.bin") == b"x" * 1000 + b"y" * 10
        assert archive.read("media/k2.bin") == b"z" * 5
    assert progress.done == 2 and progress.bytes_out == len(zipped)
