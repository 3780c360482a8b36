"""The decision log: a bounded queue the request path drops events into, and one writer thread.

A request must never wait for telemetry. ``submit`` only appends to a bounded queue under a lock
that nothing holds for longer than a few list operations; when the queue is full the events are
dropped and counted instead. The writer thread takes batches (up to ``max_batch`` events, or
whatever arrived within ``max_wait`` seconds), marks repeated exposures, and hands them to the
sink. A sink that fails is counted and logged, and the thread carries on with the next batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from service.telemetry.events import Event
from service.telemetry.exposures import ExposureFilter
from service.telemetry.sinks import Sink, SinkError

log = logging.getLogger("tailor.telemetry")

DEFAULT_QUEUE_SIZE = 10_000  # decisions; with a few placements each, a few MB at most
DEFAULT_MAX_BATCH = 500  # events per sink call
DEFAULT_MAX_WAIT = 1.0  # seconds an event may wait for its batch to fill
DEFAULT_CLOSE_TIMEOUT = 5.0
IDLE_RETRY_S = 1.0  # seconds between retries of an unhealthy sink while no events arrive


class DecisionLog:
    """Queues events for a sink without ever blocking the caller.

    Counters, all in events: ``submitted`` (accepted into the queue), ``dropped`` (queue full or
    log closed), ``written`` (the sink took them), ``lost`` (the sink failed on them); every
    submitted event ends up in exactly one of ``written`` and ``lost`` (or is still pending).
    ``sink_errors`` counts failed sink calls.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait: float = DEFAULT_MAX_WAIT,
        exposures: ExposureFilter | None = None,
    ) -> None:
        if queue_size <= 0 or max_batch <= 0:
            raise ValueError("queue_size and max_batch must be positive")
        self.sink = sink
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.max_wait = max_wait
        # Exposures are marked here, in the writer, rather than at submit: an exposure dropped
        # from a full queue is then not remembered, and the visitor's next decision carries it.
        self.exposures = exposures if exposures is not None else ExposureFilter()
        self.submitted = self.dropped = self.written = self.lost = self.sink_errors = 0
        self._queue: deque[Sequence[Event]] = deque()
        self._queued = 0  # events in the queue
        self._ready = threading.Condition()
        self._closing = False
        self._failures = 0  # failed writes since the sink last succeeded
        self.on_change: Callable[[], None] | None = None  # called by the writer after each batch or retry
        self._thread = threading.Thread(target=self._run, name="tailor-decision-log", daemon=True)
        self._thread.start()

    def submit(self, events: Sequence[Event]) -> bool:
        """Queue one decision's events, or drop and count them if the queue is full (False). Never blocks."""
        if not events:
            return True
        with self._ready:
            if self._closing or len(self._queue) >= self.queue_size:
                self.dropped += len(events)
                return False
            self._queue.append(events)
            self._queued += len(events)
            self.submitted += len(events)
            # Wake the writer only when it has something new to do: a first decision to wait on,
            # or a full batch. Waking it on every request would cost a thread switch each.
            if len(self._queue) == 1 or self._queued >= self.max_batch:
                self._ready.notify()
        return True

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> bool:
        """Write what is queued, close the sink and stop; False if that took longer than ``timeout``."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Decisions waiting in the queue."""
        with self._ready:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            batch, closing = self._next_batch()
            if batch:
                self._write(batch)
            elif closing:
                break
            else:
                self._retry()
            if self.on_change is not None:
                self.on_change()
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001 -- shutdown goes on whatever the sink does
            log.warning("decision log sink failed to close: %s", type(exc).__name__)

    def _next_batch(self) -> tuple[list[Event], bool]:
        """Wait for a first decision, then up to ``max_wait`` for more, up to ``max_batch`` events."""
        with self._ready:
            # An unhealthy sink is retried while idle too: a worker that gets no traffic must not
            # report a broken log forever after the folder was fixed.
            idle = None if self.healthy else IDLE_RETRY_S
            if not self._ready.wait_for(lambda: self._queue or self._closing, idle):
                return [], False
            deadline = time.monotonic() + self.max_wait
            while not self._closing and self._queued < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0 or not self._ready.wait(left):
                    break
            batch: list[Event] = []
            while self._queue and len(batch) < self.max_batch:
                batch.extend(self._queue.popleft())  # a decision's events stay in one batch
            self._queued -= len(batch)
            return batch, self._closing

    @property
    def healthy(self) -> bool:
        """False while the sink cannot write: events are then being lost (and counted)."""
        return self._failures == 0 and self.sink.healthy

    def _retry(self) -> None:
        try:
            self.sink.retry()
        except Exception as exc:  # noqa: BLE001 -- the sink stays unhealthy; the next batch tries again
            log.debug("decision log sink retry failed: %s", _cause(exc))
        if self.sink.healthy and self._failures:
            log.warning("decision log sink recovered after %d failed writes", self._failures)
            self._failures = 0

    def _write(self, batch: list[Event]) -> None:
        try:
            self.sink.write(self.exposures.apply(batch))
        except Exception as exc:  # noqa: BLE001 -- a failing sink must not stop the log
            # A sink that got part of the batch out says how much; of any other error, assume nothing.
            reached = exc.written if isinstance(exc, SinkError) else 0
            self.sink_errors += 1
            self.written += reached
            self.lost += len(batch) - reached
            if not self._failures:  # one warning per outage, not one per batch
                log.warning("decision log sink failed, events are being lost: %s", _cause(exc))
            self._failures += 1
            return
        self.written += len(batch)
        if self._failures:
            log.warning("decision log sink recovered after %d failed writes", self._failures)
        self._failures = 0


def _cause(exc: Exception) -> str:
    """Our own sink errors say what failed without event data; of others, only the kind is safe."""
    return str(exc) if isinstance(exc, SinkError) else type(exc).__name__
