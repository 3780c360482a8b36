"""One call for the HTTP layer: a decision in, its events queued, the request on its way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from service.core.outcome import Decision
from service.telemetry.events import Pseudonymizer, events_for, outcome_event
from service.telemetry.log import DEFAULT_QUEUE_SIZE, DecisionLog
from service.telemetry.sinks import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, HttpBatchSink, JsonLinesSink, Sink, process_path


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DecisionRecorder:
    """Builds a decision's events with the server's clock and submits them to the log."""

    def __init__(
        self, log: DecisionLog, pseudonymizer: Pseudonymizer, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.log = log
        self.pseudonymizer = pseudonymizer
        self.clock = clock

    def record(
        self, decision: Decision, *, decision_id: str, revision: str, visitor_id: str | None, analytics_consent: bool
    ) -> None:
        """Queue the events of one decision; never blocks (see ``DecisionLog.submit``)."""
        events = events_for(
            decision,
            decision_id=decision_id,
            revision=revision,
            time=self.clock(),  # when it was decided, not the request's ``context.now``, which callers may set
            visitor_id=visitor_id,
            analytics_consent=analytics_consent,
            pseudonymizer=self.pseudonymizer,
        )
        self.log.submit(events)

    def record_outcome(
        self,
        *,
        visitor_id: str,
        metric: str,
        value: float | None = None,
        time: datetime | None = None,
        analytics_consent: bool,
    ) -> bool:
        """Queue one outcome (for ``POST /v1/events``); False when dropped for lack of analytics consent.

        ``time`` is the server's clock unless the caller passes one it trusts. Raises ``ValueError``
        naming the field for an outcome no analysis could use.
        """
        event = outcome_event(
            visitor_id=visitor_id,
            metric=metric,
            value=value,
            time=self.clock() if time is None else time,
            analytics_consent=analytics_consent,
            pseudonymizer=self.pseudonymizer,
        )
        if event is None:
            return False
        self.log.submit((event,))
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the log (at shutdown); False if events were still queued after ``timeout``."""
        return self.log.close() if timeout is None else self.log.close(timeout)


def open_recorder(
    *,
    path: Path | None,
    url: str | None,
    key: bytes,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
    per_process: bool = False,
) -> DecisionRecorder | None:
    """A recorder writing to the collector at ``url`` if given, else to the file at ``path``; None if neither.

    ``per_process`` gives each worker process a file of its own (see ``process_path``). The key
    is checked before any thread starts or file opens, so a bad key fails start-up cleanly.
    """
    if url is None and path is None:
        return None
    pseudonymizer = Pseudonymizer(key)
    sink: Sink
    if url is not None:
        sink = HttpBatchSink(url)
    else:
        assert path is not None
        sink = JsonLinesSink(process_path(path) if per_process else path, max_bytes, backups)
    return DecisionRecorder(DecisionLog(sink, queue_size=queue_size), pseudonymizer)
