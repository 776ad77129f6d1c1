"""The envelope around every domain event in the stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.models import EventPayload, payload_type_for, upcast
from shared.fields import STORED
from shared.ids import uuid7
from shared.subjects import event_subject

# Where an envelope keeps its validated payload (see EventEnvelope.typed_payload).
_TYPED_PAYLOAD = "_typed_payload"


class EventEnvelope(BaseModel):
    """A past-tense fact, as appended to the event store.

    ``payload`` is kept as a plain dict on the wire; ``typed_payload`` upcasts
    older schema versions on read, so stored events are never rewritten.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    type: str = Field(pattern=r"^[a-z]+\.[a-z_]+$")
    schema_version: int = Field(ge=1)
    aggregate_id: str
    occurred_at: datetime
    actor: str
    correlation_id: str
    causation_id: str | None = None
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @property
    def aggregate(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def event_name(self) -> str:
        return self.type.split(".", 1)[1]

    @property
    def subject(self) -> str:
        return event_subject(self.aggregate, self.aggregate_id, self.event_name)

    def typed_payload(self) -> EventPayload:
        """The payload as its current model, upcast from older versions.

        Validated once per envelope (the search fold asks for it several times per
        event): the result is kept beside the fields, for this very payload, type and
        version only, so a ``model_copy`` with another of them validates afresh.
        """
        key = (self.type, self.schema_version)
        kept = self.__dict__.get(_TYPED_PAYLOAD)
        if kept is not None and kept[0] is self.payload and kept[1] == key:
            return cast(EventPayload, kept[2])
        version, data = upcast(self.type, self.schema_version, self.payload)
        # Read leniently: an event stored before today's input contract is brought within it.
        typed = payload_type_for(self.type, version).model_validate(data, context=STORED)
        self.__dict__[_TYPED_PAYLOAD] = (self.payload, key, typed)  # not a field: never dumped or compared
        return typed

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> EventEnvelope:
        return cls.model_validate_json(data)


def new_event(
    payload: EventPayload,
    *,
    aggregate_id: str,
    actor: str,
    correlation_id: str | None = None,
    causation: EventEnvelope | None = None,
    event_id: str | None = None,
) -> EventEnvelope:
    """Wrap a payload model in a fresh envelope.

    When the event is caused by another, it inherits that event's correlation id
    and names it as causation, which is what the audit trail shows.
    """
    eid = event_id or str(uuid7())
    if causation is not None:
        correlation = causation.correlation_id
        causation_id: str | None = causation.event_id
    else:
        correlation = correlation_id or eid
        causation_id = None
    return EventEnvelope(
        event_id=eid,
        type=payload.EVENT_TYPE,
        schema_version=payload.SCHEMA_VERSION,
        aggregate_id=aggregate_id,
        occurred_at=datetime.now(UTC),
        actor=actor,
        correlation_id=correlation,
        causation_id=causation_id,
        payload=payload.model_dump(mode="json"),
    )
