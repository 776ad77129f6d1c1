"""Bulk edit's pure parts: one asset's share of the edit (only what it lacks by hand, names
added beside those there, refused when someone edited it by hand since it was seen — not
when the system did), and the web form sending only the fields the archivist set."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from starlette.datastructures import FormData

from services.catalogue.bulk import BulkEdit, decide_bulk_edit
from services.web.bulk import _changes
from shared.commands import Refused
from shared.events.envelope import new_event
from shared.events.models import EventPayload
from shared.events.tagging import AssetMetadataEditedV1, AssetTaggedV1
from shared.ports import StoredEvent
from tests.conftest import refusal
from tests.search_corpus import ingested

ASSET = "a" + "1" * 32


def history(*payloads: tuple[int, EventPayload, str]) -> list[StoredEvent]:
    """The asset's ingest at sequence 1, then (sequence, payload, actor) events."""
    first = ingested(ASSET, "Ảnh kỳ họp")
    out = [StoredEvent(1, first.subject, first)]
    for sequence, payload, actor in payloads:
        event = new_event(payload, aggregate_id=ASSET, actor=actor)
        out.append(StoredEvent(sequence, event.subject, event))
    return out


def tagged(**fields: Any) -> AssetTaggedV1:
    base = {
        "activity_type": "ky-hop",
        "activity_type_source": "classifier",
        "proposed_activity_type": "ky-hop",
        "confidence": 0.5,
        "vocabulary_version": "test",
    }
    return AssetTaggedV1.model_validate(base | fields)


def edited(**fields: Any) -> AssetMetadataEditedV1:
    return AssetMetadataEditedV1.model_validate(fields)


def test_only_what_an_asset_lacks_by_hand_is_decided_and_names_are_added_beside_the_others() -> None:
    edit = BulkEdit(asset_ids=[ASSET], activity_type="ky-hop", term="2021-2026", people_add=["Trần Thị Hoa"])
    by_hand = history((2, edited(activity_type="ky-hop", people=["Nguyễn Văn Tâm"]), "luu-tru"))
    [event] = decide_bulk_edit(by_hand, ASSET, edit, None)
    assert isinstance(event, AssetMetadataEditedV1)
    assert event.activity_type is None and event.term == "2021-2026"
    assert event.people == ("Nguyễn Văn Tâm", "Trần Thị Hoa")
    # The tagger's value equal to the bulk's is still set by hand: a re-tag will not move it.
    guessed = history((2, tagged(term="2021-2026"), "tagger"))
    [event] = decide_bulk_edit(guessed, ASSET, edit, None)
    assert isinstance(event, AssetMetadataEditedV1) and (event.activity_type, event.term) == ("ky-hop", "2021-2026")
    has_it_all = history((2, edited(activity_type="ky-hop", term="2021-2026", people=["Trần Thị Hoa"]), "luu-tru"))
    assert decide_bulk_edit(has_it_all, ASSET, edit, None) == []


def test_an_asset_edited_by_hand_since_it_was_seen_is_refused_in_vietnamese_but_not_one_the_system_changed() -> None:
    edit = BulkEdit(asset_ids=[ASSET], term="2021-2026")
    since = history((5, tagged(), "tagger"), (9, edited(title="Tên mới"), "luu-tru-2"))
    changed = refusal(lambda: decide_bulk_edit(since, ASSET, edit, 7))
    assert changed.status == 409 and changed.code == "changed_meanwhile"
    assert "vừa được người khác sửa (luu-tru-2" in changed.message_vi
    assert decide_bulk_edit(since, ASSET, edit, 9)  # seen after that edit: decided
    # Only the tagger since (a re-tag, renditions): hand-set values win over it anyway.
    assert decide_bulk_edit(history((5, tagged(), "tagger")), ASSET, edit, 1)
    missing = refusal(lambda: decide_bulk_edit([], ASSET, edit, None))
    assert missing.status == 404
    with pytest.raises(Refused):  # an unknown activity type is refused per asset
        decide_bulk_edit(history(), ASSET, BulkEdit(asset_ids=[ASSET], activity_type="khong-co"), None)


def test_a_bulk_edit_must_change_something_and_holds_at_most_500_assets() -> None:
    with pytest.raises(ValidationError):
        BulkEdit(asset_ids=[ASSET])
    with pytest.raises(ValidationError):
        BulkEdit(asset_ids=[ASSET] * 501, term="2021-2026")


def test_the_web_form_sends_only_the_fields_set() -> None:
    form = FormData([("activity_type", ""), ("term", "2021-2026"), ("activity_id", ""), ("people_add", " A , ,B ")])
    assert _changes(form) == {"term": "2021-2026", "people_add": ["A", "B"]}
    assert _changes(FormData([("activity_id", "-")])) == {"activity_id": ""}  # taken out of their activity
    assert _changes(FormData([("activity_type", ""), ("note", "x")])) == {}
