"""Read-your-writes decides from the projector's durable consumer when an event is indexed;
a parked event (never acknowledged by design) must not hold every later query back."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js.api import ConsumerConfig, ConsumerInfo, SequenceInfo

from services.search.consistency import caught_up


def projector(floor: int, delivered: int, pending: int, unacked: int) -> ConsumerInfo:
    return ConsumerInfo(
        name="search-projector",
        stream_name="MAM_EVENTS",
        config=ConsumerConfig(durable_name="search-projector"),
        created=datetime(2026, 11, 21, tzinfo=UTC),
        delivered=SequenceInfo(consumer_seq=delivered, stream_seq=delivered),
        ack_floor=SequenceInfo(consumer_seq=floor, stream_seq=floor),
        num_ack_pending=unacked,
        num_pending=pending,
    )


def test_an_event_at_or_below_the_ack_floor_is_indexed() -> None:
    assert caught_up(projector(floor=120, delivered=130, pending=5, unacked=4), 120)


def test_an_event_still_awaiting_its_ack_is_not_indexed_yet() -> None:
    assert not caught_up(projector(floor=100, delivered=130, pending=0, unacked=2), 120)


def test_nothing_pending_and_nothing_unacknowledged_counts_as_caught_up_whatever_the_floor() -> None:
    # The floor only moves on the events the consumer selects (asset events).
    assert caught_up(projector(floor=100, delivered=100, pending=0, unacked=0), 140)


def test_a_parked_event_holding_the_floor_back_does_not_hold_later_events_back() -> None:
    stuck = projector(floor=99, delivered=180, pending=0, unacked=3)  # the three a poison event left parked
    assert not caught_up(stuck, 150)
    assert caught_up(stuck, 150, parked=3)
    # Everything up to the event delivered, later ones not yet: still caught up with it.
    assert caught_up(projector(floor=99, delivered=160, pending=12, unacked=3), 150, parked=3)


def test_parked_events_do_not_hide_one_still_in_flight_or_not_yet_delivered() -> None:
    assert not caught_up(projector(floor=99, delivered=180, pending=0, unacked=4), 150, parked=3)
    assert not caught_up(projector(floor=99, delivered=140, pending=12, unacked=3), 150, parked=3)
