"""The fault suite's and the soak's client load, as a real client retries: on the other
replica after an answer meaning "not now", never after a refusal, until a deadline —
checked against a fake transport, no servers."""

from __future__ import annotations

import httpx

from tests.conftest import test_settings as stack_settings
from tests.faults.load import Load, on_replicas, replica_urls
from tests.faults.reel_load import ReelLoad


def _client(statuses: list[int], seen: list[str]) -> httpx.Client:
    answers = iter(statuses)

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}:{request.url.port}")
        return httpx.Response(next(answers), json={"asset_id": "a1"})

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_an_upload_not_acknowledged_is_sent_again_on_the_other_replica_until_it_is() -> None:
    load, seen = Load(stack_settings(), uploads=0), []
    with _client([503, 502, 201], seen) as http:
        answer = load._call(http, "upload", "ingest", lambda url: http.post(f"{url}/v1/assets"))
    assert answer is not None and answer.status_code == 201 and not load.failures
    first, second = (url.removeprefix("http://") for url in replica_urls(load.settings, "ingest"))
    assert seen == [first, second, first]
    assert load.statuses == {"upload 503": 1, "upload 502": 1, "upload 201": 1}
    assert [s.ok for s in load.samples] == [False, False, True]


def test_a_refusal_is_not_sent_again_and_fails_the_load() -> None:
    load, seen = Load(stack_settings(), uploads=0), []
    with _client([400], seen) as http:
        assert load._call(http, "upload", "ingest", lambda url: http.post(f"{url}/v1/assets")) is None
    assert len(seen) == 1 and load.failures == ['upload refused: 400 {"asset_id":"a1"}']


def test_an_upload_never_acknowledged_by_the_deadline_fails_the_load_with_the_last_answer() -> None:
    load, seen = Load(stack_settings(), uploads=0, retry_deadline_s=0.6), []
    with _client([503] * 10, seen) as http:
        assert load._call(http, "upload", "ingest", lambda url: http.post(f"{url}/v1/assets")) is None
    assert 2 <= len(seen) <= 3 and load.failures == ["upload never acknowledged within 1s: 503"]


def test_polling_passes_over_a_replica_away_and_stops_when_the_load_stops() -> None:
    load = Load(stack_settings(), uploads=0)
    reels = ReelLoad(load, ready_deadline_s=30)
    tries: list[str] = []

    def found_on_the_second_try(url: str) -> bool:
        tries.append(url)
        if len(tries) == 1:
            raise httpx.ConnectError("replica away")
        return True

    assert reels._poll("search", found_on_the_second_try, "a clip indexed") and len(tries) == 2
    load.stop.set()
    assert not reels._poll("search", lambda url: False, "a clip indexed") and not load.failures
    # A render in flight is waited for to its deadline even when the load stops, and then fails it.
    reels.ready_deadline_s = 0.5
    assert not reels._poll("reels", lambda url: False, "reel r1 rendered", give_up_on_stop=False)
    assert load.failures == ["not within 0s: reel r1 rendered"]


def test_the_replicas_are_tried_in_turn_until_done() -> None:
    urls: list[str] = []
    ended = on_replicas(["a", "b"], lambda url: urls.append(url) or len(urls) == 3, deadline_s=10, pause_s=0)
    assert ended == "done" and urls == ["a", "b", "a"]
