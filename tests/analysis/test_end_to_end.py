"""Through the real server: decisions logged by ``tailor serve``, outcomes with a planted lift for one
arm in one segment, then ``tailor analyze`` (the real command) finds the lift there and only there.

Decisions go through ``POST /v1/decide`` and outcomes through ``POST /v1/events`` of one server,
which pseudonymizes both with its key and writes them to its decision log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.server import ROOT, running_server

pytestmark = pytest.mark.integration

KEY = "end-to-end-test-key-0123456789"
BATCH = 250
VISITORS = 1600
PLANTED = "repeat_visitor"  # bold converts at 45 % here, every other visitor at 10 %
PROFILES = [
    ({"sessions_7d": 5}, PLANTED),
    ({"views": {"electronics_7d": 4}}, "electronics_fan"),
    ({}, None),
]


def decide_all(base: str) -> list[tuple[str, str, str | None]]:
    """(visitor id, arm, segment) of every visitor the experiment took in."""
    taken: list[tuple[str, str, str | None]] = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for number in range(VISITORS):
            attributes, segment = PROFILES[number % len(PROFILES)]
            visitor_id = f"e2e-{number}"
            visitor = {
                "id": visitor_id,
                "attributes": attributes,
                "consent": {"personalization": True, "analytics": True},
            }
            answer = http.post("/v1/decide", json={"visitor": visitor, "placements": ["home_hero"]}).json()
            placed = answer["placements"]["home_hero"]
            if placed["reason"] == "experiment":
                taken.append((visitor_id, placed["experiment"]["arm"], segment))
    return taken


def send_outcomes(base: str, taken: list[tuple[str, str, str | None]]) -> int:
    """Conversions with the planted lift, in batches through the endpoint; how many were accepted."""
    rng = np.random.default_rng(3)
    events = [
        {"visitor_id": visitor, "metric": "signup", "consent": {"analytics": True}}
        for visitor, arm, segment in taken
        if rng.random() < (0.45 if (arm == "bold" and segment == PLANTED) else 0.10)
    ]
    events.append({"visitor_id": "e2e-0", "metric": "signup"})  # no analytics consent: dropped, counted
    counts = {"accepted": 0, "refused": 0, "dropped_no_consent": 0}
    with httpx.Client(base_url=base, timeout=10) as http:
        for start in range(0, len(events), BATCH):
            answer = http.post("/v1/events", json={"events": events[start : start + BATCH]})
            assert answer.status_code == 202, answer.text
            counts = {key: counts[key] + answer.json()[key] for key in counts}
    assert counts == {"accepted": len(events) - 1, "refused": 0, "dropped_no_consent": 1}
    return counts["accepted"]


def wait_for_lines(folder: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sum(len(p.read_bytes().splitlines()) for p in folder.glob("decisions*.jsonl")) >= count:
            return
        time.sleep(0.2)


def test_a_lift_planted_in_one_segment_is_found_there_only(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    env = {"TAILOR_DECISION_LOG": str(logs / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY}
    with running_server(env=env) as base:
        taken = decide_all(base)
        outcomes = send_outcomes(base, taken)
        wait_for_lines(logs, VISITORS + outcomes)
    command = [sys.executable, "-m", "service.cli", "analyze", str(logs), "--bundle", str(ROOT), "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    [experiment] = json.loads(done.stdout)["experiments"]
    assert experiment["key"] == "hero_layout_test"
    assert sum(a["visitors"] for a in experiment["arms"]) == len(taken)
    found = {c["segment"]: c for c in experiment["comparisons"] if c["kind"] == "conversion"}
    assert found[PLANTED]["ci_low"] > 0
    assert found[PLANTED]["p_adjusted"] < 0.05  # significant after Benjamini-Hochberg
    assert found["electronics_fan"]["ci_low"] < 0 < found["electronics_fan"]["ci_high"]
