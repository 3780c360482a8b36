"""``POST /v1/render`` through the RSGI door answers byte for byte as the routed Litestar handler.

Each request goes to the door (granian's RSGI objects in-process, ``tests/rsgi_fake.py``) and to
the app's routed handler (``TestClient``, the ASGI route that ``TAILOR_INTERFACE=asgi`` serves):
the status, the headers and the body must match, decision ids aside (they differ by worker).
Every request is answered once on each side first, so that both render caches hold the same
blocks and the summaries count the same hits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from service.http import decisions
from service.http.app import create_app
from service.http.decisions import Decisions, in_turns
from service.http.rsgi import Door
from service.settings import Settings
from tests import rsgi_fake
from tests.test_http_fuzz import render_requests

ROOT = Path(__file__).parents[1]
ORIGIN = "https://shop.example"
TOKEN = "admin-token-for-tests-0123"
JSON = {"content-type": "application/json"}
NDJSON = {**JSON, "accept": "application/x-ndjson"}
DECISION_ID = re.compile(rb'"decision_id":"[0-9a-f]{32}"')
UNCOMPARED = {"date", "server", "content-length", "transfer-encoding"}  # the connection's, not the answer's


def _recipients(count: int, *, first: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r-{first + n}",
            "attributes": {
                "first_name": f"Name{n}",
                "cart": [{"sku": "p-1", "price": 9.5 + n % 7}],
                "orders": n % 4,
                "note": "a note of some length " * 16,
            },
            "consent": {"personalization": n % 9 != 0, "analytics": True},
            "context": {"locale": "de-DE" if n % 3 == 0 else "en-US"},
        }
        for n in range(count)
    ]


def _batch(count: int, **fields: Any) -> bytes:
    return msgspec.json.encode({"placements": ["cart_email"], "recipients": _recipients(count), **fields})


BLOCK = b'{"block": "recs_for_you", "recipients": [{"id": "a"}, {}, {"id": "b", "consent": {"personalization": true}}]}'
NOW = b'{"block": "recs_for_you", "context": {"now": "2026-06-01T12:00:00Z"}, "recipients": [{"id": "a"}]}'
CORPUS: list[tuple[str, bytes, dict[str, str]]] = [
    ("ndjson", _batch(12), NDJSON),
    ("document", _batch(12), JSON),
    ("block", BLOCK, NDJSON),
    ("block, document", BLOCK, JSON),
    ("explain", _batch(3, explain=True), NDJSON),
    ("no recipients", b'{"placements": ["cart_email"], "recipients": []}', JSON),
    ("several chunks", _batch(300), NDJSON),  # 2.5 MB out
    ("checked beside the loop", _batch(520), JSON),  # beyond LARGE_BATCH, and a body beyond LARGE_BODY_BYTES
    ("with origin", BLOCK, {**NDJSON, "origin": ORIGIN}),
    ("with other origin", BLOCK, {**NDJSON, "origin": "https://evil.example"}),
    ("charset", BLOCK, {"content-type": "application/json; charset=utf-8"}),
    ("empty", b"", JSON),
    ("not json", b'{"block": ', JSON),
    ("wrong type", b'{"block": 5, "recipients": []}', JSON),
    ("unknown field", b'{"block": "recs_for_you", "recipients": [], "colour": 1}', JSON),
    ("both", b'{"block": "recs_for_you", "placements": ["cart_email"], "recipients": [{}]}', JSON),
    ("neither", b'{"recipients": [{}]}', JSON),
    ("unknown block", b'{"block": "nope", "recipients": [{}]}', JSON),
    ("duplicate key", b'{"block": "recs_for_you", "recipients": [{}, {"id": "a", "id": "a"}]}', JSON),
    ("escaped duplicate", b'{"block": "recs_for_you", "recipients": [{"id": "a", "\\u0069d": "b"}]}', JSON),
    ("huge integer", b'{"block": "recs_for_you", "recipients": [{"attributes": {"n": ' + b"9" * 400 + b"}}]}", JSON),
    ("bad utf-8", b'{"block": "recs_for_you", "recipients": [{"id": "\xff"}]}', JSON),
    ("bad attribute", b'{"block": "recs_for_you", "recipients": [{}, {"attributes": {"orders": [[[1]]]}}]}', JSON),
    ("too many recipients", msgspec.json.encode({"block": "recs_for_you", "recipients": [{}] * 601}), JSON),
    ("too large", b'{"block": "recs_for_you", "recipients": [{"id": "' + b"a" * 1_000_000 + b'"}]}', JSON),
    ("form", b"block=recs_for_you", {"content-type": "application/x-www-form-urlencoded"}),
    ("gzip", BLOCK, {**JSON, "content-encoding": "gzip"}),
    ("client time refused", NOW, JSON),
    ("client time with the token", NOW, {**NDJSON, "authorization": f"Bearer {TOKEN}"}),
]


def _settings() -> Settings:
    return Settings(
        bundle=ROOT, reload_interval=0, cors_origins=ORIGIN, admin_token=TOKEN, max_batch=600,
        max_render_body_bytes=1_000_000,
    )  # fmt: skip


@pytest.fixture(scope="module")
def routed() -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(_settings())) as client:
        yield client


@pytest.fixture(scope="module")
def door() -> Iterator[rsgi_fake.Worker]:
    with rsgi_fake.Worker(Door(create_app(_settings()))) as worker:
        yield worker


def _routed_answer(client: TestClient[Any], body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
    response = client.post("/v1/render", content=body, headers=headers)
    kept = sorted((name, value) for name, value in response.headers.multi_items() if name not in UNCOMPARED)
    return response.status_code, kept, DECISION_ID.sub(b'"decision_id":"-"', response.content)


def _door_answer(door: rsgi_fake.Worker, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
    protocol = door.answer(*rsgi_fake.request("POST", "/v1/render", body, headers))
    kept = sorted((name.lower(), value) for name, value in protocol.headers if name.lower() not in UNCOMPARED)
    return protocol.status, kept, DECISION_ID.sub(b'"decision_id":"-"', protocol.body)


def _both(door: rsgi_fake.Worker, routed: TestClient[Any], body: bytes, headers: dict[str, str]) -> tuple[Any, Any]:
    _door_answer(door, body, headers), _routed_answer(routed, body, headers)  # the render caches warm alike
    return _door_answer(door, body, headers), _routed_answer(routed, body, headers)


@pytest.mark.parametrize(("name", "body", "headers"), CORPUS, ids=[case[0] for case in CORPUS])
def test_the_door_answers_as_the_routed_handler(
    door: rsgi_fake.Worker, routed: TestClient[Any], name: str, body: bytes, headers: dict[str, str]
) -> None:
    through_door, through_litestar = _both(door, routed, body, headers)
    assert through_door == through_litestar, name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(render_requests)
def test_generated_batches_are_answered_as_the_routed_handler(
    door: rsgi_fake.Worker, routed: TestClient[Any], body: dict[str, Any]
) -> None:
    through_door, through_litestar = _both(door, routed, msgspec.json.encode(body), NDJSON)
    assert through_door == through_litestar


def test_a_streamed_answer_is_one_line_a_recipient_and_the_summary(door: rsgi_fake.Worker) -> None:
    protocol = door.answer(*rsgi_fake.request("POST", "/v1/render", _batch(300), NDJSON))
    lines = [json.loads(line) for line in protocol.body.splitlines()]
    assert protocol.streamed
    assert len(protocol.sent) > 2  # several chunks
    assert [line["index"] for line in lines[:-1]] == list(range(300))
    assert lines[-1]["summary"]["recipients"] == 300


def test_the_requests_are_timed_under_their_endpoint(door: rsgi_fake.Worker) -> None:
    door.answer(*rsgi_fake.request("POST", "/v1/render", BLOCK, JSON))
    door.answer(*rsgi_fake.request("POST", "/v1/render", b"{", JSON))
    exposition = door.answer(*rsgi_fake.request("GET", "/metrics")).body.decode()
    for status in ("2xx", "4xx"):
        labels = f'endpoint="/v1/render",method="POST",status="{status}"'
        pattern = r"tailor_http_request_duration_seconds_count\{" + labels + r"\} [1-9]"
        assert re.search(pattern, exposition), status


def test_other_methods_are_litestar_s(door: rsgi_fake.Worker, routed: TestClient[Any]) -> None:
    protocol = door.answer(*rsgi_fake.request("GET", "/v1/render"))
    assert protocol.status == routed.get("/v1/render").status_code == 405


class _LeavingAfterOneChunk(rsgi_fake.Protocol):
    """A client that reads the first chunk of the stream, then goes."""

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> rsgi_fake.Transport:
        transport = super().response_stream(status, headers)
        protocol = self

        class Leaving(rsgi_fake.Transport):
            async def send_bytes(self, data: bytes) -> None:
                await super().send_bytes(data)
                protocol.gone.set()

        return Leaving(transport.protocol)


def _decisions_counted(door: rsgi_fake.Worker) -> float:
    exposition = door.answer(*rsgi_fake.request("GET", "/metrics")).body.decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.startswith("tailor_decisions_total{")
    )


def test_a_client_that_goes_stops_the_rendering(door: rsgi_fake.Worker) -> None:
    scope, plain = rsgi_fake.request("POST", "/v1/render", _batch(520), NDJSON)
    before = _decisions_counted(door)
    protocol = door.answer(scope, _LeavingAfterOneChunk(plain.chunks))
    rendered = _decisions_counted(door) - before
    assert protocol.status == 200
    assert len(protocol.sent) == 1
    # the turn under way ends after its chunk: a few chunks' recipients, not the batch
    assert 0 < rendered < 520 / 4, rendered


class _Ticks(rsgi_fake.Protocol):
    """Notes, at each chunk sent, how often another task on the loop has run so far."""

    ticks = 0
    seen: list[int]

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> rsgi_fake.Transport:
        transport = super().response_stream(status, headers)
        protocol = self
        protocol.seen = []

        class Noting(rsgi_fake.Transport):
            async def send_bytes(self, data: bytes) -> None:
                protocol.seen.append(protocol.ticks)
                await super().send_bytes(data)

        return Noting(transport.protocol)


def test_the_loop_serves_others_while_a_batch_renders(door: rsgi_fake.Worker) -> None:
    scope, plain = rsgi_fake.request("POST", "/v1/render", _batch(300, context={"locale": "fr"}), NDJSON)
    protocol = _Ticks(plain.chunks)

    async def batch_and_ticker() -> None:
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                protocol.ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        await door.app.__rsgi__(scope, protocol)
        done.set()
        await ticking

    door.run(batch_and_ticker())
    # the fake transport never suspends: only the turns of in_turns let the ticker run between chunks
    assert protocol.seen[-1] - protocol.seen[0] >= 2, protocol.seen


def _chunks(count: int, fail_at: int | None = None) -> Iterator[bytes]:
    for n in range(count):
        if n == fail_at:
            raise ValueError("boom")
        yield str(n).encode()


def _collect(chunks: Iterator[bytes], take: int | None = None) -> list[bytes]:
    async def run() -> list[bytes]:
        got: list[bytes] = []
        stream = in_turns(chunks)
        async for chunk in stream:
            got.append(chunk)
            if take is not None and len(got) == take:
                await stream.aclose()
                break
        return got

    return asyncio.run(run())


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 8, 9, 21])
def test_every_chunk_comes_in_order(count: int) -> None:
    assert _collect(_chunks(count)) == [str(n).encode() for n in range(count)]


def test_an_error_while_rendering_reaches_the_loop() -> None:
    with pytest.raises(ValueError, match="boom"):
        _collect(_chunks(30, fail_at=13))


def test_a_consumer_that_stops_stops_the_chunks() -> None:
    source = _chunks(1000)
    assert _collect(source, take=2) == [b"0", b"1"]
    left = sum(1 for _ in source)
    assert left >= 1000 - 3  # at most the chunk under way went on


def test_the_door_answers_without_litestar() -> None:
    async def litestar(*_: Any) -> None:
        raise AssertionError("the request reached Litestar")

    with rsgi_fake.Worker(Door(create_app(_settings()))) as worker:
        worker.app.bridge.app = litestar  # after the lifespan start-up, which is Litestar's
        assert worker.answer(*rsgi_fake.request("POST", "/v1/render", BLOCK, NDJSON)).status == 200
        assert worker.answer(*rsgi_fake.request("POST", "/v1/render", b"{", JSON)).status == 400


def test_concurrent_batches_take_turns_and_the_loop_runs_between_any_two_chunks() -> None:
    made: list[tuple[str, int]] = []  # (batch, the ticker's count) as each chunk is rendered
    ticks = 0

    def chunks(name: str, count: int) -> Iterator[bytes]:
        for n in range(count):
            made.append((name, ticks))
            yield f"{name}{n}".encode()

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def batches() -> list[list[bytes]]:
        done = asyncio.Event()
        ticking = asyncio.ensure_future(ticker(done))

        async def collect(name: str, count: int) -> list[bytes]:
            return [chunk async for chunk in in_turns(chunks(name, count))]

        both = await asyncio.gather(collect("a", 6), collect("b", 9))
        done.set()
        await ticking
        return list(both)

    first, second = asyncio.run(batches())
    assert first == [f"a{n}".encode() for n in range(6)]
    assert second == [f"b{n}".encode() for n in range(9)]
    assert [name for name, _ in made[:12]] == ["a", "b"] * 6  # one chunk each in turn while both last
    counts = [count for _, count in made]
    assert all(later > earlier for earlier, later in itertools.pairwise(counts)), counts


# (bytes each result writes, seconds each takes) -> the results in each chunk: a chunk ends when
# the buffer reaches STREAM_CHUNK_BYTES or when RENDER_SLICE_S has passed since it began
SLICES = [
    pytest.param([100] * 5, [0.0] * 5, [5], id="small and quick: one chunk"),
    pytest.param([60_000] * 5, [0.0] * 5, [3, 2], id="cut by size"),
    pytest.param([100] * 6, [0.0004] * 6, [3, 3], id="cut by time"),
    pytest.param([100] * 3, [0.005, 0.0, 0.0], [1, 2], id="one slow result is a chunk of its own"),
    pytest.param([100, 140_000, 100, 100], [0.0, 0.0, 0.0002, 0.0002], [2, 2], id="size then time"),
    pytest.param([], [], [], id="nothing"),
]


@pytest.mark.parametrize(("sizes", "seconds", "per_chunk"), SLICES)
def test_a_chunk_is_one_slice_of_rendering(
    sizes: list[int], seconds: list[float], per_chunk: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(decisions, "perf_counter", lambda: now[0])
    buffer = bytearray()

    def writing() -> Iterator[None]:
        for size, took in zip(sizes, seconds, strict=True):
            now[0] += took
            buffer.extend(b"x" * size)
            yield None

    chunks = [len(chunk) for chunk in decisions._slices(buffer, writing())]
    left = [len(buffer)] if buffer else []  # the rest goes out with the end of the response
    assert chunks + left == [sum(sizes[start : start + count]) for start, count in _starts(per_chunk)]


def _starts(per_chunk: list[int]) -> list[tuple[int, int]]:
    """(the first result of each chunk, how many results it holds)."""
    starts = [sum(per_chunk[:n]) for n in range(len(per_chunk))]
    return list(zip(starts, per_chunk, strict=True))


@pytest.mark.parametrize(
    ("tick", "sent"),
    [
        pytest.param(0.0, range(1, 250), id="cut-by-bytes"),  # the clock stands: chunks of 128 KiB
        pytest.param(1.0, range(250, 251), id="cut-by-time"),  # every result outlasts its slice
    ],
)
def test_an_error_mid_stream_is_logged_and_ends_the_stream_short(
    door: rsgi_fake.Worker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tick: float,
    sent: range,
) -> None:
    now = itertools.count(step=tick)
    monkeypatch.setattr(decisions, "perf_counter", lambda: next(now))
    recipient = Decisions.recipient

    def failing(self: Decisions, bundle: Any, data: Any, index: int, tally: Any) -> Any:
        if index == 250:
            raise RuntimeError("a bug")
        return recipient(self, bundle, data, index, tally)

    monkeypatch.setattr(Decisions, "recipient", failing)
    with caplog.at_level("ERROR", logger="tailor.http"):
        protocol = door.answer(*rsgi_fake.request("POST", "/v1/render", _batch(300), NDJSON))
    lines = protocol.body.splitlines()
    assert protocol.status == 200  # sent before the error
    # The chunks sent before the error went out whole and in order; nothing after, no summary.
    assert len(lines) in sent
    assert [msgspec.json.decode(line)["index"] for line in lines] == list(range(len(lines)))
    assert b'"summary"' not in protocol.body
    assert any(record.message == "unhandled error" for record in caplog.records)
    exposition = door.answer(*rsgi_fake.request("GET", "/metrics")).body.decode()
    assert 'tailor_http_request_duration_seconds_count{endpoint="/v1/render",method="POST",status="5xx"}' in exposition
