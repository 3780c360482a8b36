"""The suite collects the same test ids in every process.

`make test` runs pytest on several processes, and pytest-xdist refuses a run whose workers
collected different ids. An id built from data that holds the time (a gzip header) or a set's
order (the hash seed) differs between processes started a second apart, so the run fails on
some hosts and not others.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _collect_elsewhere(hash_seed: str) -> set[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return {line for line in out.splitlines() if "::" in line}


def test_a_later_process_with_another_hash_seed_collects_the_same_ids(request: pytest.FixtureRequest) -> None:
    here = {item.nodeid for item in request.session.items}
    time.sleep(1.1)  # so that an id made from the clock's second differs
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    missing = sorted(here - _collect_elsewhere(seed))
    assert missing == []
