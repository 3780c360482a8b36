"""The memory and reload load test reads what the server really writes: its reload log lines and /proc."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from loadtests.memory_reloads import LOADED, memory_of, reloads_logged
from service.bundle.store import BundleStore
from service.bundle.watcher import BundleWatcher

ROOT = Path(__file__).parents[1]


def test_the_reload_times_the_load_test_reads_are_the_ones_a_worker_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, tmp_path / kind)
    with caplog.at_level(logging.INFO, logger="tailor.reload"):
        report = BundleWatcher(BundleStore(), tmp_path).reload()
    messages = [r.getMessage() for r in caplog.records if LOADED.search(r.getMessage())]
    assert len(messages) == 1
    log = tmp_path / "server.log"
    log.write_text("granian text line\n" + json.dumps({"message": messages[0]}) + "\n")
    [(pid, wall_ms, cpu_ms)], offset = reloads_logged(log, 0)
    assert (pid, offset) == (os.getpid(), log.stat().st_size)
    assert wall_ms == pytest.approx(report.seconds * 1000, abs=0.06)
    assert cpu_ms == pytest.approx(report.cpu_seconds * 1000, abs=0.06)
    assert reloads_logged(log, offset) == ([], offset)  # only what was written since


def test_memory_of_a_live_process_and_of_one_that_ended() -> None:
    mine = memory_of(os.getpid(), "worker")
    assert mine is not None
    assert 0 < mine.pss_anon <= mine.pss <= mine.rss
    assert mine.threads >= 1
    assert memory_of(2**22 + 1, "worker") is None  # above the kernel's largest pid
