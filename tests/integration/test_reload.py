"""Live reload against a real server with two workers: edits apply, broken edits change nothing."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ROOT, Server, running_server

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token-0123456789"
VIP = {
    "visitor": {"id": "v-vip", "attributes": {"orders_12m": 6, "spend_12m": 900}, "consent": {"personalization": True}},
    "placements": ["home_hero"],
}
WAIT_S = 10.0  # generous for a shared machine; the time it took is printed, and measured in loadtests/


def _bundle_copy(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    for part in ("rules", "content", "models"):
        if (ROOT / part).exists():
            shutil.copytree(ROOT / part, bundle / part)
    return bundle


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    bundle = _bundle_copy(tmp_path)
    env = {"TAILOR_RELOAD_INTERVAL": "0.2", "TAILOR_ADMIN_TOKEN": TOKEN, "TAILOR_STATE_DIR": str(tmp_path / "state")}
    # A test done within half a second of the first worker's start stops the server while the second
    # starts: granian's worker misses that SIGTERM (tests/integration/test_stop.py), and is killed after this.
    env["TAILOR_STOP_TIMEOUT_S"] = "2"
    with running_server(bundle, workers=2, env=env) as base:
        yield base, bundle


def _hero(http: httpx.Client) -> str:
    return str(http.post("/v1/decide", json=VIP).json()["placements"]["home_hero"]["variant"])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _until(check: object, timeout: float = WAIT_S) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


def test_an_edit_changes_decisions_in_every_worker(server: tuple[Server, Path]) -> None:
    base, bundle = server
    with httpx.Client(base_url=base, timeout=5, headers={"connection": "close"}) as http:  # both workers answer
        assert _hero(http) == "hero_vip"
        before = http.get("/v1/bundle").json()["revision"]
        _edit(bundle / "rules" / "placements.yaml", "serve: hero_vip }", "serve: hero_bold }")
        took = _until(lambda: all(_hero(http) == "hero_bold" for _ in range(40)))
        print(f"edit applied in {took:.2f}s")
        assert http.get("/v1/bundle").json()["revision"] != before


def test_a_broken_edit_changes_nothing_but_the_reported_errors(server: tuple[Server, Path]) -> None:
    base, bundle = server
    with httpx.Client(base_url=base, timeout=5) as http:
        revision = http.get("/v1/bundle").json()["revision"]
        _edit(bundle / "rules" / "placements.yaml", "segment: vip,", "segment: vipp,")

        def reported() -> bool:
            errors = http.get("/v1/bundle").json().get("last_load_errors", [])
            return bool(errors) and errors[0]["message"].startswith("unknown segment 'vipp'")

        _until(reported)
        errors = http.get("/v1/bundle").json()["last_load_errors"]
        assert (errors[0]["file"], errors[0]["line"]) == ("rules/placements.yaml", 14)
        for _ in range(20):
            assert _hero(http) == "hero_vip"
            assert http.get("/readyz").json() == {"status": "ready", "revision": revision}
        metrics = http.get("/metrics").text
        assert 'tailor_bundle_reloads_total{result="error"}' in metrics
        assert "tailor_origin_" not in metrics  # a server on a folder polls no origin


def test_admin_reload_needs_the_token(server: tuple[Server, Path]) -> None:
    base, _ = server
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.post("/admin/reload").status_code == 401
        wrong = http.post("/admin/reload", headers={"authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["type"]) == (401, "unauthorized")
        done = http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
        assert done.status_code == 200
        assert done.json()["ok"] is True


def test_admin_endpoints_are_off_without_a_token(tmp_path: Path) -> None:
    with running_server(_bundle_copy(tmp_path)) as base, httpx.Client(base_url=base, timeout=5) as http:
        response = http.post("/admin/reload", headers={"authorization": "Bearer anything"})
        assert (response.status_code, response.json()["type"]) == (404, "not-found")


def test_sighup_respawns_workers_from_the_last_good_bundle(server: tuple[Server, Path]) -> None:
    base, bundle = server
    with httpx.Client(base_url=base, timeout=5) as http:
        revision = http.get("/v1/bundle").json()["revision"]
        (bundle / "rules" / "placements.yaml").write_text("version: 1\nplacements: [broken\n")
        _until(lambda: bool(http.get("/v1/bundle").json().get("last_load_errors")))
        os.kill(base.pid, signal.SIGHUP)  # granian restarts its workers, one after the other
        time.sleep(9)  # both respawns (granian waits 3.5 s between workers)

        def new_workers_serve_the_last_good() -> bool:
            try:
                return all(http.get("/readyz").json().get("revision") == revision for _ in range(10))
            except httpx.TransportError:
                return False

        _until(new_workers_serve_the_last_good)
        assert _hero(http) == "hero_vip"


def test_metrics_report_requests_decisions_and_the_bundle(server: tuple[Server, Path]) -> None:
    base, _ = server
    with httpx.Client(base_url=base, timeout=5) as http:
        for _ in range(10):
            _hero(http)
        http.post("/v1/decide", content=b"{")
        # Each worker folds its counts into the shared values at least once a second (and at a scrape).
        _until(lambda: '"hero_vip"} 10.0' in http.get("/metrics").text)
        text = http.get("/metrics").text
    assert 'tailor_http_request_duration_seconds_count{endpoint="/v1/decide",method="POST",status="2xx"}' in text
    assert 'tailor_http_request_duration_seconds_count{endpoint="/v1/decide",method="POST",status="4xx"}' in text
    assert 'tailor_decisions_total{placement="home_hero",reason="targeting_match",variant="hero_vip"} 10.0' in text
    assert "tailor_bundle_info{" in text


def test_admin_reload_of_a_broken_folder_names_the_revision_still_served(server: tuple[Server, Path]) -> None:
    base, bundle = server
    with httpx.Client(base_url=base, timeout=10) as http:
        revision = http.get("/v1/bundle").json()["revision"]
        _edit(bundle / "rules" / "placements.yaml", "segment: vip,", "segment: vipp,")
        done = http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}).json()
        assert (done["ok"], done["revision"]) == (False, revision)
        assert done["problems"][0]["message"].startswith("unknown segment 'vipp'")


def test_with_watching_off_an_admin_reload_reaches_every_worker(tmp_path: Path) -> None:
    """TAILOR_RELOAD_INTERVAL=0, as DEPLOYMENT.md advises for in-place edits: one POST, both workers follow."""
    bundle = _bundle_copy(tmp_path)
    env = {"TAILOR_RELOAD_INTERVAL": "0", "TAILOR_ADMIN_TOKEN": TOKEN, "TAILOR_STATE_DIR": str(tmp_path / "state")}
    with (
        running_server(bundle, workers=2, env=env, TAILOR_STOP_TIMEOUT_S="2") as base,
        httpx.Client(base_url=base, timeout=10, headers={"connection": "close"}) as http,  # both workers answer
    ):
        assert _hero(http) == "hero_vip"
        _edit(bundle / "rules" / "placements.yaml", "serve: hero_vip }", "serve: hero_bold }")
        time.sleep(1.5)  # three trigger checks: an edit alone is not seen
        assert all(_hero(http) == "hero_vip" for _ in range(40))
        done = http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}).json()
        assert done["ok"] is True
        revisions = {done["revision"]}
        _until(lambda: all(_hero(http) == "hero_bold" for _ in range(40)))
        revisions |= {http.get("/v1/bundle").json()["revision"] for _ in range(40)}
        assert len(revisions) == 1


def test_a_state_dir_that_cannot_keep_a_copy_still_serves_and_reloads(tmp_path: Path) -> None:
    """A last-good copy that cannot be written (a file in its place) crashed every worker at start."""
    bundle = _bundle_copy(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "last-good").write_text("not a folder")
    env = {"TAILOR_ADMIN_TOKEN": TOKEN, "TAILOR_STATE_DIR": str(state), "TAILOR_STOP_TIMEOUT_S": "2"}
    log = tmp_path / "server.log"
    with running_server(bundle, workers=2, env=env, log_file=log) as base, httpx.Client(base_url=base) as http:
        assert _hero(http) == "hero_vip"
        done = http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
        assert (done.status_code, done.json()["ok"]) == (200, True)
    assert "its last good copy was not kept in" in log.read_text()
    assert "Traceback" not in log.read_text()
