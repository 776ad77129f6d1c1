"""Payload models of delegates (đại biểu) per term and of archivists' speech decisions.

A delegate record is one person's seat in one term: the electoral unit (đơn vị
bầu cử) that elected them and the delegate group (Tổ đại biểu) they sit in.
The person themself is in the people registry (``person.registered``), so the
tagger recognises their name; the record says they are a delegate of the term.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.models import EventPayload, register_payload
from shared.events.speech import SpeechKind, SpeechRole
from shared.fields import Line, Note, PersonName
from shared.taxonomy import term_by_code


def _known_term(value: str) -> str:
    if term_by_code(value) is None:
        raise ValueError(f"unknown term code {value!r}")
    return value


class DelegateRegisteredV1(EventPayload):
    """A delegate of a term, e.g. imported from the council's list (CSV/XLSX)."""

    EVENT_TYPE: ClassVar[str] = "delegate.registered"
    SCHEMA_VERSION: ClassVar[int] = 1

    person_id: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: PersonName
    term: str
    electoral_unit: Line = ""
    group: Line = ""  # Tổ đại biểu
    role: Line = ""
    organ: Line = ""

    @field_validator("term")
    @classmethod
    def _term(cls, value: str) -> str:
        return _known_term(value)


class DelegateEditedV1(EventPayload):
    """Changed fields of a delegate record (None = unchanged), e.g. a re-import with a new group."""

    EVENT_TYPE: ClassVar[str] = "delegate.edited"
    SCHEMA_VERSION: ClassVar[int] = 1

    name: PersonName | None = None
    electoral_unit: Line | None = None
    group: Line | None = None
    role: Line | None = None
    organ: Line | None = None


class HandSetSpeech(BaseModel):
    """One speech as an archivist states it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PersonName
    person_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    role: SpeechRole = "speaks"
    kind: SpeechKind = "phat-bieu"
    plenary: bool = True


class AssetSpeechesEditedV1(EventPayload):
    """An archivist's decision on who speaks in an asset: it replaces the tagger's
    recognitions (confirmed as they were, or corrected), until ``reset`` hands back."""

    EVENT_TYPE: ClassVar[str] = "asset.speeches_edited"
    SCHEMA_VERSION: ClassVar[int] = 1

    speeches: tuple[HandSetSpeech, ...] = Field(default=(), max_length=100)
    confirmed: bool = False  # the tagger's recognitions were accepted as they were
    reset: bool = False
    note: Note = ""


for _model in (DelegateRegisteredV1, DelegateEditedV1, AssetSpeechesEditedV1):
    register_payload(_model)
