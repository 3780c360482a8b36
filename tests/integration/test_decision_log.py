"""The decision log of a real server: one event per placement, pseudonymized, honouring consent."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    with running_server(env=env) as base, httpx.Client(base_url=base, timeout=5) as http:
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


# --- faults: the log never takes serving down and never lies -------------------------------------

OUTCOMES = ("submitted", "written", "lost", "dropped")
SETTLE_S = 30.0  # generous: the writer batches for up to a second, and reopens after a backoff pause
PAGE: dict[str, Any] = {
    "visitor": {"id": "v", "consent": {"analytics": True}},
    "placements": ["home_hero", "promo_banner"],
}


def _metric(text: str, name: str) -> float:
    """The sum of a metric's samples over its label sets (0 when absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _counts(http: httpx.Client) -> dict[str, float]:
    text = http.get("/metrics").text
    counts = {o: _metric(text, f'tailor_decision_events_total{{outcome="{o}"}}') for o in OUTCOMES}
    counts["healthy"] = _metric(text, 'tailor_decision_log_healthy{log="decisions"}')
    counts["errors"] = _metric(text, 'tailor_decision_log_errors_total{log="decisions"}')
    return counts


def _traffic(http: httpx.Client, decisions: int, start: int = 0) -> None:
    for number in range(start, start + decisions):
        body = {**PAGE, "visitor": {**PAGE["visitor"], "id": f"visitor-{number}"}}
        assert http.post("/v1/decide", json=body).status_code == 200  # serving never waits for the log


def _settled(http: httpx.Client, until: object = None) -> dict[str, float]:
    """The counters once every submitted event is written or lost (and ``until`` holds, if given)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        counts = _counts(http)
        done = counts["written"] + counts["lost"] == counts["submitted"]
        if (done and (until is None or until(counts))) or time.monotonic() > deadline:  # type: ignore[operator]
            return counts
        time.sleep(0.2)


def _lines(folder: Path) -> list[dict[str, object]]:
    """Every line on disk, parsed: a torn line fails the test here."""
    return [json.loads(line) for path in sorted(folder.glob("decisions*")) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("recreated", [True, False], ids=["recreated by the operator", "left missing"])
def test_a_log_folder_removed_mid_traffic_is_reopened(recreated: bool, tmp_path: Path) -> None:
    folder = tmp_path / "log"
    env = {"TAILOR_DECISION_LOG": str(folder / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY}
    with running_server(env=env) as base, httpx.Client(base_url=base, timeout=10) as http:
        _traffic(http, 20)
        before = _settled(http)
        assert before["written"] == before["submitted"] == 40
        shutil.rmtree(folder)
        if recreated:
            folder.mkdir()
        _traffic(http, 30, start=20)  # before the fix: every batch from here on raised "write to closed file"
        after = _settled(http)
    lines = _lines(folder)
    assert (after["submitted"], after["lost"], after["healthy"]) == (100, 0, 1)
    assert [e["visitor"] is not None for e in lines] == [True] * 60
    assert len({e["decision_id"] for e in lines}) == 30


def _mount_tmpfs(folder: Path, options: str) -> None:
    """A real small tmpfs at ``folder``; the test is skipped where mounting is not allowed."""
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    mounted = subprocess.run(command, capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {mounted.stderr.decode().strip()}")


def _read_only_mount(folder: Path) -> None:
    _mount_tmpfs(folder, "ro,size=64k")


def _under_a_file(folder: Path) -> None:
    folder.write_text("a regular file where the log folder should be")


def _fix_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)


def _fix_under_a_file(folder: Path) -> None:
    folder.unlink()


UNWRITABLE = [
    pytest.param(_under_a_file, _fix_under_a_file, id="the folder is a regular file"),
    pytest.param(_read_only_mount, _fix_read_only, id="a read-only file system"),
]


@pytest.mark.parametrize(("break_it", "fix_it"), UNWRITABLE)
def test_a_log_that_cannot_be_opened_at_start_does_not_stop_serving(
    break_it: Callable[[Path], None], fix_it: Callable[[Path], None], tmp_path: Path
) -> None:
    folder = tmp_path / "log"
    break_it(folder)
    env = {"TAILOR_DECISION_LOG": str(folder / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY}
    try:
        with (
            running_server(workers=2, env=env) as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):  # before: exit
            _traffic(http, 10)
            failing = _settled(http)
            assert (failing["healthy"], failing["written"], failing["lost"]) == (0, 0, 20)
            assert failing["errors"] >= 1
            fix_it(folder)
            recovered = _traffic_until_healthy(http)
            lines = _lines(folder)  # read while mounted
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
    assert recovered["healthy"] == 1  # every worker's log writes again
    assert len(lines) == recovered["written"] > 0
    assert recovered["written"] + recovered["lost"] == recovered["submitted"]


def _traffic_until_healthy(http: httpx.Client) -> dict[str, float]:
    """Decisions until every worker's writer has retried (it does so with the next batch after its pause)."""
    deadline = time.monotonic() + SETTLE_S
    sent = 1000
    while True:
        _traffic(http, 5, start=sent)
        sent += 5
        counts = _settled(http)
        if counts["healthy"] == 1 or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def test_a_full_disk_keeps_whole_lines_and_loses_exactly_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    _mount_tmpfs(folder, "size=64k")
    env = {"TAILOR_DECISION_LOG": str(folder / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY}
    try:
        with running_server(env=env) as base, httpx.Client(base_url=base, timeout=10) as http:
            _traffic(http, 300)  # 600 events of about 300 bytes: three times what fits
            counts = _settled(http)
            lines = _lines(folder)  # read while mounted
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
    assert counts["submitted"] == 600
    assert 0 < len(lines) == counts["written"]  # before: lost equalled submitted with 181 lines on disk
    assert len(lines) + counts["lost"] == counts["submitted"]
    assert (counts["healthy"], counts["dropped"]) == (0, 0)


def test_a_log_folder_removed_while_requests_keep_coming_is_reopened(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    env = {"TAILOR_DECISION_LOG": str(folder / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY}
    sent = [0]
    stop = threading.Event()

    def keep_deciding(base: str) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            while not stop.is_set():
                _traffic(http, 1, start=sent[0])
                sent[0] += 1

    with running_server(env=env) as base, httpx.Client(base_url=base, timeout=10) as http:
        sender = threading.Thread(target=keep_deciding, args=(base,))
        sender.start()
        time.sleep(1.5)
        shutil.rmtree(folder)
        folder.mkdir()
        sent_before = sent[0] + 1  # the request in flight may have been queued before the folder went
        time.sleep(2.0)
        stop.set()
        sender.join(30)
        counts = _settled(http)
    lines = _lines(folder)  # all parse
    after = (sent[0] - sent_before) * 2  # two placements a decision
    assert (counts["lost"], counts["healthy"]) == (0, 1)
    assert len(lines) >= after > 0  # every event submitted after the removal is in the new file
