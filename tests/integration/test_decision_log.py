"""The decision log of a real server: one event per placement, pseudonymized, honouring consent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

KEY = "integration-test-key-0123456789"


def _events(folder: Path) -> list[dict[str, object]]:
    return [
        json.loads(line) for path in sorted(folder.glob("decisions*.jsonl")) for line in path.read_text().splitlines()
    ]


def test_decisions_are_logged_without_personal_data(tmp_path: Path) -> None:
    env = {"TAILOR_DECISION_LOG": str(tmp_path / "log" / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY}
    visitor = {"id": "anna@example.com", "attributes": {"orders_12m": 6, "spend_12m": 900, "email": "anna@example.com"}}
    with running_server(**env) as base, httpx.Client(base_url=base, timeout=5) as http:
        consented = http.post(
            "/v1/decide",
            json={
                "visitor": {**visitor, "consent": {"personalization": True, "analytics": True}},
                "placements": ["home_hero", "promo_banner"],
            },
        ).json()
        anonymous = http.post(
            "/v1/decide",
            json={"visitor": {**visitor, "consent": {"personalization": True}}, "placements": ["home_hero"]},
        ).json()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_events(tmp_path / "log")) < 3:
            time.sleep(0.1)
        metrics = http.get("/metrics").text
    events = _events(tmp_path / "log")
    text = (tmp_path / "log").joinpath("decisions.jsonl").read_text()
    assert "anna" not in text
    assert "example.com" not in text
    by_decision = {e["decision_id"]: e for e in events if e["placement"] == "home_hero"}
    first, second = by_decision[consented["decision_id"]], by_decision[anonymous["decision_id"]]
    assert first["schema"] == "tailor.decision/1"
    assert first["revision"] == consented["revision"]
    assert (first["variant"], first["reason"], first["segments"]) == ("hero_vip", "targeting_match", ["vip"])
    assert isinstance(first["visitor"], str)
    assert len(first["visitor"]) == 32
    assert (second.get("visitor"), second.get("segments", [])) == (None, [])  # no analytics consent: tied to nobody
    assert len(events) == 3  # two placements, then one
    assert 'tailor_decision_events_total{outcome="written"}' in metrics
