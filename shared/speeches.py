"""Who speaks in an asset, as its events say: the tagger's recognitions, unless an
archivist decided (confirmed or corrected) — the manual decision wins, also after a
re-tag or a replay, as for the other tags (``shared.tags``).

Both the search projection and the catalogue fold with :func:`fold_speech_event`.
The index gets one nested ``speeches`` entry per person with the asset's session,
term and date copied in, so the delegate report is a handful of Elasticsearch
aggregations (per person, per session, per kind) rather than a walk over assets.
"""

from __future__ import annotations

from typing import Any

from shared.events.delegates import AssetSpeechesEditedV1, HandSetSpeech
from shared.events.envelope import EventEnvelope
from shared.events.tagging import AssetTaggedV1
from shared.text import clean_text

SESSION_TYPE = "ky-hop"


def _same_recognition(hand: HandSetSpeech, auto: dict[str, Any]) -> bool:
    """The archivist kept this recognition of the tagger's: the same person in the same role."""
    if hand.role != auto.get("role"):
        return False
    if hand.person_id and auto.get("person_id"):
        return bool(hand.person_id == auto["person_id"])
    return bool(clean_text(hand.name).casefold() == clean_text(str(auto.get("name") or "")).casefold())


def _manual(p: AssetSpeechesEditedV1, auto: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The archivist's list; a row that keeps one of the tagger's recognitions keeps its
    evidence (the words it was read from), so a confirmation loses nothing. The note is the
    archivist's own, kept beside it (``speech_note``)."""
    rows = []
    for s in p.speeches:
        kept = next((a for a in auto if _same_recognition(s, a)), None)
        rows.append(
            {
                "name": s.name,
                "person_id": s.person_id,
                "role": s.role,
                "kind": s.kind if s.role != "appears" else "",
                "setting": "" if s.plenary else "group",
                "evidence": str(kept.get("evidence") or "") if kept else "",
                "confidence": 1.0,
            }
        )
    return rows


def fold_speech_event(doc: dict[str, Any], event: EventEnvelope) -> dict[str, Any]:
    """Fold one asset event into the speech fields of ``doc`` (returns a new dict).

    Every event re-derives the indexed entries, since they carry the asset's
    activity, date and term, which other events change.
    """
    out = dict(doc)
    fold_speech_event_into(out, event)
    return out


def fold_speech_event_into(out: dict[str, Any], event: EventEnvelope) -> None:
    """:func:`fold_speech_event` changing ``out`` itself (a document its caller owns; values
    are replaced, never changed in place, so they may be shared with other documents)."""
    if event.type == AssetTaggedV1.EVENT_TYPE:
        p = event.typed_payload()
        assert isinstance(p, AssetTaggedV1)
        out["speech_auto"] = [s.model_dump() for s in p.speeches]
    elif event.type == AssetSpeechesEditedV1.EVENT_TYPE:
        e = event.typed_payload()
        assert isinstance(e, AssetSpeechesEditedV1)
        if e.reset:
            out["speech_manual"] = None
            out["speech_status"] = None
        else:
            out["speech_manual"] = _manual(e, list(out.get("speech_auto") or []))
            out["speech_status"] = "confirmed" if e.confirmed else "corrected"
        out.update(
            speech_note=e.note or None,
            speeches_edited_by=event.actor,
            speeches_edited_at=event.occurred_at.isoformat(),
        )
    elif "speech_auto" not in out and "speech_manual" not in out:
        return  # nothing about speech yet: no fields to derive
    manual = out.get("speech_manual")
    effective: list[dict[str, Any]] = manual if manual is not None else list(out.get("speech_auto") or [])
    origin = "manual" if manual is not None else "auto"
    in_session = out.get("activity_type") == SESSION_TYPE
    out["speeches"] = [
        {
            "person_id": s.get("person_id"),
            "name": s.get("name"),
            "role": s.get("role"),
            "kind": s.get("kind") or None,
            "plenary": bool(s.get("role") == "speaks" and in_session and s.get("setting") != "group"),
            "confidence": s.get("confidence"),
            "origin": origin,
            "evidence": s.get("evidence") or None,
            "asset_id": out.get("asset_id") or event.aggregate_id,
            "activity_id": out.get("activity_id"),
            "term": out.get("term"),
            "recorded_at": out.get("recorded_at"),
        }
        for s in effective
    ]
    out["speaker_ids"] = sorted({s["person_id"] for s in effective if s.get("role") == "speaks" and s.get("person_id")})
    seen = {s["person_id"] for s in effective if s.get("person_id")}
    out["appearing_ids"] = sorted(seen | set(out.get("person_ids") or []))


# Index fields the speech fold writes (merged into the search service's asset mapping).
SPEECH_MAPPINGS: dict[str, Any] = {
    "speeches": {
        "type": "nested",
        "properties": {
            "person_id": {"type": "keyword"},
            "name": {"type": "keyword"},
            "role": {"type": "keyword"},
            "kind": {"type": "keyword"},
            "plenary": {"type": "boolean"},
            "confidence": {"type": "float"},
            "origin": {"type": "keyword"},
            "evidence": {"type": "keyword", "index": False, "doc_values": False},
            "asset_id": {"type": "keyword"},
            "activity_id": {"type": "keyword"},
            "term": {"type": "keyword"},
            "recorded_at": {"type": "date"},
        },
    },
    "speaker_ids": {"type": "keyword"},
    "appearing_ids": {"type": "keyword"},
    "speech_status": {"type": "keyword"},
    # The archivist's note on their last decision (shown beside the tagger's evidence).
    "speech_note": {"type": "keyword", "index": False, "doc_values": False},
    "speeches_edited_by": {"type": "keyword"},
    "speeches_edited_at": {"type": "date"},
    # The tagger's recognitions and the archivist's decision, kept for the fold (not searched).
    "speech_auto": {"type": "object", "enabled": False},
    "speech_manual": {"type": "object", "enabled": False},
}
