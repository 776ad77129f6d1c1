"""Payload models of tagging, archivists' edits and activities.

Automatic tags (``asset.tagged``) and people's corrections
(``asset.metadata_edited``) are separate facts, so a re-tag can never erase a
correction: readers fold both and let the manual value win (``shared.tags``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.models import EventPayload, register_payload
from shared.events.speech import SpeechTag
from shared.fields import ActivityTitle, Caption, Day, Line, Lines, Names, Note, PersonName, Title
from shared.taxonomy import ACTIVITY_TYPE_CODES, term_by_code
from shared.text import clean_text


def _known_type(value: str | None) -> str | None:
    if value is not None and value not in ACTIVITY_TYPE_CODES:
        raise ValueError(f"unknown activity type code {value!r}")
    return value


def _known_term(value: str | None) -> str | None:
    if value is not None and term_by_code(value) is None:
        raise ValueError(f"unknown term code {value!r}")
    return value


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhraseMatch(_Part):
    """One vocabulary phrase found in the text: the "why" of a proposal."""

    phrase: str
    activity_type: str
    weight: float


class PersonTag(_Part):
    """A person seen in the caption or on screen; ``person_id`` None = not in the registry."""

    name: str
    role: str = ""
    person_id: str | None = None
    known: bool = False
    source: Literal["caption", "ocr", "title"] = "caption"

    @field_validator("name", "role")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return clean_text(value)


class AssetTaggedV1(EventPayload):
    """The tagger's proposal for an asset (replaced by the next ``asset.tagged``)."""

    EVENT_TYPE: ClassVar[str] = "asset.tagged"
    SCHEMA_VERSION: ClassVar[int] = 1

    # The automatic activity type: what the uploader chose, unless they left it
    # at "khac", then the classifier's proposal.
    activity_type: str
    activity_type_source: Literal["uploader", "classifier"]
    proposed_activity_type: str
    confidence: float = Field(ge=0.0, le=1.0)
    matched_phrases: tuple[PhraseMatch, ...] = ()
    term: str | None = None
    term_source: Literal["recorded_at", "text", "none"] = "none"
    organisations: tuple[str, ...] = ()
    people: tuple[PersonTag, ...] = ()
    # Who speaks, answers or is named, with the evidence (shared.events.speech); manual wins.
    speeches: tuple[SpeechTag, ...] = ()
    ocr_text: str = ""
    ocr_frames: int = 0
    ocr_error: str = ""
    suggested_activity_id: str | None = None
    vocabulary_version: str
    cause: Literal["ingested", "retag"] = "ingested"

    @field_validator("activity_type", "proposed_activity_type")
    @classmethod
    def _known_types(cls, value: str | None) -> str | None:
        return _known_type(value)

    @field_validator("term")
    @classmethod
    def _known_terms(cls, value: str | None) -> str | None:
        return _known_term(value)

    @field_validator("ocr_text")
    @classmethod
    def _nfc_ocr(cls, value: str) -> str:
        return "\n".join(clean_text(line) for line in value.splitlines() if line.strip())


class AssetTaggingFailedV1(EventPayload):
    """Tagging gave up on an asset after retries; the reason is for people to read."""

    EVENT_TYPE: ClassVar[str] = "asset.tagging_failed"
    SCHEMA_VERSION: ClassVar[int] = 1

    code: str
    message: str  # Vietnamese
    message_en: str
    attempts: int


class AssetRetagRequestedV1(EventPayload):
    """Someone (or a vocabulary change) asked for the asset to be tagged again."""

    EVENT_TYPE: ClassVar[str] = "asset.retag_requested"
    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Note = ""


# Fields an archivist can set by hand; each one then wins over automatic tags.
EDITABLE_FIELDS = ("title", "caption", "activity_type", "term", "people", "organisations")
EditableField = Literal["title", "caption", "activity_type", "term", "people", "organisations"]


class AssetMetadataEditedV1(EventPayload):
    """An archivist's correction: the fields given are set by hand (who = envelope actor).

    ``reset`` hands fields back to the automatic value.
    """

    EVENT_TYPE: ClassVar[str] = "asset.metadata_edited"
    SCHEMA_VERSION: ClassVar[int] = 1

    title: Title | None = None
    caption: Caption | None = None
    activity_type: str | None = None
    term: str | None = None
    people: Names | None = None
    organisations: Lines | None = None
    reset: tuple[EditableField, ...] = ()
    note: Note = ""

    @field_validator("activity_type")
    @classmethod
    def _known_types(cls, value: str | None) -> str | None:
        return _known_type(value)

    @field_validator("term")
    @classmethod
    def _known_terms(cls, value: str | None) -> str | None:
        return _known_term(value)

    def changed_fields(self) -> list[str]:
        return [name for name in EDITABLE_FIELDS if getattr(self, name) is not None]


class AssetActivityAssignedV1(EventPayload):
    """The asset belongs to an activity (``activity_id`` None: removed from it)."""

    EVENT_TYPE: ClassVar[str] = "asset.activity_assigned"
    SCHEMA_VERSION: ClassVar[int] = 1

    activity_id: str | None
    # Denormalised so the asset's index document can be searched by it.
    activity_title: str = ""
    previous_activity_id: str | None = None


class _ActivityFieldRules(EventPayload):
    """Validation shared by the payloads that set an activity's fields."""

    @field_validator("activity_type", check_fields=False)
    @classmethod
    def _known_types(cls, value: str | None) -> str | None:
        return _known_type(value)

    @field_validator("term", check_fields=False)
    @classmethod
    def _known_terms(cls, value: str | None) -> str | None:
        return _known_term(value)


class ActivityCreatedV1(_ActivityFieldRules):
    """A named occurrence: "Kỳ họp thứ 7 HĐND tỉnh khóa XI", a supervision visit…"""

    EVENT_TYPE: ClassVar[str] = "activity.created"
    SCHEMA_VERSION: ClassVar[int] = 1

    title: ActivityTitle
    activity_type: str
    term: str | None = None
    start_date: Day
    end_date: Day | None = None
    place: Line = ""
    organs: Lines = ()


class ActivityEditedV1(_ActivityFieldRules):
    """Changed fields of an activity (None = unchanged)."""

    EVENT_TYPE: ClassVar[str] = "activity.edited"
    SCHEMA_VERSION: ClassVar[int] = 1

    title: ActivityTitle | None = None
    activity_type: str | None = None
    term: str | None = None
    start_date: Day | None = None
    end_date: Day | None = None
    place: Line | None = None
    organs: Lines | None = None


class ActivityMergedV1(EventPayload):
    """This activity was a duplicate of another; its assets move there."""

    EVENT_TYPE: ClassVar[str] = "activity.merged"
    SCHEMA_VERSION: ClassVar[int] = 1

    into_activity_id: str


class PersonRegisteredV1(EventPayload):
    """A delegate or official added to the people registry (e.g. from a CSV import)."""

    EVENT_TYPE: ClassVar[str] = "person.registered"
    SCHEMA_VERSION: ClassVar[int] = 1

    name: PersonName
    role: Line = ""
    organ: Line = ""
    term: str | None = None


for _model in (
    AssetTaggedV1,
    AssetTaggingFailedV1,
    AssetRetagRequestedV1,
    AssetMetadataEditedV1,
    AssetActivityAssignedV1,
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    PersonRegisteredV1,
):
    register_payload(_model)
