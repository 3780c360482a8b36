"""The API does exactly what its OpenAPI document says: schemathesis, every check, against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

ST = Path(sys.executable).parent / "st"
# Bounded and repeatable: a fixed number of examples per operation, generated deterministically.
EXAMPLES = 60
RUN_TIMEOUT_S = 600


def test_schemathesis_finds_no_failure_with_every_check(tmp_path: Path) -> None:
    assert ST.exists() or shutil.which("st"), "schemathesis is a dev dependency"
    with running_server(TAILOR_ADMIN_TOKEN="contract-test-token-0123") as base:
        command = [
            str(ST), "run", f"{base}/schema/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
            "--generation-deterministic", "--workers", "1", "--no-color", "--max-failures", "20",
            "--exclude-path-regex", "^/ofrep/v1/events",  # an event stream never ends; tests/ofrep checks it
        ]  # fmt: skip
        # In a fresh folder: schemathesis replays the failures it cached in the working directory.
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-20000:]
    assert "Tested: 11" in report  # every operation of the document but the event stream was exercised
    cases = re.search(r"(\d+) generated, (\d+) passed\n", report)
    assert cases is not None, report[-5000:]
    assert cases.group(1) == cases.group(2)  # nothing failed, errored or was skipped
