"""Tagger domain logic: from an ingested asset (and its on-screen text) to a
proposal, plus the activities read model. Plain functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Literal

from services.tagger.speech import find_speeches, merge_speeches
from shared.activities import Activity
from shared.events.models import AssetIngestedV1
from shared.events.speech import SpeechSource
from shared.events.tagging import (
    AssetTaggedV1,
    PersonTag,
    PhraseMatch,
)
from shared.people import Registry, find_people
from shared.taxonomy import (
    LOCAL_TZ,
    term_by_code,
    term_for_instant,
)
from shared.text import fold
from shared.vocabulary import FALLBACK_TYPE, Vocabulary, classify, find_organisations, load_vocabulary

_TERM_IN_TEXT = re.compile(r"nhiem ky\s*(\d{4})\s*[-–]\s*(\d{4})")
# Words too common in council captions to say two texts are about the same thing.
_STOPWORDS = frozenset(
    "hdnd hoi dong nhan dan tinh thanh pho huyen xa cua va cac voi ve tai trong nam thu ngay thang "
    "nhiem ky khoa dai bieu thuong truc ban".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", fold(text)) if w not in _STOPWORDS and len(w) > 1}


def suggest_activity(activities: list[Activity], day: date | None, text: str, activity_type: str) -> str | None:
    """The activity a new asset most likely belongs to: same day, then matching text.

    Candidates must cover the recording day; among them the one sharing most
    content words (and the activity type) wins. Nothing on that day → None.
    """
    if day is None:
        return None
    words = _content_words(text)
    best: tuple[float, str] | None = None
    for act in activities:
        if act.merged_into or not act.covers(day):
            continue
        overlap = len(words & _content_words(act.title))
        score = overlap + (2.0 if act.activity_type == activity_type else 0.0)
        if score >= 2.0 and (best is None or score > best[0]):
            best = (score, act.activity_id)
    return best[1] if best else None


def term_from(recorded_day_term: str | None, text: str) -> tuple[str | None, Literal["recorded_at", "text", "none"]]:
    """The recording date decides; without one, a "nhiệm kỳ 2021 - 2026" in the text does."""
    if recorded_day_term:
        return recorded_day_term, "recorded_at"
    for start, end in _TERM_IN_TEXT.findall(fold(text)):
        term = term_by_code(f"{start}-{end}")
        if term is not None:
            return term.code, "text"
    return None, "none"


def asset_text(asset: AssetIngestedV1, ocr_text: str = "") -> str:
    return "\n".join(t for t in (asset.title, asset.caption, ocr_text) if t)


def propose_tags(
    asset: AssetIngestedV1,
    *,
    ocr_text: str = "",
    ocr_frames: int = 0,
    ocr_error: str = "",
    registry: Registry,
    activities: Sequence[Activity] = (),
    vocabulary: Vocabulary | None = None,
    cause: Literal["ingested", "retag"] = "ingested",
) -> AssetTaggedV1:
    """Everything the tagger proposes for one asset, with the reasons."""
    vocab = vocabulary or load_vocabulary()
    text = asset_text(asset, ocr_text)
    result = classify(text, vocab)
    uploader_chose = asset.activity_type != FALLBACK_TYPE
    effective = asset.activity_type if uploader_chose else result.activity_type
    day_term = term_for_instant(asset.recorded_at) if asset.recorded_at else None
    term, term_source = term_from(day_term.code if day_term else None, text)
    orgs = find_organisations("\n".join((text, asset.source_org)), vocab)
    people: dict[str, PersonTag] = {}
    for source, part in (("title", asset.title), ("caption", asset.caption), ("ocr", ocr_text)):
        for person in find_people(part, registry, source):
            people.setdefault(fold(person.name), person)
    # On-screen text of a clip is its lower-thirds: the person they name is the one talking.
    screen: SpeechSource = "lower_third" if asset.kind.value == "video" else "ocr"
    speeches = merge_speeches(
        find_speeches(asset.title, registry, "title"),
        find_speeches(asset.caption, registry, "caption"),
        find_speeches(ocr_text, registry, screen) if ocr_text else [],
    )
    day = asset.recorded_at.astimezone(LOCAL_TZ).date() if asset.recorded_at else None
    return AssetTaggedV1(
        activity_type=effective,
        activity_type_source="uploader" if uploader_chose else "classifier",
        proposed_activity_type=result.activity_type,
        confidence=result.confidence,
        matched_phrases=tuple(
            PhraseMatch(phrase=m.phrase, activity_type=m.activity_type, weight=m.weight) for m in result.matched
        ),
        term=term,
        term_source=term_source,
        organisations=tuple(o.label_vi for o in orgs),
        people=tuple(people.values()),
        speeches=tuple(speeches),
        ocr_text=ocr_text,
        ocr_frames=ocr_frames,
        ocr_error=ocr_error,
        suggested_activity_id=suggest_activity(list(activities), day, text, effective),
        vocabulary_version=vocab.version,
        cause=cause,
    )
