"""Rendered blocks through a real server: /v1/decide with render, /v1/render as JSON and as an NDJSON stream."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

BATCH = 10_000
MB = 1024 * 1024
PAGE_VIEW = {"visitor": {"id": "page-view", "consent": {"personalization": True}}, "placements": ["home_hero"]}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_server(TAILOR_RENDER_CACHE_MB="4", TAILOR_ALLOW_CLIENT_TIME="1") as url:
        yield url


def _visitor(**attributes: object) -> dict[str, object]:
    return {"id": "v-1", "attributes": attributes, "consent": {"personalization": True}}


def test_decide_with_render_returns_html_next_to_the_content(base: str) -> None:
    body = {
        "visitor": _visitor(first_name="Anna", orders_12m=6, spend_12m=900),
        "placements": ["home_hero", "promo_banner"],
        "context": {"locale": "de-DE", "currency": "EUR"},
        "render": True,
    }
    first = httpx.post(f"{base}/v1/decide", json=body)
    second = httpx.post(f"{base}/v1/decide", json=body)
    assert first.status_code == 200
    hero = first.json()["placements"]["home_hero"]
    assert (hero["variant"], hero["render_status"]) == ("hero_vip", "rendered")
    assert hero["content"]["headline"] == "Thank you for being one of our best customers"
    assert "Hallo Anna" in hero["html"]
    assert "html" not in first.json()["placements"]["promo_banner"]  # banner_newsletter has no template
    assert first.headers["x-tailor-render-cache"] == "hits=0, misses=1"
    assert second.headers["x-tailor-render-cache"] == "hits=1, misses=0"
    assert second.json()["placements"]["home_hero"]["html"] == hero["html"]


def test_a_failing_block_serves_its_fallback_and_spares_the_others(base: str) -> None:
    body = {
        "visitor": _visitor(
            first_name="Anna",
            orders_12m=6,
            spend_12m=900,
            cart={"total": "lots", "items": 2, "updated_at": "2026-11-20T10:00:00Z"},  # an abandoned cart
        ),
        "placements": ["home_hero", "promo_banner"],
        "context": {"now": "2026-11-22T12:00:00Z"},
        "render": True,
        "explain": True,
    }
    answer = httpx.post(f"{base}/v1/decide", json=body)
    assert answer.status_code == 200
    placements = answer.json()["placements"]
    banner = placements["promo_banner"]
    assert (banner["variant"], banner["render_status"]) == ("banner_free_shipping", "fallback")
    assert banner["render_error"] == "ValueError at content/templates/offer.html:5"
    assert banner["html"] == '<aside class="tl-offer"><p>Your cart is waiting, and shipping is on us</p></aside>'
    assert "render_detail" in banner  # with explain: the message, for previews
    assert placements["home_hero"]["render_status"] == "rendered"
    metrics = httpx.get(f"{base}/metrics").text
    assert 'tailor_rendered_blocks_total{status="fallback",variant="banner_free_shipping"}' in metrics
    assert 'tailor_render_seconds_count{cache="miss"}' in metrics


def _recipients(count: int, offset: int = 0) -> list[dict[str, object]]:
    names = ("Anna", "Ben", "Chiara", "Dmitri", "Emre", "Fatima", "Greta", "Hiro")
    return [
        {
            "id": f"r-{offset + i}",
            "attributes": {
                "first_name": names[i % len(names)],
                "cart": {"total": round(10 + (offset + i) * 0.37, 2)},  # every recipient a different total
                "category_views": {("music", "home", "books")[i % 3]: 1 + i % 4},
            },
            "consent": {"personalization": i % 10 != 0},
            "context": {"locale": "de-DE", "currency": "EUR"} if i % 2 else None,
        }
        for i in range(count)
    ]


def test_render_batch_as_json_keeps_order_arms_and_languages(base: str) -> None:
    recipients = _recipients(6)
    answer = httpx.post(
        f"{base}/v1/render", json={"placements": ["cart_email"], "context": {"locale": "en"}, "recipients": recipients}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert [r["visitor_id"] for r in body["results"]] == [r["id"] for r in recipients]
    for i, result in enumerate(body["results"]):
        email = result["placements"]["cart_email"]
        assert email["render_status"] == "rendered"
        assert ("Warenkorb" in email["html"]) == bool(i % 2)
        if i % 10 == 0:
            assert email["reason"] == "no_consent"
            assert "Anna" not in email["html"]
        elif email["reason"] != "holdout":  # 5 % of visitors get defaults
            assert email["experiment"]["key"] == "cart_email_test"
            assert (
                email["variant"]
                == {"reminder": "email_cart_reminder", "discount": "email_cart_discount"}[email["experiment"]["arm"]]
            )
    assert body["summary"]["recipients"] == 6
    assert body["summary"]["fallbacks"] == 0


def test_render_one_block_for_every_recipient(base: str) -> None:
    answer = httpx.post(f"{base}/v1/render", json={"block": "recs_for_you", "recipients": _recipients(3)})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["placements"]["recs_for_you"]["reason"] for r in results] == ["requested"] * 3


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"recipients": [{}]}, "$"),
        ({"placements": ["cart_email"], "block": "recs_for_you", "recipients": [{}]}, "$"),
        ({"block": "banner_newsletter", "recipients": [{}]}, "$.block"),
        ({"block": "recs_for_you", "recipients": [{"attributes": {"a": "x" * 5000}}]}, "$.recipients[0].attributes.a"),
        ({"block": "recs_for_you", "recipients": []}, "$.recipients"),
    ],
)
def test_bad_batches_are_clear_errors(base: str, body: dict[str, object], where: str) -> None:
    answer = httpx.post(f"{base}/v1/render", json=body)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["loc"] == where


def _group_peak_rss(pid: int) -> int:
    """The highest peak resident memory (VmHWM, bytes) of the server's processes."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    return peak


def _stream(base: str, recipients: list[dict[str, object]]) -> tuple[int, int, dict[str, object]]:
    lines = 0
    size = 0
    last: dict[str, object] = {}
    body = {"placements": ["cart_email"], "context": {"locale": "en"}, "recipients": recipients}
    with httpx.stream(
        "POST", f"{base}/v1/render", json=body, headers={"accept": "application/x-ndjson"}, timeout=300
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        for line in answer.iter_lines():
            size += len(line)
            last = json.loads(line)
            if "summary" not in last:
                assert last["index"] == lines  # in order
                lines += 1
    return lines, size, last


def test_ndjson_streams_10000_recipients_in_flat_memory() -> None:
    with running_server(TAILOR_RENDER_CACHE_MB="4") as base:
        _stream(base, _recipients(300, offset=10**6))  # warm every code path first
        before = _group_peak_rss(base.pid)
        lines, size, summary = _stream(base, _recipients(BATCH))
        after = _group_peak_rss(base.pid)
    assert lines == BATCH
    assert summary["summary"]["recipients"] == BATCH  # type: ignore[index]
    assert summary["summary"]["blocks"] == BATCH  # type: ignore[index]
    assert size > 40 * MB  # the stream carried far more than the server's memory grew
    assert after - before < 40 * MB, f"peak memory grew {(after - before) / MB:.1f} MB for {size / MB:.0f} MB out"


def _decide_latencies_while(base: str, batch: Callable[[], object]) -> tuple[list[float], float]:
    """Seconds of each /v1/decide sent one after another while ``batch`` runs, and the batch's seconds."""
    latencies: list[float] = []
    running = threading.Event()
    finished = threading.Event()

    def page_views() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            http.post("/v1/decide", json=PAGE_VIEW)  # the connection is open before the batch starts
            running.set()
            while not finished.is_set():
                start = time.perf_counter()
                assert http.post("/v1/decide", json=PAGE_VIEW).status_code == 200
                latencies.append(time.perf_counter() - start)

    viewer = threading.Thread(target=page_views, daemon=True)
    viewer.start()
    running.wait(30)
    start = time.perf_counter()
    batch()
    seconds = time.perf_counter() - start
    finished.set()
    viewer.join(60)
    return latencies, seconds


def _decides_within(base: str, le: str) -> tuple[float, float]:
    """The server's own count of 2xx /v1/decide answers within ``le`` seconds, and of all of them."""
    within = total = 0.0
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if 'endpoint="/v1/decide"' in line and 'status="2xx"' in line:
            if line.startswith("tailor_http_request_duration_seconds_bucket") and f'le="{le}"' in line:
                within = float(line.rsplit(" ", 1)[1])
            elif line.startswith("tailor_http_request_duration_seconds_count"):
                total = float(line.rsplit(" ", 1)[1])
    return within, total


def _p(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def _ms(latencies: list[float]) -> str:
    p50, p99, top = (1000 * value for value in (_p(latencies, 50), _p(latencies, 99), max(latencies)))
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "ndjson"])
def test_page_views_are_answered_during_a_10000_recipient_batch(tmp_path: Path, stream: bool) -> None:
    body = tmp_path / "batch.json"
    body.write_text(
        json.dumps({"placements": ["cart_email"], "context": {"locale": "en"}, "recipients": _recipients(BATCH)})
    )
    # curl sends the batch: a client in this process would take the CPU and the GIL from the page views.
    accept = "application/x-ndjson" if stream else "application/json"
    with running_server(TAILOR_RENDER_CACHE_MB="4") as base:
        curl = [
            "curl", "-sS", "--fail", "-o", os.devnull, "-w", "%{size_download}", "-H", "content-type: application/json",
            "-H", f"accept: {accept}", "--data-binary", f"@{body}", f"{base}/v1/render",
        ]  # fmt: skip
        httpx.post(f"{base}/v1/render", json={"placements": ["cart_email"], "recipients": _recipients(300, 10**6)})
        idle, _ = _decide_latencies_while(base, lambda: time.sleep(3))
        before, counted_before = _group_peak_rss(base.pid), _decides_within(base, "0.05")
        sent: list[bytes] = []
        latencies, seconds = _decide_latencies_while(base, lambda: sent.append(subprocess.check_output(curl)))
        grown = _group_peak_rss(base.pid) - before
        within, total = (b - a for a, b in zip(counted_before, _decides_within(base, "0.05"), strict=True))
    print(
        f"\n{accept} batch of {BATCH}: {seconds:.2f} s, {int(sent[0]) / MB:.0f} MB out, "
        f"peak memory +{grown / MB:.0f} MB;"
        f"\n  {len(latencies)} decides during the batch: {_ms(latencies)}\n  {len(idle)} decides without: {_ms(idle)}"
        f"\n  inside the app, {within / max(total, 1):.1%} of the decides during the batch took 50 ms or less"
    )
    assert len(latencies) >= 20  # page views went on during the batch ...
    assert max(latencies) < seconds / 4  # ... and none waited for a large part of it
    assert grown < 60 * MB
