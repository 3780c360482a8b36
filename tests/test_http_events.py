"""POST /v1/events in process: counts, consent, the batch cap, paths of bad events, client time, the log."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from service.http import wire
from service.http.app import create_app
from service.http.events import Outcomes
from service.settings import Settings
from service.telemetry import DecisionLog, DecisionRecorder, JsonLinesSink
from service.telemetry.events import Pseudonymizer
from service.telemetry.metrics import Metrics

ROOT = Path(__file__).parents[1]
KEY = "events-test-key-0123456789"
TOKEN = "events-admin-token-0123"


def _app(tmp_path: Path, **overrides: object) -> Any:
    log = tmp_path / "events.jsonl"
    settings = Settings(bundle=ROOT, reload_interval=0, decision_log=str(log), pseudonym_key=KEY, **overrides)  # type: ignore[arg-type]
    return create_app(settings)


def _event(number: int, analytics: bool = True, **more: Any) -> dict[str, Any]:
    return {"visitor_id": f"v-{number}", "metric": "signup", "consent": {"analytics": analytics}, **more}


def _lines(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path}")


def test_consented_events_are_written_pseudonymized_and_the_others_dropped_and_counted(tmp_path: Path) -> None:
    batch = [_event(0), _event(1, value=19.5), _event(2, analytics=False), {"visitor_id": "v-3", "metric": "x"}]
    with TestClient(app=_app(tmp_path)) as client:
        answer = client.post("/v1/events", json={"events": batch})
        metrics = client.get("/metrics").text
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 2, "refused": 0, "dropped_no_consent": 2}
    assert 'tailor_outcome_events_total{result="no_consent"} 2.0' in metrics
    assert 'tailor_outcome_events_total{result="accepted"} 2.0' in metrics
    written = _lines(tmp_path / "events.jsonl", 2)
    pseudonym = Pseudonymizer(KEY.encode())
    assert [(e["schema"], e["visitor"], e["metric"], e["value"]) for e in written] == [
        ("tailor.outcome/1", pseudonym("v-0"), "signup", 1.0),
        ("tailor.outcome/1", pseudonym("v-1"), "signup", 19.5),
    ]
    assert "v-0" not in (tmp_path / "events.jsonl").read_text()


def test_without_a_decision_log_consented_events_are_refused(tmp_path: Path) -> None:
    with TestClient(app=create_app(Settings(bundle=ROOT, reload_interval=0))) as client:
        answer = client.post("/v1/events", json={"events": [_event(0), _event(1, analytics=False)]})
    assert (answer.status_code, answer.json()) == (202, {"accepted": 0, "refused": 1, "dropped_no_consent": 1})


BAD = [
    ({"events": []}, "$.events"),
    ({"events": [_event(0), {"metric": "signup"}]}, "$.events[1]"),
    ({"events": [_event(0), _event(1, value="3")]}, "$.events[1].value"),
    ({"events": [_event(0, metric="has space")]}, "$.events[0].metric"),
    ({"events": [_event(0, visitor_id="")]}, "$.events[0].visitor_id"),
    ({"events": [_event(0, colour="red")]}, "$.events[0]"),
    ({"events": [_event(0, consent={"analytics": "yes"})]}, "$.events[0].consent.analytics"),
    ({"events": [_event(0, time="2026-11-02T10:00:00Z")]}, "$.events[0].time"),
    ({"events": [_event(n) for n in range(4)]}, "$.events"),  # above max_events=3
]


@pytest.mark.parametrize(("body", "where"), BAD)
def test_a_bad_batch_is_refused_whole_naming_the_path(tmp_path: Path, body: dict[str, Any], where: str) -> None:
    with TestClient(app=_app(tmp_path, max_events=3)) as client:
        answer = client.post("/v1/events", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["errors"][0]["loc"] == where
    assert not (tmp_path / "events.jsonl").exists() or not (tmp_path / "events.jsonl").read_text()


BOUND = "Expected `float` < 1000000000000000.0"  # the wire's bound (ADR 0017), in the decoder's words


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ("1e400", 400, "Number out of range"),  # the decoder's own word for a number beyond a double
        ("1e308", 400, BOUND),  # its square overflows the analysis's sums
        ("1e15", 400, BOUND),
        ("-1e15", 400, "Expected `float` > -1000000000000000.0"),
        ("999999999999999.9", 202, None),  # below 10^15: a very large order, still one
        ("-0.5", 202, None),  # a refund
    ],
)
def test_a_value_is_refused_unless_finite_and_below_a_quadrillion(
    tmp_path: Path, value: str, status: int, message: str | None
) -> None:
    """ADR 0017: the analysis refuses an outcome of 10^15 or more; the endpoint refuses it where it can be fixed."""
    body = f'{{"events": [{{"visitor_id": "a", "metric": "m", "value": {value}, "consent": {{"analytics": true}}}}]}}'
    with TestClient(app=_app(tmp_path)) as client:
        answer = client.post("/v1/events", content=body.encode(), headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    if status == 400:
        error = answer.json()["errors"][0]
        assert error == {"loc": "$.events[0].value", "message": message}


@pytest.mark.parametrize("who", ["admin", "allowed"])
def test_an_event_time_is_taken_from_the_admin_or_where_allowed(tmp_path: Path, who: str) -> None:
    app = _app(tmp_path, admin_token=TOKEN, allow_client_time=who == "allowed")
    headers = {"authorization": f"Bearer {TOKEN}"} if who == "admin" else {}
    with TestClient(app=app) as client:
        answer = client.post("/v1/events", json={"events": [_event(0, time="2026-11-02T10:00:00")]}, headers=headers)
        document = client.get("/schema/openapi.json").json()
    assert answer.status_code == 202, answer.text
    [written] = _lines(tmp_path / "events.jsonl", 1)
    assert written["time"] == "2026-11-02T10:00:00Z"  # no zone means UTC
    assert ("time" in document["components"]["schemas"]["OutcomeIn"]["properties"]) == (who == "allowed")


def test_the_document_caps_the_batch_with_the_setting(tmp_path: Path) -> None:
    with TestClient(app=_app(tmp_path, max_events=7)) as client:
        document = client.get("/schema/openapi.json").json()
    assert document["components"]["schemas"]["EventsRequest"]["properties"]["events"]["maxItems"] == 7
    assert "202" in document["paths"]["/v1/events"]["post"]["responses"]


def test_events_the_log_cannot_take_are_refused_whole(tmp_path: Path) -> None:
    recorder = DecisionRecorder(DecisionLog(JsonLinesSink(tmp_path / "e.jsonl")), Pseudonymizer(KEY.encode()))
    assert recorder.close(timeout=5)  # a closed log takes nothing, as a full queue
    metrics = Metrics()
    outcomes = Outcomes(Settings(), metrics, recorder, lambda: datetime.now(UTC))
    batch = msgspec.convert({"events": [_event(0), _event(1), _event(2, analytics=False)]}, wire.EventsRequest)
    answer = outcomes.accept(batch, client_time=False)
    assert answer == wire.EventsAccepted(accepted=0, refused=2, dropped_no_consent=1)
    assert 'tailor_outcome_events_total{result="refused"} 2.0' in metrics.exposition().decode()


@pytest.mark.parametrize(
    ("ahead", "zone", "status"),
    [(timedelta(hours=23), True, 202), (timedelta(days=2), True, 400), (timedelta(days=2), False, 400),
     (timedelta(days=-3650), True, 202)],
    ids=["23h", "2d", "2d-no-zone", "10-years-ago"],
)  # fmt: skip
def test_an_event_time_a_day_after_the_servers_is_refused(
    tmp_path: Path, ahead: timedelta, zone: bool, status: int
) -> None:
    """One event dated 2099 was taken with a 202, and `tailor analyze` then refused the whole log (ADR 0020).
    A time without a zone is UTC, and a past one stays valid however old (a backfill)."""
    moment = datetime.now(UTC) + ahead
    when = (moment if zone else moment.replace(tzinfo=None)).isoformat()
    with TestClient(app=_app(tmp_path, allow_client_time=True)) as client:
        answer = client.post("/v1/events", json={"events": [_event(0), _event(1, time=when)]})
    assert answer.status_code == status, answer.text
    if status == 400:
        [error] = answer.json()["errors"]
        assert error["loc"] == "$.events[1].time"
        assert error["message"].startswith("an event time may be at most a day after the server's clock (until ")
