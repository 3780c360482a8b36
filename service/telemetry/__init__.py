"""Decision and outcome events and the log they go to (see events.py for what an event may hold)."""

from service.telemetry.events import (
    OUTCOME_SCHEMA,
    SCHEMA,
    DecisionEvent,
    Event,
    OutcomeEvent,
    Pseudonymizer,
    events_for,
    outcome_event,
)
from service.telemetry.exposures import ExposureFilter
from service.telemetry.log import DecisionLog
from service.telemetry.recorder import DecisionRecorder, open_recorder
from service.telemetry.sinks import HttpBatchSink, JsonLinesSink, MemorySink, Sink, SinkError, process_path

__all__ = [
    "OUTCOME_SCHEMA",
    "SCHEMA",
    "DecisionEvent",
    "DecisionLog",
    "DecisionRecorder",
    "Event",
    "ExposureFilter",
    "HttpBatchSink",
    "JsonLinesSink",
    "MemorySink",
    "OutcomeEvent",
    "Pseudonymizer",
    "Sink",
    "SinkError",
    "events_for",
    "open_recorder",
    "outcome_event",
    "process_path",
]
