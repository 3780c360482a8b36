"""No credential of TAILOR_BUNDLE_URL and no server path in any log line or answer, when things go wrong."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.bundle.archive import build_archive
from tests.fleet.conftest import OriginServer, copy_bundle
from tests.fleet.test_archive import _flip_a_byte, _repack
from tests.integration.server import ROOT, running_server

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token-0123456789"
SECRETS = ("QZhunter2", "QZsig0123", "QZexp3600", "QZfragment")
WAIT_S = 15.0


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT_S}s")


def _no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, text


def _no_server_path(text: str, *paths: Path) -> None:
    for path in paths:
        assert str(path) not in text, text


def test_origin_credentials_never_show_in_logs_or_answers(tmp_path: Path) -> None:
    source = copy_bundle(tmp_path / "bundle")
    build_archive(source, tmp_path / "good.tar.gz")
    packed = (tmp_path / "good.tar.gz").read_bytes()
    origin = OriginServer()
    origin.publish(packed)
    host, port = origin.server_address[:2]
    url = f"http://ops:QZhunter2@{host!s}:{port}/b.tar.gz?X-Amz-Signature=QZsig0123&X-Amz-Expires=QZexp3600#QZfragment"
    env = {
        "TAILOR_BUNDLE_URL": url,
        "TAILOR_BUNDLE_CACHE": str(tmp_path / "cache"),
        "TAILOR_BUNDLE_POLL_SECONDS": "0.3",
        "TAILOR_ADMIN_TOKEN": TOKEN,
        "TAILOR_LOG_LEVEL": "DEBUG",
    }
    log = tmp_path / "server.log"
    answers: list[str] = []
    auth = {"authorization": f"Bearer {TOKEN}"}
    try:
        with (
            running_server(tmp_path / "no-such-folder", log_file=log, env=env) as base,
            httpx.Client(base_url=base, timeout=60) as http,
        ):
            origin.publish(_repack(packed, _flip_a_byte))  # a tampered archive: problems in /v1/bundle
            _until(lambda: bool(http.get("/v1/bundle").json().get("last_load_errors")))
            answers += [http.get("/v1/bundle").text, http.post("/admin/reload", headers=auth).text]
            origin.fail_always = True  # failing polls, logged on every attempt
            answers.append(http.post("/admin/reload", headers=auth).text)
            origin.stop()  # unreachable
            answers.append(http.post("/admin/reload", headers=auth).text)
            answers += [http.get("/v1/bundle").text, http.get("/metrics").text]
    finally:
        origin.stop()
    text = log.read_text()
    assert "bundle origin http://***@" in text  # the failed polls were logged, redacted
    for answer in [*answers, text]:
        _no_secret(answer)
    for answer in answers:
        _no_server_path(answer, tmp_path, ROOT)


def test_folder_load_errors_never_show_server_paths(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, bundle / kind)
    env = {"TAILOR_RELOAD_INTERVAL": "0.1", "TAILOR_ADMIN_TOKEN": TOKEN, "TAILOR_STATE_DIR": str(tmp_path / "state")}
    auth = {"authorization": f"Bearer {TOKEN}"}
    breakages: list[Callable[[], object]] = [  # what they return (bytes written) is not used
        lambda: (bundle / "rules" / "placements.yaml").write_text("version: 1\nplacements: [broken\n"),
        lambda: (bundle / "models" / "rfm.onnx").write_bytes(b"not a model"),
        lambda: (bundle / "content" / "variants.yaml").write_bytes(b"\xff\xfe not text"),
        lambda: os.rename(bundle / "rules", bundle / "rules-away"),
    ]
    answers: list[str] = []
    with (
        running_server(bundle, log_file=tmp_path / "server.log", env=env) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        for breakage in breakages:
            before = http.get("/v1/bundle").json().get("last_load_errors", [])
            breakage()

            def changed(before: object = before) -> bool:  # a def: mypy cannot type a lambda with a default
                return bool(http.get("/v1/bundle").json().get("last_load_errors", []) != before)

            _until(changed)
            answers += [http.get("/v1/bundle").text, http.post("/admin/reload", headers=auth).text]
    assert "the bundle has no 'rules' folder" in answers[-1]
    for answer in answers:
        _no_server_path(answer, tmp_path, ROOT)
