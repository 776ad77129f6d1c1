"""The catalogue's commands, as the API receives them (request bodies)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.fields import ActivityTitle, Caption, Day, Instant, Line, Lines, Names, Note, Title
from shared.policy import Restriction


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Text fields follow the input contract (shared/fields.py): bounded, NFC, no control
# characters, not blank where required: refused here, before any event is decided.


class EditMetadata(_Command):
    title: Title | None = None
    caption: Caption | None = None
    activity_type: str | None = Field(default=None, max_length=64)
    term: str | None = Field(default=None, max_length=64)
    people: Names | None = None
    organisations: Lines | None = None
    reset: list[str] = Field(default_factory=list, max_length=10)
    note: Note = ""


class CreateActivity(_Command):
    title: ActivityTitle
    activity_type: str = Field(max_length=64)
    term: str | None = Field(default=None, max_length=64)
    start_date: Day
    end_date: Day | None = None
    place: Line = ""
    organs: Lines = ()


class EditActivity(_Command):
    title: ActivityTitle | None = None
    activity_type: str | None = Field(default=None, max_length=64)
    term: str | None = Field(default=None, max_length=64)
    start_date: Day | None = None
    end_date: Day | None = None
    place: Line | None = None
    organs: Lines | None = None


class MergeActivity(_Command):
    into_activity_id: str = Field(max_length=64)


class AssignActivity(_Command):
    activity_id: str | None = Field(max_length=64)


class Classify(_Command):
    text: str = Field(max_length=50_000)


class RequestRetag(_Command):
    reason: Note = ""


class RetryProcessing(_Command):
    note: Note = ""


# Publishing (xuất bản). Moments are ISO 8601, with an offset or without one in
# Vietnam time (Asia/Ho_Chi_Minh); they are held in UTC.


class Publish(_Command):
    """Publish an asset (or each asset of an activity), or change its window or restriction."""

    # None: at once, on no replica's clock (an asset already published keeps its publish_at).
    publish_at: Instant | None = None
    # None: no end.
    unpublish_at: Instant | None = None
    # None: the asset keeps its restriction (a new upload is internal); publishing never widens it silently.
    restriction: Restriction | None = None
    note: Note = ""


class Unpublish(_Command):
    reason: Note = ""


class SetRestriction(_Command):
    restriction: Restriction
    note: Note = ""
