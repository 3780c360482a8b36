"""A real server pulling its bundle from a real HTTP origin on 127.0.0.1, and starting without it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.bundle.archive import build_archive
from tests.fleet.conftest import OriginServer, copy_bundle
from tests.integration.server import running_server

pytestmark = pytest.mark.integration

POLL_S = "0.3"


def _revision(base: str) -> str:
    return str(httpx.get(f"{base}/v1/bundle", timeout=5).json()["revision"])


def test_replicas_follow_the_origin_and_start_from_the_last_good_archive(tmp_path: Path) -> None:
    source = copy_bundle(tmp_path / "bundle")
    first = build_archive(source, tmp_path / "first.tar.gz")
    origin = OriginServer()
    origin.publish((tmp_path / "first.tar.gz").read_bytes())
    env = {
        "TAILOR_BUNDLE_URL": origin.url,
        "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache"),
        "TAILOR_BUNDLE_POLL_SECONDS": POLL_S,
    }
    try:
        with running_server(tmp_path / "no-such-folder", workers=2, env=env) as base:
            assert _revision(base) == first.revision
            placements = source / "rules" / "placements.yaml"
            placements.write_text(placements.read_text().replace("serve: hero_vip }", "serve: hero_bold }"))
            second = build_archive(source, tmp_path / "second.tar.gz")
            origin.publish((tmp_path / "second.tar.gz").read_bytes())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and {_revision(base) for _ in range(10)} != {second.revision}:
                time.sleep(0.1)
            assert {_revision(base) for _ in range(10)} == {second.revision}
            assert any("If-None-Match" in headers for headers in origin.requests)
        origin.stop()  # the origin is down: a new replica starts from the archive it kept
        with running_server(tmp_path / "no-such-folder", env=env) as base:
            assert _revision(base) == second.revision
    finally:
        origin.stop()


def test_bundle_build_command_packs_a_bundle(tmp_path: Path) -> None:
    source = copy_bundle(tmp_path / "bundle")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "bundle", "build", str(source), "--out", str(tmp_path / "b.tar.gz")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {tmp_path / 'b.tar.gz'} revision ")
