"""A load of uploads and edits, driven from threads while a test injects a fault.

Like a real client, it retries an upload that was not acknowledged (a dropped
connection, a 5xx, a 503 while a server is away) on the service's other replica,
until it is acknowledged or its deadline passes; uploads are idempotent (the
content hash is the asset's identity), so a retry never makes a second asset. A
refusal (4xx) or an upload never acknowledged fails the test.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx
from PIL import Image

from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH
from tests.media import jpeg_bytes

# Answers that mean "not now" (a server or replica away): retry, elsewhere. Not 500: every
# expected failure has its own answer (503 for a server away), so a 500 is a bug and fails the
# load (one was hidden here: uploads racing for a quota key while a NATS node was frozen).
RETRYABLE = {408, 425, 429, 502, 503, 504}
# An edit racing another writer of the asset (the tagger's asset.tagged) is refused with 409
# "reload and retry": the edit is sent again, and the catalogue decides on fresh history.
RETRYABLE_EDIT = RETRYABLE | {409}


def replica_urls(settings: Settings, service: str, replicas: int = 2) -> list[str]:
    port = int(getattr(settings, f"{service}_port"))
    return [f"http://127.0.0.1:{port + settings.cluster_replica_port_shift * r}" for r in range(replicas)]


def on_replicas(
    urls: list[str],
    attempt: Callable[[str], bool],
    *,
    deadline_s: float,
    pause_s: float,
    give_up: Callable[[], bool] = lambda: False,
) -> Literal["done", "deadline", "given up"]:
    """``attempt(url)`` on one replica, then the next, ``pause_s`` apart, until it says it is
    done, the deadline passes, or ``give_up()`` (checked after the deadline)."""
    deadline = time.monotonic() + deadline_s
    for url in itertools.cycle(urls):
        if attempt(url):
            return "done"
        if time.monotonic() > deadline:
            return "deadline"
        if give_up():
            return "given up"
        time.sleep(pause_s)
    raise AssertionError("unreachable: cycle() never ends")


def unique_jpeg(seed: int, i: int) -> bytes:
    """A photo no other load made: ``jpeg_bytes`` repeats its pixels every 6 400 seeds, so the
    load's seed and number go in a JPEG comment too."""
    image = Image.open(io.BytesIO(jpeg_bytes(seed + i)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, comment=f"mam-fault-load {seed} {i}".encode())
    return out.getvalue()


@dataclass
class Sample:
    at: float  # monotonic seconds since the load began
    kind: str  # upload, edit, search
    seconds: float
    ok: bool


@dataclass
class Load:
    settings: Settings
    uploads: int
    workers: int = 3
    pace_s: float = 0.2  # pause between one worker's uploads, so the load spans the fault
    edit_every: int = 2  # every n-th acknowledged upload is edited once
    search_every: int = 3
    retry_deadline_s: float = 240.0
    # Upload answers worth sending again (a fault test may add one, e.g. 507 while storage is full).
    retry_on: frozenset[int] = frozenset(RETRYABLE)
    seed: int = field(default_factory=lambda: random.randrange(1 << 30))
    acknowledged: dict[str, str] = field(default_factory=dict)
    edited: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._began = time.monotonic()
        self._ack_times: list[float] = []
        self.stop = threading.Event()

    # --- running ------------------------------------------------------------------
    def start(self) -> Load:
        self._began = time.monotonic()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "the load did not finish in time"
        assert not self.failures, f"the load failed: {self.failures[:10]}"

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def acks_since(self, moment: float) -> int:
        """Uploads acknowledged after ``moment`` (time.monotonic())."""
        with self._lock:
            return sum(1 for t in self._ack_times if t > moment)

    def _work(self) -> None:
        try:
            with httpx.Client(timeout=60.0) as http:
                while not self.stop.is_set():
                    i = next(self._next)
                    if i >= self.uploads:
                        return
                    self._one(http, i)
                    time.sleep(self.pace_s)
        except Exception as exc:  # a failure in a helper thread must fail the test
            with self._lock:
                self.failures.append(f"worker crashed: {exc!r}")

    def _one(self, http: httpx.Client, i: int) -> None:
        content = unique_jpeg(self.seed, i)
        sha256 = hashlib.sha256(content).hexdigest()
        response = self._call(
            http,
            "upload",
            "ingest",
            lambda url: http.post(
                f"{url}/v1/assets",
                headers=AUTH,
                data={
                    "title": f"Tiếp xúc cử tri đợt {i} — kiểm thử sự cố",
                    "caption": "Đại biểu HĐND tỉnh tiếp xúc cử tri trước kỳ họp",
                    "activity_type": "tiep-xuc-cu-tri",
                    "recorded_at": "2024-05-17",
                },
                files={"file": (f"anh-{i}.jpg", content, "image/jpeg")},
            ),
        )
        if response is None:
            return
        asset_id = str(response.json()["asset_id"])
        with self._lock:
            self.acknowledged[asset_id] = sha256
            self._ack_times.append(time.monotonic())
        if i % self.edit_every == 0:
            edit = self._call(
                http,
                "edit",
                "catalogue",
                lambda url: http.patch(
                    f"{url}/v1/assets/{asset_id}/metadata",
                    headers=ARCHIVIST,
                    json={"title": f"Tiếp xúc cử tri đợt {i} (đã biên mục)"},
                ),
            )
            if edit is not None:
                with self._lock:
                    self.edited += 1
        if i % self.search_every == 0:
            self._call(
                http,
                "search",
                "search",
                lambda url: http.get(f"{url}/v1/search", headers=AUTH, params={"q": "tiep xuc cu tri"}),
            )

    def _call(
        self, http: httpx.Client, kind: str, service: str, send: Callable[[str], httpx.Response]
    ) -> httpx.Response | None:
        """Send to one replica, then the other, until a 2xx, a refusal, or the deadline."""
        answered: list[httpx.Response] = []
        last_status = ""

        def attempt(url: str) -> bool:
            nonlocal last_status
            began = time.monotonic()
            try:
                response = send(url)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                response, status = None, type(exc).__name__
            with self._lock:
                self.statuses[f"{kind} {status}"] += 1
                ok = response is not None and response.is_success
                self.samples.append(Sample(began - self._began, kind, time.monotonic() - began, ok))
            if response is not None and response.is_success:
                answered.append(response)
                return True
            retryable = RETRYABLE_EDIT if kind == "edit" else RETRYABLE | self.retry_on
            if response is not None and response.status_code not in retryable:
                self.fail(f"{kind} refused: {response.status_code} {response.text[:300]}")
                return True  # done: a refusal is not sent again
            last_status = status
            return False

        urls = replica_urls(self.settings, service)
        if on_replicas(urls, attempt, deadline_s=self.retry_deadline_s, pause_s=0.5) == "deadline":
            self.fail(f"{kind} never acknowledged within {self.retry_deadline_s:.0f}s: {last_status}")
        return answered[0] if answered else None

    # --- for another load that shares this one's answers, samples and acknowledgements (the soak's reels)
    def send(
        self, http: httpx.Client, kind: str, service: str, send: Callable[[str], httpx.Response]
    ) -> httpx.Response | None:
        """One request with this load's retries on the other replica, counted and timed as its own."""
        return self._call(http, kind, service, send)

    def acknowledge(self, asset_id: str, sha256: str) -> None:
        """An upload acknowledged by another load: reconciled with this one's."""
        with self._lock:
            self.acknowledged[asset_id] = sha256
            self._ack_times.append(time.monotonic())

    def record(self, kind: str, began: float, seconds: float, ok: bool) -> None:
        """A latency that is not one request (a render, from accepted to rendered); ``began``: monotonic."""
        with self._lock:
            self.samples.append(Sample(began - self._began, kind, seconds, ok))

    def fail(self, message: str) -> None:
        with self._lock:
            self.failures.append(message)
