"""How a read model folded from the log catches up: only what was appended since its last
call, up to the stream's end as of this call (the directory, the delegates, the catalogue's
publications)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from shared.ports import EventLog, StoredEvent


async def fold_appended(
    events: EventLog, filters: Iterable[str], read_up_to: int, apply: Callable[[StoredEvent], None]
) -> int:
    """Hand ``apply`` every event of ``filters`` after ``read_up_to``, each filter in stream
    order (the folds of different filters must not depend on each other); the new
    ``read_up_to``. Events appended meanwhile are left to the next call."""
    tail = await events.last_sequence()
    if tail <= read_up_to:
        return read_up_to
    for subject_filter in filters:
        async for stored in events.read_subjects(subject_filter, start_sequence=read_up_to + 1):
            if stored.sequence <= tail:
                apply(stored)
    return tail
