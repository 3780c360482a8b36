"""``POST /v1/events``: outcomes (conversions, revenue) into the sinks of the decision log.

A batch is checked whole before any of it is queued: a bad event is a 400 naming its JSON path
and nothing of the batch is written, so a client can fix and resend it without duplicates.
Outcomes join decisions by pseudonym only (the decision events' key), so an outcome without
analytics consent is tied to nobody, useless to any analysis, and dropped (and counted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from service.core.errors import RequestError
from service.core.values import aware
from service.http import wire
from service.settings import Settings
from service.telemetry.events import FUTURE_SLACK_SECONDS, OutcomeEvent, outcome_event
from service.telemetry.metrics import Metrics
from service.telemetry.recorder import DecisionRecorder

# Room for one event written generously (a 256-character id in \u escapes, spaces): a batch the
# schema allows must reach the decoder and be judged there, not stop at a body limit first.
EVENT_BODY_BYTES = 4096
EVENT_TIME_REFUSED = (
    "an event time is accepted only when the server allows client time (TAILOR_ALLOW_CLIENT_TIME) "
    "or with the admin token; leave it out to use the server's clock"
)

EVENT_TIME_AHEAD = "an event time may be at most a day after the server's clock (until {latest}); is its clock wrong?"


class Outcomes:
    """Checks a batch of outcomes, pseudonymizes and queues the consented ones, and counts all."""

    def __init__(
        self, settings: Settings, metrics: Metrics, recorder: DecisionRecorder | None, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.recorder = recorder
        self.clock = clock

    def accept(self, data: wire.EventsRequest, *, client_time: bool) -> wire.EventsAccepted:
        check_events(data, self.settings, client_time=client_time, now=self.clock())
        consented = [item for item in data.events if item.consent.analytics]
        queued = 0
        if consented and self.recorder is not None:
            events = [self._event(item, self.recorder) for item in consented]
            queued = len(events) if self.recorder.log.submit(events) else 0  # the whole batch, or none of it
        answer = wire.EventsAccepted(queued, len(consented) - queued, len(data.events) - len(consented))
        for result, count in (
            ("accepted", queued),
            ("refused", answer.refused),
            ("no_consent", answer.dropped_no_consent),
        ):
            if count:
                self.metrics.outcomes.labels(result).inc(count)
        return answer

    def _event(self, item: wire.OutcomeIn, recorder: DecisionRecorder) -> OutcomeEvent:
        event = outcome_event(
            visitor_id=item.visitor_id,
            metric=item.metric,
            value=item.value,
            time=_time(item.time, self.clock),
            analytics_consent=True,
            pseudonymizer=recorder.pseudonymizer,
        )
        assert event is not None  # consented, and checked by check_events and the wire struct
        return event


def body_limit(settings: Settings) -> int:
    """The largest ``POST /v1/events`` body: enough for one event more than the batch limit allows."""
    return max(settings.max_body_bytes, (settings.max_events + 1) * EVENT_BODY_BYTES)


def check_events(data: wire.EventsRequest, settings: Settings, *, client_time: bool, now: datetime) -> None:
    """The batch limit, no event time from a client that may not name one, and none a day ahead of ours."""
    if len(data.events) > settings.max_events:
        raise RequestError(f"at most {settings.max_events} events per request", "$.events")
    latest = now + timedelta(seconds=FUTURE_SLACK_SECONDS)
    for index, item in enumerate(data.events):
        if item.time is None:
            continue
        if not client_time:
            raise RequestError(EVENT_TIME_REFUSED, f"$.events[{index}].time")
        if aware(item.time) > latest:  # one such event made `tailor analyze` refuse the whole log
            raise RequestError(
                EVENT_TIME_AHEAD.format(latest=f"{latest:%Y-%m-%dT%H:%M:%SZ}"), f"$.events[{index}].time"
            )


def _time(given: datetime | None, clock: Callable[[], datetime]) -> datetime:
    return clock() if given is None else aware(given)
