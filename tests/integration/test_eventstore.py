"""The event store against a real NATS JetStream server (the quiet one: no service appends to it)."""

from collections.abc import Awaitable, Callable
from contextlib import aclosing

import orjson
import pytest
from nats.js import JetStreamContext
from nats.js.errors import APIError

from shared import eventstore
from shared.events.envelope import EventEnvelope, new_event
from shared.eventstore import ConcurrencyConflict, EventStore
from shared.subjects import aggregate_filter
from tests.conftest import async_wait_for
from tests.unit.test_events import ingested

pytestmark = pytest.mark.integration


async def test_appended_events_come_back_in_order_for_their_aggregate(
    quiet_event_store: EventStore, unique: str
) -> None:
    agg = f"a{unique}"
    first = new_event(ingested(title="Kỳ họp thứ 7"), aggregate_id=agg, actor="phong-vien")
    second = new_event(ingested(title="Kỳ họp thứ 8"), aggregate_id=agg, actor="luu-tru")
    other = new_event(ingested(), aggregate_id=f"b{unique}", actor="phong-vien")
    r1 = await quiet_event_store.append(first, expected_last_sequence=0)
    await quiet_event_store.append(other)
    r2 = await quiet_event_store.append(second, expected_last_sequence=r1.sequence)
    history = await quiet_event_store.history("asset", agg)
    assert [h.envelope for h in history] == [first, second]
    assert [h.sequence for h in history] == [r1.sequence, r2.sequence]
    assert r2.sequence > r1.sequence


async def test_the_next_event_of_an_aggregate_is_found_past_other_aggregates_events(
    quiet_event_store: EventStore, unique: str
) -> None:
    agg, other = f"a{unique}", f"b{unique}"
    first = await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="phong-vien"))
    await quiet_event_store.append(new_event(ingested(), aggregate_id=other, actor="phong-vien"))
    second = await quiet_event_store.append(
        new_event(ingested(title="Kỳ họp thứ 8"), aggregate_id=agg, actor="luu-tru")
    )
    subject = aggregate_filter("asset", agg)
    assert await quiet_event_store.next_sequence(subject, first.sequence) == second.sequence
    assert await quiet_event_store.next_sequence(subject, first.sequence - 1) == first.sequence
    assert await quiet_event_store.next_sequence(subject, second.sequence) == 0  # nothing after the last


async def test_a_second_append_with_the_same_msg_id_is_deduplicated(quiet_event_store: EventStore, unique: str) -> None:
    event = new_event(ingested(), aggregate_id=f"a{unique}", actor="phong-vien")
    first = await quiet_event_store.append(event)
    again = await quiet_event_store.append(event)
    assert not first.duplicate and again.duplicate
    assert again.sequence == first.sequence
    assert len(await quiet_event_store.history("asset", f"a{unique}")) == 1


async def test_a_retried_conditional_append_that_already_landed_is_a_duplicate_not_a_conflict(
    quiet_event_store: EventStore, unique: str
) -> None:
    event = new_event(ingested(), aggregate_id=f"a{unique}", actor="phong-vien")
    first = await quiet_event_store.append(event, expected_last_sequence=0)
    again = await quiet_event_store.append(event, expected_last_sequence=0)
    assert again.duplicate and again.sequence == first.sequence


async def test_a_stale_expected_sequence_raises_a_clear_conflict(quiet_event_store: EventStore, unique: str) -> None:
    agg = f"a{unique}"
    await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="a"), expected_last_sequence=0)
    with pytest.raises(ConcurrencyConflict, match=f"mam.asset.{agg}") as caught:
        await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="b"), expected_last_sequence=0)
    assert caught.value.expected == 0
    assert len(await quiet_event_store.history("asset", agg)) == 1


async def test_the_stream_is_file_backed_kept_forever_and_denies_deletes_and_purges(
    quiet_event_store: EventStore, unique: str
) -> None:
    js = quiet_event_store._js  # the adapter's own JetStream context
    info = await js.stream_info(quiet_event_store.stream)
    assert str(getattr(info.config.storage, "value", info.config.storage)) == "file"
    assert info.config.deny_delete and info.config.deny_purge
    assert not info.config.max_age
    result = await quiet_event_store.append(new_event(ingested(), aggregate_id=f"a{unique}", actor="x"))
    with pytest.raises(APIError):
        await js.delete_msg(quiet_event_store.stream, result.sequence)
    with pytest.raises(APIError):
        await js.purge_stream(quiet_event_store.stream)
    assert len(await quiet_event_store.history("asset", f"a{unique}")) == 1


async def test_reading_an_unknown_aggregate_gives_an_empty_history(quiet_event_store: EventStore, unique: str) -> None:
    assert await quiet_event_store.history("asset", f"nobody{unique}") == []


async def test_reading_in_batches_starts_at_the_given_sequence_and_stops_at_the_end_as_of_the_call(
    quiet_event_store: EventStore, unique: str
) -> None:
    agg = f"a{unique}"
    sequences = []
    for i in range(7):
        sequences.append((await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="x"))).sequence)
        await quiet_event_store.append(new_event(ingested(), aggregate_id=f"b{unique}{i}", actor="x"))  # not ours
    subjects = aggregate_filter("asset", agg)

    chunks = []
    async with aclosing(quiet_event_store.read_batches(subjects, start_sequence=sequences[2], batch=2)) as batches:
        async for chunk in batches:
            chunks.append([e.sequence for e in chunk])
            if len(chunks) == 1:  # appended while reading: after the end as of the call
                late = await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="x"))
    assert [s for chunk in chunks for s in chunk] == sequences[2:]
    assert all(1 <= len(chunk) <= 2 for chunk in chunks), chunks
    assert len(chunks) == 3, chunks  # 5 events in batches of 2: one server round trip each

    one_by_one = [e.sequence async for e in quiet_event_store.read_subjects(subjects, start_sequence=sequences[5])]
    assert one_by_one == [*sequences[5:], late.sequence]


async def test_a_reader_kept_waiting_until_its_consumer_expired_reads_on_from_where_it_stopped(
    quiet_event_store: EventStore, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebuild on a busy machine may hold a batch longer than the reader's idle threshold:
    # the server then deletes the reader's consumer, and the read must go on, not fail.
    monkeypatch.setattr(eventstore, "_READER_IDLE_S", 1.0)
    agg = f"a{unique}"
    sequences = [
        (await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="x"))).sequence for _ in range(5)
    ]
    subjects = aggregate_filter("asset", agg)
    js = await quiet_event_store.jetstream()

    async def readers() -> int:
        return sum(1 for c in await js.consumers_info(quiet_event_store.stream) if c.config.filter_subject == subjects)

    chunks = []
    async with aclosing(quiet_event_store.read_batches(subjects, batch=2)) as batches:
        async for chunk in batches:
            chunks.append([e.sequence for e in chunk])
            if len(chunks) == 1:
                await async_wait_for(lambda: _none(readers), within=30, what="the idle reader's consumer expired")
    assert [s for chunk in chunks for s in chunk] == sequences
    assert await readers() == 0  # the replacement is deleted too


async def _none(count: Callable[[], Awaitable[int]]) -> bool:
    return await count() == 0


async def test_a_reader_on_a_replica_still_catching_up_is_replaced_and_the_history_comes_back_whole(
    quiet_event_store: EventStore, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a cluster the reader's consumer may sit on a restarted node not yet current: it counts
    # none of an aggregate's events, and an edit of a just-acknowledged upload answered 404.
    agg = f"a{unique}"
    first = await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="x"))
    second = await quiet_event_store.append(new_event(ingested(), aggregate_id=agg, actor="x"))
    real_reader = quiet_event_store._reader
    calls = 0

    async def behind_once(js: JetStreamContext, subject_filter: str, start_sequence: int) -> tuple[str, int]:
        nonlocal calls
        calls += 1
        name, pending = await real_reader(js, subject_filter, start_sequence)
        return name, 0 if calls == 1 else pending  # the first one's replica has none of them yet

    monkeypatch.setattr(quiet_event_store, "_reader", behind_once)
    history = await quiet_event_store.history("asset", agg)
    assert [h.sequence for h in history] == [first.sequence, second.sequence]
    assert calls == 2


async def test_events_published_on_the_subject_by_hand_read_back_as_full_validation_reads_them(
    quiet_event_store: EventStore, unique: str
) -> None:
    """What the store appended takes the read's fast path; an event someone published on the
    subject themselves (another timestamp form, fields in another order) is validated in full,
    normalised as validation does, never taken as it is. (One validation refuses is left to
    tests/unit/test_envelope_read_back.py: in this stream it would stop every later rebuild.)"""
    agg = f"a{unique}"
    ours = new_event(ingested(), aggregate_id=agg, actor="phong-vien")
    await quiet_event_store.append(ours)
    raw = orjson.loads(ours.to_bytes())
    by_hand = [
        {**raw, "event_id": f"{unique}-offset", "occurred_at": "2026-11-21T17:00:00+07:00"},
        {"type": raw["type"], **{k: v for k, v in raw.items() if k != "type"}, "event_id": f"{unique}-order"},
    ]
    js = await quiet_event_store.jetstream()
    for body in by_hand:
        await js.publish(ours.subject, orjson.dumps(body), stream=quiet_event_store.stream)
    history = [h.envelope for h in await quiet_event_store.history("asset", agg)]
    assert history == [ours, *(EventEnvelope.model_validate_json(orjson.dumps(b)) for b in by_hand)]
    assert history[1].occurred_at.isoformat() == "2026-11-21T10:00:00+00:00"
