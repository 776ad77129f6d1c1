"""The catalogue's commands, as the API receives them (request bodies)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EditMetadata(_Command):
    title: str | None = None
    caption: str | None = None
    activity_type: str | None = None
    term: str | None = None
    people: list[str] | None = None
    organisations: list[str] | None = None
    reset: list[str] = Field(default_factory=list)
    note: str = ""


# A blank title would be carried into every asset of the activity (search shows it).
ActivityTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class CreateActivity(_Command):
    title: ActivityTitle
    activity_type: str
    term: str | None = None
    start_date: date
    end_date: date | None = None
    place: str = ""
    organs: list[str] = Field(default_factory=list)


class EditActivity(_Command):
    title: ActivityTitle | None = None
    activity_type: str | None = None
    term: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    place: str | None = None
    organs: list[str] | None = None


class MergeActivity(_Command):
    into_activity_id: str


class AssignActivity(_Command):
    activity_id: str | None


class Classify(_Command):
    text: str = Field(max_length=50_000)


class RequestRetag(_Command):
    reason: str = ""
