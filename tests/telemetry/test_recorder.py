"""The recorder: the one call the HTTP layer makes after each decision."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.telemetry import DecisionLog, DecisionRecorder, MemorySink, Pseudonymizer, open_recorder
from tests.telemetry.conftest import KEY, QA_BOLD, Collector, decision_for, decisions

SERVER_TIME = datetime(2026, 11, 22, 12, 0, 3, tzinfo=UTC)


def test_record_queues_the_events_with_the_server_clock_and_a_pseudonym() -> None:
    sink = MemorySink()
    pseudonymizer = Pseudonymizer(KEY)
    recorder = DecisionRecorder(DecisionLog(sink), pseudonymizer, clock=lambda: SERVER_TIME)
    for _ in range(2):
        recorder.record(
            decision_for(QA_BOLD, {"email": "qa@example.com"}, placements=["home_hero", "promo_banner"]),
            decision_id="d-1",
            revision="rev-1",
            visitor_id=QA_BOLD,
            analytics_consent=True,
        )
    assert recorder.close(timeout=5)
    events = decisions(sink.events)
    assert [(e.placement, e.reason, e.exposure) for e in events] == [
        ("home_hero", "forced", True),
        ("promo_banner", "default", False),
        ("home_hero", "forced", False),  # the same visitor and arm again: no second exposure
        ("promo_banner", "default", False),
    ]
    assert {(e.time, e.visitor, e.revision) for e in events} == {(SERVER_TIME, pseudonymizer(QA_BOLD), "rev-1")}


def test_record_without_consent_ties_the_events_to_nobody() -> None:
    sink = MemorySink()
    recorder = DecisionRecorder(DecisionLog(sink), Pseudonymizer(KEY))
    recorder.record(decision_for(QA_BOLD), decision_id="d-1", revision="r", visitor_id=QA_BOLD, analytics_consent=False)
    assert recorder.close()
    assert {(e.visitor, e.segments, e.exposure) for e in decisions(sink.events)} == {(None, (), False)}
    assert all(e.time.tzinfo is UTC for e in sink.events)


def test_open_recorder_writes_to_a_file(tmp_path: Path) -> None:
    recorder = open_recorder(path=tmp_path / "decisions.jsonl", url=None, key=KEY)
    assert recorder is not None
    recorder.record(decision_for("v-vip"), decision_id="d-1", revision="r", visitor_id="v-vip", analytics_consent=True)
    assert recorder.close(timeout=5)
    assert len((tmp_path / "decisions.jsonl").read_bytes().splitlines()) == 2


def test_open_recorder_prefers_a_collector(collector: Collector, tmp_path: Path) -> None:
    recorder = open_recorder(path=tmp_path / "decisions.jsonl", url=collector.url, key=KEY)
    assert recorder is not None
    recorder.record(decision_for("v-vip"), decision_id="d-1", revision="r", visitor_id="v-vip", analytics_consent=True)
    assert recorder.close(timeout=5)
    assert (len(collector.received), list(tmp_path.iterdir())) == (1, [])


def test_open_recorder_with_per_process_files(tmp_path: Path) -> None:
    recorder = open_recorder(path=tmp_path / "decisions.jsonl", url=None, key=KEY, per_process=True)
    assert recorder is not None
    assert recorder.close(timeout=5)
    assert [p.name for p in tmp_path.iterdir()] == [f"decisions.{os.getpid()}.jsonl"]


def test_open_recorder_without_a_destination_is_none_and_a_short_key_fails_first(tmp_path: Path) -> None:
    assert open_recorder(path=None, url=None, key=b"") is None
    with pytest.raises(ValueError, match="16 bytes"):
        open_recorder(path=tmp_path / "decisions.jsonl", url=None, key=b"short")
    assert list(tmp_path.iterdir()) == []  # nothing opened, no thread started
