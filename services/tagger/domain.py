"""Tagger domain logic: from an ingested asset (and its on-screen text) to a
proposal, plus the activities read model. Plain functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from services.tagger.people import Registry, find_people
from shared.events.models import AssetIngestedV1
from shared.events.tagging import (
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
    AssetTaggedV1,
    PersonTag,
    PhraseMatch,
)
from shared.eventstore import StoredEvent
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


@dataclass(frozen=True)
class Activity:
    """An activity as the tagger needs it (folded from ``activity.*`` events)."""

    activity_id: str
    title: str
    activity_type: str
    start_date: date
    end_date: date | None = None
    term: str | None = None
    place: str = ""
    organs: tuple[str, ...] = ()
    merged_into: str | None = None
    sequence: int = 0  # last stream sequence: the expected value for the next command

    def covers(self, day: date) -> bool:
        return self.start_date <= day <= (self.end_date or self.start_date)


@dataclass
class Activities:
    """All activities plus which asset sits in which: a rebuildable read model."""

    by_id: dict[str, Activity] = field(default_factory=dict)
    asset_activity: dict[str, str] = field(default_factory=dict)

    def apply(self, stored: StoredEvent) -> None:
        env = stored.envelope
        p = env.typed_payload()
        current = self.by_id.get(env.aggregate_id)
        if isinstance(p, ActivityCreatedV1):
            self.by_id[env.aggregate_id] = Activity(
                env.aggregate_id,
                p.title,
                p.activity_type,
                p.start_date,
                p.end_date,
                p.term,
                p.place,
                p.organs,
                sequence=stored.sequence,
            )
        elif isinstance(p, ActivityEditedV1) and current is not None:
            changes = {k: v for k, v in p.model_dump().items() if v is not None}
            if "organs" in changes:
                changes["organs"] = tuple(changes["organs"])
            self.by_id[env.aggregate_id] = replace(current, **changes, sequence=stored.sequence)
        elif isinstance(p, ActivityMergedV1) and current is not None:
            self.by_id[env.aggregate_id] = replace(current, merged_into=p.into_activity_id, sequence=stored.sequence)
        elif isinstance(p, AssetActivityAssignedV1):
            if p.activity_id is None:
                self.asset_activity.pop(env.aggregate_id, None)
            else:
                self.asset_activity[env.aggregate_id] = p.activity_id

    def resolve(self, activity_id: str) -> Activity | None:
        """Follow merges to the surviving activity."""
        seen: set[str] = set()
        current = self.by_id.get(activity_id)
        while current is not None and current.merged_into and current.activity_id not in seen:
            seen.add(current.activity_id)
            current = self.by_id.get(current.merged_into)
        return current

    def live(self) -> list[Activity]:
        return [a for a in self.by_id.values() if a.merged_into is None]

    def assets_of(self, activity_id: str) -> list[str]:
        return sorted(a for a, act in self.asset_activity.items() if act == activity_id)


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
        ocr_text=ocr_text,
        ocr_frames=ocr_frames,
        ocr_error=ocr_error,
        suggested_activity_id=suggest_activity(list(activities), day, text, effective),
        vocabulary_version=vocab.version,
        cause=cause,
    )
