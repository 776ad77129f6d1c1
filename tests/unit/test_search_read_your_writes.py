"""Read-your-writes (``after_seq``) in the search API's reads: it waits for the projector,
makes what it waited for searchable, and answers a bilingual 503 when the index is behind."""

from __future__ import annotations

import pytest

from services.search.consistency import read_your_writes
from shared.http import UserError


class Progress:
    def __init__(self, caught_up: bool, last_appended: int = 1000) -> None:
        self.caught_up = caught_up
        self.last_appended = last_appended
        self.asked: list[tuple[int, float]] = []

    async def appended(self, sequence: int) -> bool:
        return sequence <= self.last_appended

    async def wait_for(self, sequence: int, timeout_s: float) -> bool:
        self.asked.append((sequence, timeout_s))
        return self.caught_up


class Index:
    def __init__(self) -> None:
        self.refreshes = 0

    async def refresh(self) -> None:
        self.refreshes += 1


async def test_a_read_after_a_sequence_waits_for_it_then_refreshes_the_index() -> None:
    progress, index = Progress(caught_up=True), Index()
    await read_your_writes(progress, index, 42, 3.0)
    assert progress.asked == [(42, 3.0)] and index.refreshes == 1


async def test_without_a_sequence_nothing_is_waited_for_and_refresh_is_only_on_request() -> None:
    progress, index = Progress(caught_up=True), Index()
    await read_your_writes(progress, index, None, 3.0)
    assert progress.asked == [] and index.refreshes == 0
    await read_your_writes(progress, index, None, 3.0, refresh=True)
    assert index.refreshes == 1


async def test_an_index_still_behind_at_the_deadline_is_a_bilingual_503_naming_the_sequence() -> None:
    progress, index = Progress(caught_up=False), Index()
    with pytest.raises(UserError) as refused:
        await read_your_writes(progress, index, 7, 0.5)
    error = refused.value
    assert (error.status, error.code, error.extra) == (503, "index_not_caught_up", {"after_seq": 7})
    assert "Chỉ mục tìm kiếm chưa cập nhật tới sự kiện 7" in error.message_vi and "event 7" in error.message_en
    assert index.refreshes == 0


async def test_a_sequence_the_stream_has_not_reached_is_a_bilingual_400_at_once_not_a_wait() -> None:
    progress, index = Progress(caught_up=False, last_appended=41), Index()
    with pytest.raises(UserError) as refused:
        await read_your_writes(progress, index, 42, 30.0)
    error = refused.value
    assert (error.status, error.code) == (400, "after_seq_not_appended")
    assert "42" in error.message_vi and "42" in error.message_en
    assert progress.asked == [] and index.refreshes == 0  # no wait for what cannot come
