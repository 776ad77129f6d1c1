"""The catalogue's decisions on delegates and on who speaks: pure functions from an
aggregate's state to the events to append, or a :class:`~shared.commands.Refused`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.catalogue.decide import AssetState, asset_not_found, payload_of
from shared.commands import Decision, Refused
from shared.delegates import Delegate, DelegateRow, changed_fields
from shared.events.delegates import AssetSpeechesEditedV1, DelegateEditedV1, DelegateRegisteredV1, HandSetSpeech
from shared.fields import Note
from shared.people import Registry


class SpeechDecision(BaseModel):
    """An archivist's word on who speaks in an asset.

    ``confirm``: the tagger's recognitions are right (kept as they are, even after a
    re-tag); ``correct``: these are the speeches; ``reset``: back to the tagger's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["confirm", "correct", "reset"]
    speeches: list[HandSetSpeech] = Field(default_factory=list, max_length=100)
    note: Note = ""


def decide_register_delegate(current: Delegate | None, row: DelegateRow) -> Decision:
    """A delegate seat from an imported row: new, changed (a re-import), or nothing (the same)."""
    if current is None:
        data = {
            "person_id": row.person_id,
            "name": row.name,
            "term": row.term,
            "electoral_unit": row.electoral_unit,
            "group": row.group,
            "role": row.role,
            "organ": row.organ,
        }
        return [payload_of(DelegateRegisteredV1, data)]
    changes = changed_fields(current, row)
    return [payload_of(DelegateEditedV1, changes)] if changes else []


def _resolved(speeches: Sequence[HandSetSpeech], registry: Registry) -> list[HandSetSpeech]:
    """Names given without an id get the registered person's id (and spelling), if any."""
    out = []
    for s in speeches:
        if s.person_id is None and (person := registry.lookup(s.name)) is not None:
            s = s.model_copy(update={"person_id": person.person_id, "name": person.name})
        out.append(s)
    return out


def decide_speeches(asset: AssetState | None, asset_id: str, decision: SpeechDecision, registry: Registry) -> Decision:
    """Confirm, correct or hand back the recognitions of who speaks in an asset."""
    if asset is None:
        raise asset_not_found(asset_id)
    if decision.action == "reset":
        if asset.tags.get("speech_manual") is None:
            return []  # nothing decided by hand: nothing to hand back
        return [payload_of(AssetSpeechesEditedV1, {"reset": True, "note": decision.note})]
    if decision.action == "confirm":
        if decision.speeches:
            raise Refused(
                "speeches_with_confirm",
                "Xác nhận giữ nguyên nhận dạng tự động: không gửi kèm danh sách (dùng 'correct' để sửa).",
                "Confirm keeps the automatic recognitions: send no list (use 'correct' to change them).",
            )
        auto: list[dict[str, Any]] = list(asset.tags.get("speech_auto") or [])
        if not auto:
            raise Refused(
                "nothing_to_confirm",
                f"Tư liệu {asset_id} chưa có nhận dạng người phát biểu nào để xác nhận.",
                f"Asset {asset_id} has no recognised speech to confirm.",
                status=409,
            )
        kept = [
            {
                "name": s["name"],
                "person_id": s.get("person_id"),
                "role": s["role"],
                "kind": s.get("kind") or ("phat-bieu" if s["role"] == "speaks" else ""),
                "plenary": s.get("setting") != "group",
            }
            for s in auto
        ]
        return [payload_of(AssetSpeechesEditedV1, {"speeches": kept, "confirmed": True, "note": decision.note})]
    speeches = [s.model_dump() for s in _resolved(decision.speeches, registry)]
    return [payload_of(AssetSpeechesEditedV1, {"speeches": speeches, "note": decision.note})]
