"""OpenFeature's web SDK with the OFREP web provider under node, against a real server.

The node side (tests/ofrep_js/web_provider.mjs) evaluates every flag, edits a rule and waits for
the provider to see it by polling with ETag, then edits again and waits for the event stream.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ROOT, running_server
from tests.ofrep.bundle import bundle_copy

pytestmark = pytest.mark.integration

JS = ROOT / "tests" / "ofrep_js"
NODE_TIMEOUT_S = 120
LOCKED = re.compile(r'"node_modules/(@openfeature/[\w-]+|eventsource)": \{\s+"version": "([\d.]+)"')


def npm_ci() -> None:
    """The pinned packages of package-lock.json, installed once (npm ci skips nothing but is quick)."""
    installed = JS / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= (JS / "package-lock.json").stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=300)


def test_the_web_provider_evaluates_and_follows_reloads(tmp_path: Path) -> None:
    assert shutil.which("node"), "node runs the web provider's test"
    assert shutil.which("npm"), "npm installs it"
    npm_ci()
    bundle = bundle_copy(tmp_path)
    with running_server(bundle, TAILOR_RELOAD_INTERVAL="0.2") as base:
        done = subprocess.run(
            ["node", "web_provider.mjs", base, str(bundle / "rules" / "placements.yaml")],
            cwd=JS, capture_output=True, text=True, timeout=NODE_TIMEOUT_S, check=False,
        )  # fmt: skip
        metrics = httpx.get(f"{base}/metrics").text
    assert done.returncode == 0, done.stderr[-5000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    print("web provider saw the edit after", seen["pollingMs"], "ms (polling),", seen["eventMs"], "ms (event)")
    assert (seen["bulk"]["variant"], seen["bulk"]["reason"]) == ("hero_vip", "TARGETING_MATCH")
    assert seen["bulk"]["value"]["discount_percent"] == 20
    assert seen["bulk"]["metadata"]["rule"] == "vip_offer"
    assert seen["missing"] == {"value": {"fallback": True}, "errorCode": "FLAG_NOT_FOUND"}
    assert seen["afterPolling"]["variant"] == "hero_bold"
    assert seen["afterPolling"]["metadata"]["revision"] != seen["bulk"]["metadata"]["revision"]
    assert (seen["beforeEvent"], seen["afterEvent"]["variant"]) == ("hero_bold", "hero_eu")
    # the polls between the edits were answered 304: the provider sent the ETag back
    assert re.search(r'endpoint="/ofrep/v1/evaluate/flags",method="POST",status="3xx"\} [1-9]', metrics)


def test_the_lock_pins_the_providers_exactly() -> None:
    declared = json.loads((JS / "package.json").read_text())["dependencies"]
    locked = dict(LOCKED.findall((JS / "package-lock.json").read_text()))
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in declared.values())
    assert {name: locked[name] for name in declared} == declared
