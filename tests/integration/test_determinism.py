"""The same visitor gets the same arm from separate server processes and after a restart."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

VISITORS = [f"visitor-{i}" for i in range(300)]
CLIENT_TIME = {"TAILOR_ALLOW_CLIENT_TIME": "1"}  # every server decides as of the same named time


def _arms(base: str) -> dict[str, tuple[str, str | None]]:
    arms = {}
    with httpx.Client(base_url=base, timeout=10.0) as http:
        for visitor in VISITORS:
            body = {
                "visitor": {"id": visitor, "consent": {"personalization": True}},
                "placements": ["home_hero"],
                "context": {"now": "2026-11-22T12:00:00Z"},
            }
            hero = http.post("/v1/decide", json=body).json()["placements"]["home_hero"]
            arms[visitor] = (hero["reason"], (hero.get("experiment") or {}).get("arm"))
    return arms


def test_two_processes_and_a_restart_agree_on_every_arm() -> None:
    with running_server(workers=2, env=CLIENT_TIME) as first, running_server(workers=1, env=CLIENT_TIME) as second:
        arms_first, arms_second = _arms(first), _arms(second)
    with running_server(workers=1, env=CLIENT_TIME) as restarted:
        arms_restarted = _arms(restarted)
    assert arms_first == arms_second == arms_restarted
    reasons = [reason for reason, _ in arms_first.values()]
    # The example's 50 % layer slice and 5 % holdout: a mix of experiment, default and holdout.
    assert 100 < reasons.count("experiment") < 200
    assert reasons.count("holdout") > 0
    assert {arm for _, arm in arms_first.values()} == {None, "control", "bold"}
