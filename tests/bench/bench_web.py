"""Web page speed on generated assets (``MAM_BENCH_WEB_ASSETS``, default 5 000 for a short
run; the issue's figure is at 100 000: ``MAM_BENCH_WEB_ASSETS=100000``):

- ``web_search_page_p95_vs_search_api``: server time of the search page with its facets
  (the web service calls the search API, then renders the HTML) vs the same query sent
  to the search API itself, interleaved, same queries, same warm-up (ms);
- ``web_search_p50_…``: the same at the median;
- ``web_search_first_results_browser``: time to first results measured by the browser
  (Navigation Timing ``domContentLoadedEventEnd``, the results being in the server's HTML)
  in Debian's Chromium on loopback, vs the page's own ``responseEnd`` (ms).

The web service and the search service run as real processes beside a NATS and an index
of their own; the caller is the broadcaster of ``AUTH`` (the visibility filter applies).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

import httpx

from deploy.local import installers
from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from tests.bench.bench_search import (
    QUERIES,
    _append_all,
    _cleanup,
    _projector_caught_up,
    _replay,
    _with_publication,
)
from tests.bench.common import own_nats, pct, row, settle
from tests.conftest import AUTH
from tests.search_corpus import generated_events

N_ASSETS = int(os.environ.get("MAM_BENCH_WEB_ASSETS", "5000"))
ROUNDS = int(os.environ.get("MAM_BENCH_WEB_ROUNDS", "20"))
WARMUP_ROUNDS = 3
BROWSER_LOADS = 20


def _params(q: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in q.items()}


def _page_vs_api(web_url: str, search_url: str) -> tuple[list[float], list[float]]:
    """The search page (HTML with facets) and the search API, taking turns going first."""
    page: list[float] = []
    api: list[float] = []
    with httpx.Client(timeout=60, headers=AUTH) as client:

        def through_page(q: dict[str, Any]) -> None:
            answer = client.get(f"{web_url}/search", params=_params(q))
            answer.raise_for_status()
            assert "hits-title" in answer.text

        def through_api(q: dict[str, Any]) -> None:
            client.get(f"{search_url}/v1/search", params={**_params(q), "size": "20"}).raise_for_status()

        for _ in range(WARMUP_ROUNDS):
            for q in QUERIES:
                through_page(q)
                through_api(q)
        for round_no in range(ROUNDS):
            for i, q in enumerate(QUERIES):
                pair = [(through_page, page), (through_api, api)]
                if (round_no + i) % 2:
                    pair.reverse()
                for send, timings in pair:
                    began = time.perf_counter()
                    send(q)
                    timings.append((time.perf_counter() - began) * 1000)
    return page, api


def _browser_first_results(web_url: str) -> tuple[float, float]:
    """Median Navigation Timing of the search page in Chromium: DOM ready (results shown) and response end."""
    from playwright.sync_api import sync_playwright

    ready: list[float] = []
    received: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(installers.chromium()), args=["--no-sandbox"])
        context = browser.new_context(extra_http_headers=AUTH, viewport={"width": 1366, "height": 768})
        page = context.new_page()
        for i in range(BROWSER_LOADS + 2):
            q = QUERIES[i % len(QUERIES)]
            page.goto(f"{web_url}/search?" + "&".join(f"{k}={v}" for k, v in _params(q).items()))
            page.wait_for_selector("#hits-title")
            timing = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            if i >= 2:  # two warm-up loads
                entry = json.loads(timing)
                ready.append(float(entry["domContentLoadedEventEnd"]))
                received.append(float(entry["responseEnd"]))
        browser.close()
    return statistics.median(ready), statistics.median(received)


def run(stack: LocalStack) -> list[dict[str, Any]]:
    bench, bench_stack, nats_spec = own_nats(stack, "web", es_index_prefix=f"mamwebbench{int(time.time())}")
    services = []
    try:
        events = _with_publication(generated_events(N_ASSETS, prefix="w"))
        asyncio.run(_append_all(bench.resolved_nats_url, bench.event_stream, events))
        asyncio.run(_replay(bench.resolved_es_url, bench.es_index_prefix, bench.resolved_nats_url, bench.event_stream))
        for name in ("accounts", "search", "web"):  # the web is ready once it reaches the accounts
            spec = bench_stack.service_spec(name)
            start(spec)
            services.append(spec)
        _projector_caught_up(bench.search_url)
        settle(bench.resolved_es_url)
        page, api = _page_vs_api(bench.web_url, bench.search_url)
        ready, received = _browser_first_results(bench.web_url)
    finally:
        for spec in reversed(services):
            stop(spec)
        stop(nats_spec)
        asyncio.run(_cleanup(bench.resolved_es_url, bench.es_index_prefix))
    return [
        row(f"web_search_page_p95_vs_search_api_{N_ASSETS}_assets", pct(page, 95), pct(api, 95), "ms"),
        row(f"web_search_page_p50_vs_search_api_{N_ASSETS}_assets", pct(page, 50), pct(api, 50), "ms"),
        row(f"web_search_first_results_browser_dom_ready_vs_response_end_{N_ASSETS}_assets", ready, received, "ms"),
    ]
