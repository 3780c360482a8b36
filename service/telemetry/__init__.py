"""Decision events and the decision log (see events.py for what an event may hold)."""

from service.telemetry.events import SCHEMA, DecisionEvent, Pseudonymizer, events_for
from service.telemetry.exposures import ExposureFilter
from service.telemetry.log import DecisionLog
from service.telemetry.recorder import DecisionRecorder, open_recorder
from service.telemetry.sinks import HttpBatchSink, JsonLinesSink, MemorySink, Sink, SinkError, process_path

__all__ = [
    "SCHEMA",
    "DecisionEvent",
    "DecisionLog",
    "DecisionRecorder",
    "ExposureFilter",
    "HttpBatchSink",
    "JsonLinesSink",
    "MemorySink",
    "Pseudonymizer",
    "Sink",
    "SinkError",
    "events_for",
    "open_recorder",
    "process_path",
]
