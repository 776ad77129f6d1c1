"""Bulk edit's pure parts: one asset's share of the edit (only what differs, names added
beside those there, refused when changed since seen), and the web form sending only the
fields the archivist set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.datastructures import FormData

from services.catalogue.bulk import BulkEdit, decide_bulk_edit
from services.catalogue.decide import AssetState
from services.web.bulk import _changes
from shared.commands import Refused
from shared.events.tagging import AssetMetadataEditedV1
from tests.conftest import refusal

ASSET = "a" + "1" * 32


def state(sequence: int = 7, **tags: object) -> AssetState:
    return AssetState(ASSET, dict(tags), sequence)


def test_only_what_an_asset_lacks_is_decided_and_names_are_added_beside_the_others() -> None:
    edit = BulkEdit(asset_ids=[ASSET], activity_type="ky-hop", term="2021-2026", people_add=["Trần Thị Hoa"])
    set_by_hand = state(activity_type="ky-hop", people=["Nguyễn Văn Tâm"], manual={"activity_type": "ky-hop"})
    [event] = decide_bulk_edit(set_by_hand, ASSET, edit, None)
    assert isinstance(event, AssetMetadataEditedV1)
    assert event.activity_type is None and event.term == "2021-2026"
    assert event.people == ("Nguyễn Văn Tâm", "Trần Thị Hoa")
    # The tagger's value equal to the bulk's is still set by hand: a re-tag will not move it.
    [event] = decide_bulk_edit(state(activity_type="ky-hop", term="2021-2026"), ASSET, edit, None)
    assert isinstance(event, AssetMetadataEditedV1) and (event.activity_type, event.term) == ("ky-hop", "2021-2026")
    manual = {"activity_type": "ky-hop", "term": "2021-2026"}
    has_it_all = state(term="2021-2026", people=["Trần Thị Hoa"], manual=manual)
    assert decide_bulk_edit(has_it_all, ASSET, edit, None) == []


def test_an_asset_changed_since_it_was_seen_or_missing_is_refused_in_vietnamese() -> None:
    edit = BulkEdit(asset_ids=[ASSET], term="2021-2026")
    changed = refusal(lambda: decide_bulk_edit(state(sequence=9), ASSET, edit, 7))
    assert (
        changed.status == 409
        and changed.code == "changed_meanwhile"
        and "vừa được người khác sửa" in changed.message_vi
    )
    assert decide_bulk_edit(state(sequence=7), ASSET, edit, 7)  # as seen: decided
    missing = refusal(lambda: decide_bulk_edit(None, ASSET, edit, None))
    assert missing.status == 404
    with pytest.raises(Refused):  # an unknown activity type is refused per asset
        decide_bulk_edit(state(), ASSET, BulkEdit(asset_ids=[ASSET], activity_type="khong-co"), None)


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
