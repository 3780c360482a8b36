"""loadtests/profile_app.py runs on both bundles: a profile that no longer starts measures nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("bundle", [[], ["--flags20"]], ids=["example", "flags20"])
def test_the_in_process_profile_runs_every_case(bundle: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "loadtests/profile_app.py", "--requests", "20", "--rsgi", "--profile", *bundle],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line.endswith(" |")]
    assert len(rows) == 11  # the header and the 10 cases, each with its µs
    assert "6. Tailor's RSGI door, POST /v1/decide" in done.stdout
    assert "function calls" in done.stdout  # cProfile's listing of the RSGI door
