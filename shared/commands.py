"""Commands as "load → decide → append".

A command handler loads one aggregate's history, asks a pure ``decide``
function what happens (events, or a :class:`Refused` with a reason in
Vietnamese and English), and appends the events with the expected last
sequence of that history. If someone else changed the aggregate in between,
the whole load → decide → append runs again on the fresh history (the decision
is pure, so deciding again is safe), a few times with a short random pause; a
command that loses every round is reported as 409 with a bilingual message.
Most rivals are not people: an asset's pipeline (probe, renditions, tags, speech)
appends four or five events in its first seconds, and an archivist publishing a
fresh upload on a loaded machine lost two rounds in a row to them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import EventPayload
from shared.http import UserError
from shared.ports import ConcurrencyConflict, EventLog, StoredEvent

Decision = Sequence[EventPayload]

COMMAND_ATTEMPTS = 5
# Past those rounds a command keeps deciding again for as long as this since it began: the
# pipeline's burst of appends ends within seconds even on a loaded machine, where five
# rounds could all fall inside it; a rival that keeps appending longer still gets a 409.
COMMAND_PATIENCE_S = 3.0
# Before round n+1 a command waits up to n times this (random, so two losers part ways).
_RETRY_PAUSE_S = 0.05
_MAX_PAUSE_ROUNDS = 5


class Refused(UserError):
    """A decide function's "no": the command is not carried out, nothing is appended."""

    def __init__(self, code: str, message_vi: str, message_en: str, *, status: int = 422, **extra: Any) -> None:
        super().__init__(status, code, message_vi, message_en, **extra)


def not_found(code: str, what_vi: str, what_en: str, ident: str) -> Refused:
    return Refused(code, f"Không tìm thấy {what_vi} {ident}.", f"No {what_en} {ident}.", status=404)


def conflict() -> UserError:
    return UserError(
        409,
        "conflict",
        "Dữ liệu vừa bị người khác thay đổi, hãy tải lại và thử lại.",
        "Someone else changed this meanwhile; reload and retry.",
    )


@dataclass(frozen=True)
class CommandResult:
    history: list[StoredEvent]  # what the decision was made on
    appended: list[EventEnvelope]
    last_sequence: int  # the aggregate's last sequence after the command


async def run_command(
    events: EventLog,
    aggregate: str,
    aggregate_id: str,
    decide: Callable[[list[StoredEvent]], Decision | Awaitable[Decision]],
    *,
    actor: str,
    causation: EventEnvelope | None = None,
    guard: str | None = None,
    attempts: int = COMMAND_ATTEMPTS,
    patience_s: float = COMMAND_PATIENCE_S,
) -> CommandResult:
    """Load ``aggregate_id``'s history, decide, append with its expected sequence.

    ``decide`` gets the history (fold it into the state it needs) and returns
    the payloads to append, or raises :class:`Refused`. A decision that also
    reads other aggregates (a merge reads its target; an assignment, the
    activity) loads them inside ``decide`` and names a ``guard``: a subject
    filter covering all of them, whose last sequence is read *before* anything
    is loaded and checked by the server on append — any change under the guard
    meanwhile is a conflict. A conflict re-runs load → decide → append (at least
    ``attempts`` rounds, and more while ``patience_s`` has not passed), then answers 409.
    """
    gives_up_at = time.monotonic() + patience_s
    for attempt in itertools.count(1):
        guarded = await events.last_sequence(guard) if guard else None
        history = await events.history(aggregate, aggregate_id)
        decided = decide(history)
        payloads = await decided if inspect.isawaitable(decided) else decided
        expected = guarded if guarded is not None else (history[-1].sequence if history else 0)
        appended: list[EventEnvelope] = []
        try:
            for payload in payloads:
                event = new_event(payload, aggregate_id=aggregate_id, actor=actor, causation=causation)
                expected = (await events.append(event, expected_last_sequence=expected, guard=guard)).sequence
                appended.append(event)
        except ConcurrencyConflict as exc:
            if appended:  # a partly applied decision is not re-decided blindly
                raise conflict() from exc
            if attempt >= attempts and time.monotonic() >= gives_up_at:
                raise conflict() from exc
            await asyncio.sleep(random.uniform(0, _RETRY_PAUSE_S * min(attempt, _MAX_PAUSE_ROUNDS)))
            continue
        last = history[-1].sequence if history else 0
        return CommandResult(history, appended, (appended and expected) or last)
    raise AssertionError("unreachable")
