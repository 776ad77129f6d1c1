"""How an asset's tags are read from its events: manual values always win.

Both the search projection and the tagger's own view fold events with
:func:`fold_tag_event`, so "an archivist's edit beats the machine, also after
a re-tag or a full replay" is one rule in one place. The document keeps the
automatic values (``auto``) and the hand-set ones (``manual``) side by side;
each effective field is ``manual`` if set, else ``auto``.
"""

from __future__ import annotations

from typing import Any

from shared.events.envelope import EventEnvelope
from shared.events.models import AssetIngestedV1
from shared.events.tagging import (
    EDITABLE_FIELDS,
    AssetActivityAssignedV1,
    AssetMetadataEditedV1,
    AssetRetagRequestedV1,
    AssetTaggedV1,
    AssetTaggingFailedV1,
)
from shared.taxonomy import activity_label, term_for_instant
from shared.text import fold

TAG_EVENT_TYPES = frozenset(
    {
        AssetIngestedV1.EVENT_TYPE,
        AssetTaggedV1.EVENT_TYPE,
        AssetMetadataEditedV1.EVENT_TYPE,
        AssetActivityAssignedV1.EVENT_TYPE,
        AssetTaggingFailedV1.EVENT_TYPE,
        AssetRetagRequestedV1.EVENT_TYPE,
    }
)


def fold_tag_event(doc: dict[str, Any], event: EventEnvelope) -> dict[str, Any]:
    """Fold one asset event into the tag fields of ``doc`` (returns a new dict)."""
    if event.type not in TAG_EVENT_TYPES:
        return doc
    out = dict(doc)
    fold_tag_event_into(out, event)
    return out


def fold_tag_event_into(out: dict[str, Any], event: EventEnvelope) -> None:
    """:func:`fold_tag_event` changing ``out`` itself (a document its caller owns; values
    are replaced, never changed in place, so they may be shared with other documents)."""
    if event.type not in TAG_EVENT_TYPES:
        return
    auto: dict[str, Any] = dict(out.get("auto") or {})
    manual: dict[str, Any] = dict(out.get("manual") or {})
    p = event.typed_payload()
    if isinstance(p, AssetIngestedV1):
        term = term_for_instant(p.recorded_at) if p.recorded_at else None
        auto.update(title=p.title, caption=p.caption, activity_type=p.activity_type, term=term.code if term else None)
        out.setdefault("tagging_status", "pending")  # the tagger has not answered yet
    elif isinstance(p, AssetTaggedV1):
        auto.update(
            activity_type=p.activity_type,
            term=p.term or auto.get("term"),
            people=[person.name for person in p.people],
            organisations=list(p.organisations),
        )
        out.update(
            proposed_activity_type=p.proposed_activity_type,
            activity_type_confidence=p.confidence,
            activity_type_source=p.activity_type_source,
            matched_phrases=[m.phrase for m in p.matched_phrases if m.activity_type == p.proposed_activity_type],
            new_people=[person.name for person in p.people if not person.known],
            person_ids=[person.person_id for person in p.people if person.person_id],
            ocr_text=p.ocr_text or None,
            ocr_text_folded=fold(p.ocr_text) if p.ocr_text else None,
            suggested_activity_id=p.suggested_activity_id,
            vocabulary_version=p.vocabulary_version,
            tagged_at=event.occurred_at.isoformat(),
            tagging_error=None,
            tagging_error_en=None,
            tagging_status="tagged",
        )
    elif isinstance(p, AssetMetadataEditedV1):
        for name in p.changed_fields():
            value = getattr(p, name)
            manual[name] = list(value) if isinstance(value, tuple) else value
        for name in p.reset:
            manual.pop(name, None)
        out.update(edited_by=event.actor, edited_at=event.occurred_at.isoformat())
    elif isinstance(p, AssetActivityAssignedV1):
        out.update(
            activity_id=p.activity_id,
            activity_title=p.activity_title or None,
            activity_title_folded=fold(p.activity_title) if p.activity_title else None,
        )
    elif isinstance(p, AssetTaggingFailedV1):
        out.update(tagging_error=f"{p.code}: {p.message}", tagging_error_en=p.message_en, tagging_status="failed")
    elif isinstance(p, AssetRetagRequestedV1):
        out.update(tagging_status="pending")  # the tagger answers with asset.tagged or asset.tagging_failed
    for name in EDITABLE_FIELDS:
        if name in manual:
            out[name] = manual[name]
        elif name in auto:
            out[name] = auto[name]
    if out.get("activity_type"):
        out["activity_label"] = activity_label(out["activity_type"])
    if out.get("people") is not None:
        # "people" is the keyword facet; "people_text" makes names searchable as words.
        out["people_text"] = " ; ".join(out["people"]) or None
        out["people_text_folded"] = fold(out["people_text"]) if out["people_text"] else None
    out.update(auto=auto, manual=manual, manual_fields=sorted(manual))


# Index fields the tag fold writes (merged into the search service's asset mapping).
# Text fields have a ``_folded`` twin, which the query side searches diacritic-free.
TAG_MAPPINGS: dict[str, Any] = {
    "proposed_activity_type": {"type": "keyword"},
    "activity_type_confidence": {"type": "float"},
    "activity_type_source": {"type": "keyword"},
    "matched_phrases": {"type": "keyword"},
    "people": {"type": "keyword"},
    "people_text": {"type": "text", "analyzer": "standard"},
    "people_text_folded": {"type": "text", "analyzer": "standard"},
    "person_ids": {"type": "keyword"},
    "new_people": {"type": "keyword"},
    "organisations": {"type": "keyword"},
    "ocr_text": {"type": "text", "analyzer": "standard"},
    "ocr_text_folded": {"type": "text", "analyzer": "standard"},
    "activity_id": {"type": "keyword"},
    "activity_title": {"type": "text", "analyzer": "standard"},
    "activity_title_folded": {"type": "text", "analyzer": "standard"},
    "suggested_activity_id": {"type": "keyword"},
    "vocabulary_version": {"type": "keyword"},
    "tagged_at": {"type": "date"},
    "tagging_error": {"type": "keyword", "ignore_above": 2048},
    "tagging_error_en": {"type": "keyword", "ignore_above": 2048},
    # pending (ingested or re-tag requested) → tagged | failed: the processing queue reads it.
    "tagging_status": {"type": "keyword"},
    "manual_fields": {"type": "keyword"},
    "edited_by": {"type": "keyword"},
    "edited_at": {"type": "date"},
    # Automatic and hand-set values kept for the fold (not searched).
    "auto": {"type": "object", "enabled": False},
    "manual": {"type": "object", "enabled": False},
}
