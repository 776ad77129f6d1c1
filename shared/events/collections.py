"""Payload models of collections (bộ sưu tập): the catalogues the Office opens for the
annual review, thematic reviews and the end-of-term review.

A collection holds assets put in by hand (each with its place in the order and a
note), or is defined by a saved search that stays live (what matches it now is in
it), with assets pinned (added by hand) or excluded by hand on top. The catalogue
appends these events; ``shared.collections`` folds them, the same way for the
catalogue's commands and for search, which expands a collection at query time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events.models import EventPayload, register_payload
from shared.fields import Caption, Day, Note, Title
from shared.taxonomy import ACTIVITY_TYPE_CODES, term_by_code


class CollectionKind(StrEnum):
    ANNUAL = "annual"  # tổng kết năm
    THEMATIC = "thematic"  # chuyên đề
    TERM = "term"  # nhiệm kỳ
    OTHER = "other"  # khác


KIND_LABELS_VI: dict[CollectionKind, str] = {
    CollectionKind.ANNUAL: "Tổng kết năm",
    CollectionKind.THEMATIC: "Chuyên đề",
    CollectionKind.TERM: "Nhiệm kỳ",
    CollectionKind.OTHER: "Khác",
}
ASSET_KINDS = frozenset({"video", "photo", "audio"})
# The bounds the search API puts on the same parameters (services/search/params.py).
MAX_DURATION_S = 1_000_000.0
MAX_HEIGHT = 100_000
AssetIdText = Annotated[str, Field(pattern=r"^a[0-9a-f]{32}$")]
SearchValue = Annotated[str, Field(min_length=1, max_length=300)]


def _known_term_code(value: str) -> str:
    if term_by_code(value) is None:
        raise ValueError(f"unknown term: {value}")
    return value


def _codes(values: tuple[str, ...], allowed: frozenset[str], what: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")
    return values


def _known_terms(values: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [v for v in values if term_by_code(v) is None]
    if unknown:
        raise ValueError(f"unknown term: {', '.join(unknown)}")
    return values


TermCode = Annotated[str, AfterValidator(_known_term_code)]


class SavedSearch(BaseModel):
    """A search kept with a collection: the query and filters of ``GET /v1/search``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    q: str = Field(default="", max_length=500)
    activity_type: Annotated[tuple[str, ...], Field(max_length=50)] = ()
    term: Annotated[tuple[str, ...], AfterValidator(_known_terms), Field(max_length=20)] = ()
    activity: Annotated[tuple[SearchValue, ...], Field(max_length=100)] = ()
    person: Annotated[tuple[SearchValue, ...], Field(max_length=100)] = ()
    organisation: Annotated[tuple[SearchValue, ...], Field(max_length=100)] = ()
    kind: Annotated[tuple[str, ...], Field(max_length=3)] = ()
    date_from: Day | None = None
    date_to: Day | None = None
    published: bool | None = None
    duration_min: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    duration_max: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    height_min: int | None = Field(default=None, ge=0, le=MAX_HEIGHT)
    height_max: int | None = Field(default=None, ge=0, le=MAX_HEIGHT)

    @field_validator("activity_type")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _codes(value, ACTIVITY_TYPE_CODES, "activity type")

    @field_validator("kind")
    @classmethod
    def _kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _codes(value, ASSET_KINDS, "kind")

    @model_validator(mode="after")
    def _ranges(self) -> SavedSearch:
        for lo, hi, name in (
            (self.date_from, self.date_to, "date"),
            (self.duration_min, self.duration_max, "duration"),
            (self.height_min, self.height_max, "height"),
        ):
            if lo is not None and hi is not None and lo > hi:  # type: ignore[operator]
                raise ValueError(f"{name}: the lower bound is above the upper bound")
        return self


class CollectionCreatedV1(EventPayload):
    """A collection opened: its kind, title, the term or year it reviews, and (optionally)
    the saved search that defines it."""

    EVENT_TYPE: ClassVar[str] = "collection.created"
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: CollectionKind
    title: Title
    term: TermCode | None = None
    year: int | None = Field(default=None, ge=1945, le=2100)
    description: Caption = ""
    saved_search: SavedSearch | None = None


class CollectionEditedV1(EventPayload):
    """Changed fields only; ``saved_search`` replaces the one before, ``drop_saved_search``
    turns the collection into a hand-made one (its hand members stay)."""

    EVENT_TYPE: ClassVar[str] = "collection.edited"
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: CollectionKind | None = None
    title: Title | None = None
    term: TermCode | None = None
    year: int | None = Field(default=None, ge=1945, le=2100)
    description: Caption | None = None
    saved_search: SavedSearch | None = None
    drop_saved_search: bool = False


class CollectionAssetAddedV1(EventPayload):
    """An asset put in by hand (in a saved-search collection: pinned), at ``position``
    (ascending; on a tie the one placed last comes first) with a note; again for the same
    asset moves it or changes its note."""

    EVENT_TYPE: ClassVar[str] = "collection.asset_added"
    SCHEMA_VERSION: ClassVar[int] = 1

    asset_id: AssetIdText
    position: int = Field(ge=0, le=1_000_000)
    note: Note = ""


class CollectionAssetRemovedV1(EventPayload):
    """An asset put in by hand taken out (a saved search may still bring it in)."""

    EVENT_TYPE: ClassVar[str] = "collection.asset_removed"
    SCHEMA_VERSION: ClassVar[int] = 1

    asset_id: AssetIdText


class CollectionAssetExcludedV1(EventPayload):
    """An asset kept out of the collection whatever the saved search says."""

    EVENT_TYPE: ClassVar[str] = "collection.asset_excluded"
    SCHEMA_VERSION: ClassVar[int] = 1

    asset_id: AssetIdText
    note: Note = ""


class CollectionExclusionLiftedV1(EventPayload):
    """A hand exclusion undone: the saved search decides again."""

    EVENT_TYPE: ClassVar[str] = "collection.exclusion_lifted"
    SCHEMA_VERSION: ClassVar[int] = 1

    asset_id: AssetIdText


for _model in (
    CollectionCreatedV1,
    CollectionEditedV1,
    CollectionAssetAddedV1,
    CollectionAssetRemovedV1,
    CollectionAssetExcludedV1,
    CollectionExclusionLiftedV1,
):
    register_payload(_model)
