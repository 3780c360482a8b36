"""The decision log: bounded, never blocking, counting what it drops, surviving its sink, flushing on close."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from service.telemetry import DecisionEvent, DecisionLog, Event, HttpBatchSink, MemorySink
from tests.telemetry.conftest import NOW, Collector, decisions

WAIT = 5.0  # seconds; only ever reached when a test is failing
NEVER = 60.0  # a max_wait no test waits for: only a full batch or close() writes


def decision(number: int, placements: int = 1, visitor: str | None = None) -> list[DecisionEvent]:
    return [
        DecisionEvent(
            decision_id=f"d-{number}",
            time=NOW,
            revision="r",
            placement=f"p{index}",
            variant="bold",
            reason="experiment",
            experiment="x",
            arm="bold",
            bucket=7,
            visitor=visitor,
            exposure=visitor is not None,
        )
        for index in range(placements)
    ]


class BlockedSink(MemorySink):
    """Blocks in write until released, so the queue behind it fills up."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, batch: Sequence[Event]) -> None:
        self.entered.set()
        assert self.release.wait(WAIT)
        super().write(batch)


class FlakySink(MemorySink):
    """Fails its first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, batch: Sequence[Event]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        super().write(batch)


def test_close_writes_everything_queued_and_closes_the_sink() -> None:
    sink = MemorySink()
    log = DecisionLog(sink, max_wait=NEVER, max_batch=1000)
    for number in range(10):
        log.submit(decision(number, placements=2))
    assert log.close(WAIT)
    assert [e.decision_id for e in decisions(sink.events)] == [f"d-{n}" for n in range(10) for _ in range(2)]
    assert (log.submitted, log.written, log.dropped, log.lost, log.sink_errors, sink.closed) == (20, 20, 0, 0, 0, True)


def test_a_full_batch_is_written_without_waiting_and_decisions_stay_whole() -> None:
    sink = MemorySink()
    log = DecisionLog(sink, max_wait=NEVER, max_batch=4)
    for number in range(3):
        log.submit(decision(number, placements=3))
    assert sink.wait_for(6, WAIT)
    assert log.close(WAIT)
    # a batch takes whole decisions until it holds max_batch events, so it may run over by one decision
    assert [len(batch) for batch in sink.batches] == [6, 3]


def test_a_partial_batch_is_written_after_max_wait() -> None:
    sink = MemorySink()
    log = DecisionLog(sink, max_wait=0.01, max_batch=1000)
    log.submit(decision(1))
    assert sink.wait_for(1, WAIT)
    assert log.close(WAIT)


def test_submit_never_waits_for_a_blocked_sink_and_counts_what_it_drops() -> None:
    sink = BlockedSink()
    log = DecisionLog(sink, queue_size=5, max_wait=0)
    log.submit(decision(0, placements=2))
    assert sink.entered.wait(WAIT)  # the writer holds decision 0 and is stuck in the sink

    def flood() -> None:
        for number in range(1, 21):
            log.submit(decision(number, placements=2))

    submitter = threading.Thread(target=flood)
    submitter.start()
    submitter.join(WAIT)
    finished_while_blocked = not submitter.is_alive() and not sink.release.is_set()
    sink.release.set()
    assert finished_while_blocked
    assert (log.submitted, log.dropped, log.pending) == (2 + 5 * 2, 15 * 2, 5)
    assert log.close(WAIT)
    assert [e.decision_id for e in decisions(sink.events)][::2] == [f"d-{n}" for n in range(6)]
    assert log.written == 12


def test_a_failing_sink_is_counted_and_the_log_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySink(failures=2)
    log = DecisionLog(sink, max_wait=NEVER, max_batch=1)
    with caplog.at_level(logging.WARNING, logger="tailor.telemetry"):
        for number in range(4):
            log.submit(decision(number, visitor="pseudonym-of-a-visitor"))
        assert log.close(WAIT)
    assert (log.sink_errors, log.lost, log.written) == (2, 2, 2)
    assert [e.decision_id for e in decisions(sink.events)] == ["d-2", "d-3"]
    assert [r.getMessage() for r in caplog.records] == [
        "decision log sink failed, events are being lost: OSError",  # once per outage, not per batch
        "decision log sink recovered after 2 failed writes",
    ]
    assert "pseudonym" not in caplog.text


def test_a_sink_failing_to_close_does_not_stop_the_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    class BadClose(MemorySink):
        def close(self) -> None:
            raise OSError("gone")

    log = DecisionLog(BadClose())
    with caplog.at_level(logging.WARNING, logger="tailor.telemetry"):
        assert log.close(WAIT)
    assert "failed to close: OSError" in caplog.text


def test_after_close_events_are_dropped_and_counted() -> None:
    log = DecisionLog(MemorySink())
    assert log.close(WAIT)
    log.submit(decision(1, placements=2))
    log.submit([])
    assert (log.submitted, log.dropped) == (0, 2)


def test_the_writer_marks_repeated_exposures() -> None:
    sink = MemorySink()
    log = DecisionLog(sink, max_wait=NEVER)
    for number in range(3):
        log.submit(decision(number, visitor="a"))
    assert log.close(WAIT)
    assert [e.exposure for e in decisions(sink.events)] == [True, False, False]


def test_an_exposure_dropped_from_a_full_queue_is_not_remembered() -> None:
    sink = BlockedSink()
    log = DecisionLog(sink, queue_size=1, max_wait=0)
    log.submit(decision(0))
    assert sink.entered.wait(WAIT)
    log.submit(decision(1))  # fills the queue
    log.submit(decision(2, visitor="a"))  # dropped: visitor a's first exposure never reaches the sink
    sink.release.set()
    assert sink.wait_for(2, WAIT)
    log.submit(decision(3, visitor="a"))
    assert log.close(WAIT)
    logged = decisions(sink.events)
    assert [(e.decision_id, e.exposure) for e in logged] == [("d-0", False), ("d-1", False), ("d-3", True)]


@pytest.mark.parametrize(("queue_size", "max_batch"), [(0, 1), (1, 0)])
def test_a_queue_or_batch_of_nothing_is_refused(queue_size: int, max_batch: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        DecisionLog(MemorySink(), queue_size=queue_size, max_batch=max_batch)


def test_decisions_reach_a_real_collector(collector: Collector) -> None:
    collector.statuses = [503]  # the first batch is refused once, then taken
    log = DecisionLog(HttpBatchSink(collector.url, timeout=WAIT, sleep=lambda _: None), max_wait=NEVER)
    for number in range(5):
        log.submit(decision(number, placements=2, visitor=f"v{number}"))
    assert log.close(WAIT)
    assert (log.written, log.sink_errors) == (10, 0)
    lines = b"".join(body for _, body in collector.received).splitlines()
    assert len(lines) == 10
