"""Counts in /metrics are exact across the workers of a real server, though counted off the request path."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.telemetry.metrics import FLUSH_INTERVAL_S
from tests.integration.server import ROOT, running_server

pytestmark = pytest.mark.integration

REQUESTS = 120
CLIENTS = 4  # each request on a new connection, from several threads: both workers get some
SETTLE_S = 10.0  # generous for a shared machine; a worker folds its counts in once a FLUSH_INTERVAL_S
FLAGS20 = ROOT / "tests" / "bench" / "flags20"
DECIDE_2XX = 'tailor_http_request_duration_seconds_count{endpoint="/v1/decide",method="POST",status="2xx"}'
BODY = {"visitor": {"id": "visitor-7", "attributes": {"country": "DE"}, "consent": {"personalization": True}}}


def _decide(base: str) -> int:
    response = httpx.post(f"{base}/v1/decide", json=BODY, timeout=10)  # no keep-alive: a new connection
    response.raise_for_status()
    return len(response.json()["placements"])


def _counts(base: str) -> tuple[float, float]:
    """(/v1/decide 2xx responses, placement decisions) summed over the workers."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    responses = sum(float(v) for v in re.findall(re.escape(DECIDE_2XX) + r" (\S+)", text))
    decisions = sum(float(v) for v in re.findall(r"^tailor_decisions_total\{[^}]*\} (\S+)$", text, re.MULTILINE))
    return responses, decisions


def test_counts_are_exact_after_requests_to_two_workers() -> None:
    with running_server(FLAGS20, workers=2, TAILOR_RELOAD_INTERVAL="0") as base:
        with ThreadPoolExecutor(CLIENTS) as pool:
            placements = list(pool.map(lambda _: _decide(base), range(REQUESTS)))
        want = (float(REQUESTS), float(sum(placements)))
        deadline = time.monotonic() + SETTLE_S
        while (got := _counts(base)) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got == want
        time.sleep(2 * FLUSH_INTERVAL_S)  # later flushes add nothing: every request was counted once
        assert _counts(base) == want
