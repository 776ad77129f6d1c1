"""Who speaks in an asset: the parts of a speech recognition (no event of its own).

The tagger proposes them inside ``asset.tagged`` (``speeches``); archivists
confirm or correct them with ``asset.speeches_edited``, which wins
(``shared.speeches`` folds both).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.text import clean_text

# speaks: the person takes the floor (a delegate's speech when the person is a delegate);
# answers: the person answers questions (trả lời chất vấn, giải trình) — not a delegate's speech;
# appears: the person is named, without speaking.
SpeechRole = Literal["speaks", "answers", "appears"]
# The kind of taking the floor: phát biểu, thảo luận, chất vấn (đặt câu hỏi), trả lời.
SpeechKind = Literal["phat-bieu", "thao-luan", "chat-van", "tra-loi", ""]
SpeechSource = Literal["caption", "title", "ocr", "lower_third"]
SPEECH_KIND_LABELS = {
    "phat-bieu": "Phát biểu",
    "thao-luan": "Thảo luận",
    "chat-van": "Chất vấn",
    "tra-loi": "Trả lời chất vấn, giải trình",
}


class SpeechTag(BaseModel):
    """One recognition: who, in which role, from which words (the evidence) and how sure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    person_id: str | None = None
    known: bool = False
    role: SpeechRole
    kind: SpeechKind = ""
    # "group": said to be in a group discussion (thảo luận tổ), not in plenary.
    setting: Literal["", "group"] = ""
    source: SpeechSource = "caption"
    evidence: str = Field(default="", max_length=500)
    start: int = Field(default=0, ge=0)
    end: int = Field(default=0, ge=0)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("name", "evidence")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return clean_text(value)
