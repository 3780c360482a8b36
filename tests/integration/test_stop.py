"""A server told to stop while its workers start still stops (granian's workers miss that signal)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.server import ROOT, free_port, serve_command

STOP_TIMEOUT_S = 1  # TAILOR_STOP_TIMEOUT_S of these servers
# Without TAILOR_STOP_TIMEOUT_S, a SIGTERM within about half a second of a worker's spawn left the
# server waiting for that worker for good (5 of 5 delays from 0.05 to 0.45 s; at 0.6 s it stopped).
_DRAW = random.Random(15)  # one generator for the four: a new one per delay drew the same delay four times
DELAYS_S = sorted(_DRAW.uniform(0.0, 0.5) for _ in range(4))
EXIT_WITHIN_S = 15.0  # the kill after STOP_TIMEOUT_S, and a slow machine's start of the others


def _serve(tmp_path: Path) -> subprocess.Popen[bytes]:
    command = serve_command(ROOT, free_port(), workers=2)
    env = {**os.environ, "TAILOR_STOP_TIMEOUT_S": str(STOP_TIMEOUT_S), "TAILOR_STATE_DIR": str(tmp_path / "state")}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _wait_for_line(process: subprocess.Popen[bytes], text: bytes) -> threading.Thread:
    """Read the log until ``text``, then keep draining it so the server never blocks on a full pipe."""
    assert process.stderr is not None
    for line in process.stderr:
        if text in line:
            drain = threading.Thread(target=process.stderr.read, daemon=True)
            drain.start()
            return drain
    pytest.fail(f"the server exited before logging {text!r}")


@pytest.mark.parametrize("delay_s", DELAYS_S, ids=lambda d: f"{d:.2f}s")
def test_sigterm_while_a_worker_starts_stops_the_server(tmp_path: Path, delay_s: float) -> None:
    process = _serve(tmp_path)
    drain = None
    try:
        drain = _wait_for_line(process, b"Spawning worker-2")
        time.sleep(delay_s)
        told = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"SIGTERM {delay_s:.2f} s after a worker's spawn: still running after {EXIT_WITHIN_S} s")
        assert time.monotonic() - told < EXIT_WITHIN_S
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if drain is not None:
            drain.join(EXIT_WITHIN_S)  # the pipe ends with the process
        if process.stderr is not None:
            process.stderr.close()
