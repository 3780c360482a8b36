"""Outcome events: their own versioned schema, pseudonymized like decisions, dropped without consent."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from service.telemetry import (
    OUTCOME_SCHEMA,
    DecisionLog,
    DecisionRecorder,
    JsonLinesSink,
    MemorySink,
    OutcomeEvent,
    Pseudonymizer,
    outcome_event,
)
from tests.telemetry.conftest import KEY, NOW, decision_for

WAIT = 5.0


def test_an_outcome_is_tied_to_the_visitors_pseudonym_in_utc() -> None:
    pseudonymizer = Pseudonymizer(KEY)
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    event = outcome_event(
        visitor_id="anna@example.com", metric="purchase", value=None, time=local,
        analytics_consent=True, pseudonymizer=pseudonymizer,
    )  # fmt: skip
    assert event == OutcomeEvent(time=NOW, visitor=pseudonymizer("anna@example.com"), metric="purchase", value=1.0)
    line = json.loads(msgspec.json.encode(event))
    assert line == {
        "schema": OUTCOME_SCHEMA, "time": "2026-11-22T12:00:00Z", "visitor": pseudonymizer("anna@example.com"),
        "metric": "purchase", "value": 1.0,
    }  # fmt: skip
    assert event.time.tzinfo is UTC


def test_an_outcome_without_analytics_consent_is_dropped() -> None:
    event = outcome_event(
        visitor_id="v", metric="purchase", value=3, time=NOW, analytics_consent=False, pseudonymizer=Pseudonymizer(KEY)
    )
    assert event is None


BAD = [
    pytest.param({"visitor_id": ""}, "visitor_id", id="empty visitor"),
    pytest.param({"metric": ""}, "metric", id="empty metric"),
    pytest.param({"metric": "m" * 65}, "metric", id="long metric"),
    pytest.param({"metric": "a\nb"}, "metric", id="control character"),
    pytest.param({"value": math.nan}, "value", id="nan"),
    pytest.param({"value": math.inf}, "value", id="infinity"),
    pytest.param({"time": datetime(2026, 1, 1)}, "time", id="naive time"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_an_outcome_no_analysis_could_use_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {"visitor_id": "v", "metric": "purchase", "value": 2.5, "time": NOW}
    with pytest.raises(ValueError, match=f"^{field}: "):
        outcome_event(**{**fields, **change}, analytics_consent=True, pseudonymizer=Pseudonymizer(KEY))  # type: ignore[arg-type]


def test_outcomes_and_decisions_share_the_log_and_its_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    recorder = DecisionRecorder(DecisionLog(JsonLinesSink(path)), Pseudonymizer(KEY), clock=lambda: NOW)
    recorder.record(decision_for("v-1"), decision_id="d-1", revision="r", visitor_id="v-1", analytics_consent=True)
    assert recorder.record_outcome(visitor_id="v-1", metric="purchase", value=30.0, analytics_consent=True)
    assert not recorder.record_outcome(visitor_id="v-2", metric="purchase", analytics_consent=False)
    assert recorder.close(timeout=WAIT)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["schema"] for line in lines] == ["tailor.decision/1", "tailor.decision/1", OUTCOME_SCHEMA]
    assert lines[0]["visitor"] == lines[2]["visitor"]  # the join key of the analysis
    assert (lines[2]["value"], lines[2]["time"]) == (30.0, "2026-11-22T12:00:00Z")


def test_the_exposure_filter_lets_outcomes_pass() -> None:
    sink = MemorySink()
    recorder = DecisionRecorder(DecisionLog(sink), Pseudonymizer(KEY), clock=lambda: NOW)
    for _ in range(2):
        recorder.record_outcome(visitor_id="v", metric="click", analytics_consent=True)
    assert recorder.close(timeout=WAIT)
    assert [type(e).__name__ for e in sink.events] == ["OutcomeEvent", "OutcomeEvent"]
