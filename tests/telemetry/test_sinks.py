"""Sinks: the rotated JSON-lines file, the HTTP batch sink (mocked and against a real collector)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import msgspec
import pytest

from service.telemetry import DecisionEvent, HttpBatchSink, JsonLinesSink, MemorySink, SinkError, process_path
from service.telemetry.sinks import NDJSON, encode_lines
from tests.telemetry.conftest import NOW, Collector


def numbered(count: int, start: int = 1) -> list[DecisionEvent]:
    """Events of equal encoded length (decision ids d-01, d-02 …), so sizes are easy to reason about."""
    return [
        DecisionEvent(decision_id=f"d-{n:02}", time=NOW, revision="r", placement="p", variant="v", reason="default")
        for n in range(start, start + count)
    ]


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["decision_id"] for line in path.read_text().splitlines()]


LINE = len(encode_lines(numbered(1)))


def test_lines_are_appended_to_a_file_in_a_new_folder(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "today" / "decisions.jsonl"
    sink = JsonLinesSink(path)
    sink.write(numbered(2))
    sink.write(numbered(1, start=3))
    sink.close()
    assert ids_in(path) == ["d-01", "d-02", "d-03"]
    assert msgspec.json.decode(path.read_bytes().splitlines()[0], type=DecisionEvent) == numbered(1)[0]


# backups kept → which decision ids each file holds after 7 events, at most 2 lines per file
ROTATION = [
    pytest.param(2, {"": ["d-07"], ".1": ["d-05", "d-06"], ".2": ["d-03", "d-04"]}, id="two backups"),
    pytest.param(1, {"": ["d-07"], ".1": ["d-05", "d-06"]}, id="one backup"),
    pytest.param(0, {"": ["d-07"]}, id="no backups"),
]


@pytest.mark.parametrize(("backups", "files"), ROTATION)
def test_the_file_rotates_before_it_would_pass_max_bytes(
    backups: int, files: dict[str, list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "decisions.jsonl"
    sink = JsonLinesSink(path, max_bytes=2 * LINE + 1, backups=backups)
    for start in range(1, 8, 3):  # batches of 3, 3 and 1: rotation happens inside a batch too
        sink.write(numbered(min(3, 8 - start), start=start))
    sink.close()
    assert {p.name.removeprefix("decisions.jsonl"): ids_in(p) for p in tmp_path.iterdir()} == files
    assert all(p.stat().st_size <= 2 * LINE + 1 for p in tmp_path.iterdir())


def test_an_existing_file_counts_towards_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(encode_lines(numbered(2)))
    sink = JsonLinesSink(path, max_bytes=2 * LINE, backups=1)
    sink.write(numbered(1, start=3))
    sink.close()
    assert (ids_in(path.with_name("decisions.jsonl.1")), ids_in(path)) == (["d-01", "d-02"], ["d-03"])


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    sink = JsonLinesSink(path, max_bytes=LINE // 2, backups=3)
    sink.write(numbered(2))
    sink.close()
    assert (ids_in(path.with_name("decisions.jsonl.1")), ids_in(path)) == (["d-01"], ["d-02"])


def test_process_path_names_one_file_per_worker() -> None:
    assert process_path(Path("/var/log/tailor/decisions.jsonl"), pid=4711) == Path(
        "/var/log/tailor/decisions.4711.jsonl"
    )


def mocked(statuses: list[int | type[Exception]]) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose collector answers with these statuses (or raises these errors) in turn."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        status = statuses.pop(0)
        if isinstance(status, int):
            return httpx.Response(status)
        raise status("collector unreachable")

    return httpx.Client(transport=httpx.MockTransport(answer)), requests


# collector answers → attempts made, pauses taken, whether the sink gives up
RETRIES = [
    pytest.param([204], 1, [], False, id="accepted"),
    pytest.param([503, 502, 200], 3, [0.25, 0.5], False, id="5xx retried until accepted"),
    pytest.param([httpx.ConnectError, 429, 202], 3, [0.25, 0.5], False, id="transport error and 429 retried"),
    pytest.param([500, 500, 500], 3, [0.25, 0.5], True, id="gives up after the retries"),
    pytest.param([400], 1, [], True, id="a 4xx is not retried"),
]


@pytest.mark.parametrize(("statuses", "attempts", "pauses", "gives_up"), RETRIES)
def test_http_sink_retries_with_backoff(
    statuses: list[int | type[Exception]], attempts: int, pauses: list[float], gives_up: bool
) -> None:
    client, requests = mocked(statuses)
    slept: list[float] = []
    sink = HttpBatchSink("http://collector.test/events", client=client, retries=2, sleep=slept.append)
    if gives_up:
        with pytest.raises(SinkError, match=f"after {attempts} attempts"):
            sink.write(numbered(2))
    else:
        sink.write(numbered(2))
    assert (len(requests), slept) == (attempts, pauses)
    assert {r.content for r in requests} == {encode_lines(numbered(2))}
    assert {r.headers["content-type"] for r in requests} == {NDJSON}
    sink.close()
    assert not client.is_closed  # a client passed in belongs to the caller
    client.close()


def test_http_sink_posts_ndjson_to_a_real_collector(collector: Collector) -> None:
    sink = HttpBatchSink(collector.url, timeout=5)
    sink.write(numbered(3))
    sink.close()
    [(content_type, body)] = collector.received
    assert content_type == NDJSON
    assert [json.loads(line)["decision_id"] for line in body.splitlines()] == ["d-01", "d-02", "d-03"]


def test_http_sink_retries_a_real_503(collector: Collector) -> None:
    collector.statuses = [503]
    slept: list[float] = []
    sink = HttpBatchSink(collector.url, timeout=5, sleep=slept.append)
    sink.write(numbered(1))
    sink.close()
    assert (len(collector.received), slept) == (1, [0.25])


def test_http_sink_gives_up_on_a_closed_port(collector: Collector) -> None:
    url = collector.url
    collector.server.shutdown()
    collector.server.server_close()  # nothing listens on the port any more
    sink = HttpBatchSink(url, timeout=2, retries=1, sleep=lambda _: None)
    with pytest.raises(SinkError, match="ConnectError"):
        sink.write(numbered(1))
    sink.close()


def test_memory_sink_keeps_batches_and_waits_for_events() -> None:
    sink = MemorySink()
    assert not sink.wait_for(1, timeout=0)
    sink.write(numbered(2))
    sink.write(numbered(1, start=3))
    sink.close()
    assert (len(sink.batches), sink.events, sink.closed) == (2, numbered(3), True)
    assert sink.wait_for(3, timeout=0)
