"""An origin archive that fails verification is reported like a bundle that does not compile; a down origin
does not hide the revision being served."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.bundle.archive import build_archive
from service.bundle.origin import DEFAULT_RETRIES
from tests.fleet.conftest import OriginServer, copy_bundle
from tests.fleet.test_archive import _flip_a_byte, _grow_a_file, _repack, _wrong_revision
from tests.integration.server import running_server

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token-0123456789"
WAIT_S = 15.0
ERRORS = 'tailor_bundle_reloads_total{result="error"}'
UNCHANGED = 'tailor_origin_polls_total{outcome="unchanged"}'
FAILED = 'tailor_origin_polls_total{outcome="failed"}'
LAST_SUCCESS = "tailor_origin_last_success_timestamp_seconds"
VISITOR = {"id": "v-1", "consent": {"personalization": True}}
NEEDS_A_BUNDLE = [  # (method, path, body): every route that answers from a bundle
    ("GET", "/v1/bundle", None),
    ("POST", "/v1/decide", {"visitor": VISITOR, "placements": ["home_hero"]}),
    ("POST", "/v1/render", {"recipients": [VISITOR], "placements": ["cart_email"]}),
    ("POST", "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "v-1"}}),
]
TAMPERED = [  # (how, the start of the message /v1/bundle shows; the file is the member at fault)
    (_flip_a_byte, "the archive from the origin failed verification: sha256 is "),
    (_grow_a_file, "the archive from the origin failed verification: size is "),
    (_wrong_revision, "the archive from the origin failed verification: revision is '0123456789abcdef'"),
]


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT_S}s")


def _metric(http: httpx.Client, series: str = ERRORS) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f"{series} "):
            return float(line.split()[-1])
    return 0.0


def test_a_tampered_archive_shows_in_last_load_errors_and_the_metric(tmp_path: Path) -> None:
    source = copy_bundle(tmp_path / "bundle")
    good = build_archive(source, tmp_path / "good.tar.gz")
    packed = (tmp_path / "good.tar.gz").read_bytes()
    origin = OriginServer()
    origin.publish(packed)
    env = {
        "TAILOR_BUNDLE_URL": origin.url,
        "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache"),
        "TAILOR_BUNDLE_POLL_SECONDS": "0.3",
        "TAILOR_ADMIN_TOKEN": TOKEN,
    }
    try:
        with (
            running_server(tmp_path / "no-such-folder", env=env) as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            assert http.get("/v1/bundle").json().get("last_load_errors", []) == []
            for tamper, message in TAMPERED:
                counted = _metric(http)
                origin.publish(_repack(packed, tamper))

                def reported(message: str = message) -> bool:
                    errors = http.get("/v1/bundle").json().get("last_load_errors", [])
                    return bool(errors) and errors[0]["message"].startswith(message)

                _until(reported)
                info = http.get("/v1/bundle").json()
                assert info["revision"] == good.revision  # still serving the good one
                error = info.get("last_load_errors", [{}])[0]
                assert error["file"].startswith(("rules/", "content/", "models/", "manifest.json"))
                assert _metric(http) > counted
            origin.publish(packed)  # the good archive again: the problems go
            _until(lambda: http.get("/v1/bundle").json().get("last_load_errors", []) == [])
    finally:
        origin.stop()


def test_admin_reload_with_the_origin_down_reports_the_revision_served(tmp_path: Path) -> None:
    source = copy_bundle(tmp_path / "bundle")
    good = build_archive(source, tmp_path / "good.tar.gz")
    origin = OriginServer()
    origin.publish((tmp_path / "good.tar.gz").read_bytes())
    env = {
        "TAILOR_BUNDLE_URL": origin.url,
        "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache"),
        "TAILOR_BUNDLE_POLL_SECONDS": "30",
        "TAILOR_ADMIN_TOKEN": TOKEN,
    }
    try:
        with (
            running_server(tmp_path / "no-such-folder", env=env) as base,
            httpx.Client(base_url=base, timeout=60) as http,
        ):
            origin.fail_always = True
            done = http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
            assert done.status_code == 200
            body = done.json()
            assert (body["ok"], body["revision"]) == (False, good.revision)
            assert "HTTP 503" in body["problems"][0]["message"]
            origin.fail_always = False
            done = http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}).json()
            assert (done["ok"], done["revision"], done["problems"]) == (True, good.revision, [])
    finally:
        origin.stop()


def test_a_replica_that_never_loaded_says_why_in_every_503(tmp_path: Path) -> None:
    """Its origin failing from the start: every route that needs a bundle said only "no bundle is loaded yet"."""
    origin = OriginServer()
    origin.fail_always = True
    env = {
        "TAILOR_BUNDLE_URL": origin.url.replace("http://", "http://reader:hush-password@", 1) + "?token=hush-token",
        "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache"),
        "TAILOR_STATE_DIR": str(tmp_path / "state"),
    }
    try:
        with (
            running_server(tmp_path / "no-such-folder", env=env, wait_for="/healthz") as base,
            httpx.Client(base_url=base, timeout=5) as http,
        ):
            _until(lambda: "origin:" in http.get("/v1/bundle").json()["detail"])
            answers = [http.request(method, path, json=body) for method, path, body in NEEDS_A_BUNDLE]
    finally:
        origin.stop()
    for answer in answers:
        assert answer.status_code == 503, answer.url
        detail = answer.json()["detail"]
        assert re.fullmatch(
            r"no bundle is loaded yet; the last load failed: http://\*\*\*@127\.0\.0\.1:\d+/\S*\?token=\*\*\*: "
            rf"origin: gave up after {DEFAULT_RETRIES + 1} attempts: HTTP 503",
            detail,
        ), (answer.url, detail)
        assert "hush" not in answer.text


def test_the_metrics_show_an_origin_that_goes_down_once_a_bundle_is_served(tmp_path: Path) -> None:
    """Serving goes on and /v1/bundle is unchanged, so /metrics is where a fleet's operator sees it."""
    copy_bundle(tmp_path / "bundle")
    build_archive(tmp_path / "bundle", tmp_path / "good.tar.gz")
    origin = OriginServer()
    origin.publish((tmp_path / "good.tar.gz").read_bytes())
    env = {"TAILOR_BUNDLE_URL": origin.url, "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache")}
    started = time.time()
    try:
        with (
            running_server(tmp_path / "no-such-folder", workers=2, env=env, TAILOR_BUNDLE_POLL_SECONDS="0.3") as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            _until(lambda: _metric(http, LAST_SUCCESS) > started)  # the stalest of both workers polled well
            assert _metric(http, LAST_SUCCESS) < time.time()
            went_down, failed = time.time(), _metric(http, FAILED)
            origin.fail_always = True
            _until(lambda: _metric(http, FAILED) >= failed + 4)
            assert 0 < _metric(http, LAST_SUCCESS) <= went_down + 1  # a poll under way may end well
            assert http.get("/v1/bundle").json().get("last_load_errors", []) == []
            came_back = time.time()
            origin.fail_always = False
            _until(lambda: _metric(http, LAST_SUCCESS) > came_back)  # every worker polled well since
    finally:
        origin.stop()


def _workers(pid: int) -> set[int]:
    """The server's worker processes: its children (granian forks or spawns them)."""
    children = Path(f"/proc/{pid}/task").glob("*/children")
    return {int(child) for path in children for child in path.read_text().split()}


def _revisions_at_one(http: httpx.Client) -> list[str]:
    lines = http.get("/metrics").text.splitlines()
    return [line for line in lines if line.startswith("tailor_bundle_info{") and line.endswith(" 1.0")]


def test_a_killed_worker_leaves_no_live_gauge_behind(tmp_path: Path) -> None:
    """A worker killed with SIGKILL never ends its gauges; the next scrape must forget them."""
    copy_bundle(tmp_path / "bundle")
    good = build_archive(tmp_path / "bundle", tmp_path / "good.tar.gz")
    origin = OriginServer()
    origin.publish((tmp_path / "good.tar.gz").read_bytes())
    env = {"TAILOR_BUNDLE_URL": origin.url, "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache")}
    try:
        with (
            running_server(tmp_path / "no-such-folder", workers=2, env=env, TAILOR_BUNDLE_POLL_SECONDS="0.3") as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            _until(lambda: len(_workers(base.pid)) == 2 and _metric(http, UNCHANGED) >= 4)
            killed = min(_workers(base.pid))
            os.kill(killed, signal.SIGKILL)
            _until(lambda: len(_workers(base.pid) - {killed}) == 2)  # granian started another
            time.sleep(2.0)  # the dead worker's last good poll is now 2 s old; the live ones poll every 0.3 s
            _until(lambda: time.time() - _metric(http, LAST_SUCCESS) < 1.5)
            assert _revisions_at_one(http) == [f'tailor_bundle_info{{revision="{good.revision}"}} 1.0']
    finally:
        origin.stop()
