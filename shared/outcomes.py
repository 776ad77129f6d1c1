"""How a worker settles a delivered message: one outcome, computed purely, applied once.

Each subscriber's handler works out an :data:`Outcome` with a pure function
(unit-tested without servers); the subscriber only applies it to the message:

- :class:`Ack` — done (or a duplicate): acknowledge;
- :class:`Retry` — a passing fault: redeliver after ``after_s``;
- :class:`Park` — cannot succeed as things are (recorded elsewhere with its
  reason): redeliver after a long ``after_s``, never acknowledge, so nothing
  moves past it until a fix is deployed;
- :class:`Fail` — gave up: append ``event`` (a ``…failed`` event people can
  see), then acknowledge. If that append fails, the message is redelivered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from shared.events.envelope import EventEnvelope
from shared.ports import EventLog

log = logging.getLogger("mam.outcomes")


@dataclass(frozen=True)
class Ack:
    note: str = ""

    def __str__(self) -> str:  # what the logs say: "… attempt 2 → ready"
        return self.note or "ack"


@dataclass(frozen=True)
class Retry:
    after_s: float
    reason: str = ""

    def __str__(self) -> str:
        return f"retry in {self.after_s:g} s ({self.reason})" if self.reason else f"retry in {self.after_s:g} s"


@dataclass(frozen=True)
class Park:
    after_s: float
    reason: str

    def __str__(self) -> str:
        return f"parked for {self.after_s:g} s ({self.reason})"


@dataclass(frozen=True)
class Fail:
    event: EventEnvelope

    def __str__(self) -> str:
        return f"failed for good: {self.event.type}"


Outcome = Ack | Retry | Park | Fail

# Redelivery delay when recording a failure event itself failed (NATS unreachable).
FAIL_RECORD_RETRY_S = 5.0


class Settleable(Protocol):
    """The part of a JetStream message a subscriber settles (``nats.aio.msg.Msg``)."""

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None: ...


async def apply_outcome(outcome: Outcome, msg: Settleable, events: EventLog | None) -> None:
    """Tell the server what ``outcome`` says; the only place workers settle messages.

    ``events`` is where a :class:`Fail` records its event (a worker that never
    fails this way, like the search projector, may pass None).
    """
    if isinstance(outcome, Ack):
        await msg.ack()
    elif isinstance(outcome, Retry | Park):
        await msg.nak(delay=outcome.after_s)
    else:
        try:
            if events is None:
                raise RuntimeError("no event log to record the failure in")
            await events.append(outcome.event)
        except Exception:
            log.exception("could not record %s for %s; redelivering", outcome.event.type, outcome.event.aggregate_id)
            await msg.nak(delay=FAIL_RECORD_RETRY_S)
            return
        await msg.ack()
