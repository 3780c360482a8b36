"""The decision log file under faults: a folder removed, a path that cannot be opened, a full disk.

The log must never take serving down and never lie: every event ends up either as a whole line on
disk or in the ``lost`` count, and every line on disk parses.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.telemetry import DecisionEvent, DecisionLog, Event, JsonLinesSink, MemorySink, SinkError
from service.telemetry.metrics import Metrics
from service.telemetry.sinks import FIRST_REOPEN_PAUSE, MAX_REOPEN_PAUSE, encode_lines
from tests.telemetry.conftest import NOW

WAIT = 10.0  # seconds; only ever reached when a test is failing


def events(count: int, start: int = 0, width: int = 0) -> list[DecisionEvent]:
    return [
        DecisionEvent(
            decision_id=f"d-{n}", time=NOW, revision="r" * width, placement="p", variant="v", reason="default"
        )
        for n in range(start, start + count)
    ]


def lines_of(folder: Path) -> list[dict[str, object]]:
    """Every line of every file in the folder, each parsed (a torn line fails the test here)."""
    return [json.loads(line) for path in sorted(folder.iterdir()) for line in path.read_bytes().splitlines()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SmallDisk:
    """``os.write`` into a folder that holds ``capacity`` bytes: a short write, then ENOSPC, as Linux does."""

    def __init__(self, folder: Path, capacity: int) -> None:
        self.folder = folder
        self.capacity = capacity

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        room = self.capacity - sum(p.stat().st_size for p in self.folder.iterdir())
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data[:room])


def test_a_removed_folder_is_recreated_and_the_file_reopened(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    sink = JsonLinesSink(folder / "decisions.jsonl")
    sink.write(events(2))
    shutil.rmtree(folder)
    sink.write(events(3, start=2))  # before: OSError or lines into the unlinked file
    assert [e["decision_id"] for e in lines_of(folder)] == ["d-2", "d-3", "d-4"]
    assert sink.healthy
    sink.close()


def test_a_folder_removed_and_recreated_by_someone_else_is_reopened(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    sink = JsonLinesSink(folder / "decisions.jsonl")
    sink.write(events(1))
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "decisions.jsonl").write_bytes(encode_lines(events(1, start=100)))  # a file that is not ours
    sink.write(events(1, start=1))
    assert [e["decision_id"] for e in lines_of(folder)] == ["d-100", "d-1"]
    sink.close()


def test_a_file_moved_away_is_replaced_by_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    sink = JsonLinesSink(path)
    sink.write(events(1))
    path.rename(tmp_path / "archived")
    sink.write(events(1, start=1))
    assert [e["decision_id"] for e in lines_of(tmp_path)] == ["d-0", "d-1"]  # archived, then the new file
    sink.close()


# paths that cannot be opened, made under tmp_path (root ignores permission bits, not these)
UNOPENABLE = [
    pytest.param(lambda base: base / "file", id="parent is a regular file"),
    pytest.param(lambda base: base / "file" / "deeper", id="grandparent is a regular file"),
]


@pytest.mark.parametrize("folder_of", UNOPENABLE)
def test_a_path_that_cannot_be_opened_is_unhealthy_and_retried_with_backoff(
    folder_of: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a folder")
    folder = folder_of(tmp_path)  # type: ignore[operator]
    clock = Clock()
    sink = JsonLinesSink(folder / "decisions.jsonl", clock=clock)  # before: raised, and the worker died
    assert not sink.healthy
    assert "cannot be opened (NotADirectoryError" in caplog.text or "cannot be opened (FileExistsError" in caplog.text
    (tmp_path / "file").unlink()  # the path could now be made, but the sink waits for its pause
    with pytest.raises(SinkError, match="unavailable"):
        sink.write(events(1))
    assert not folder.exists()
    clock.now += FIRST_REOPEN_PAUSE
    sink.write(events(1, start=1))
    assert (sink.healthy, [e["decision_id"] for e in lines_of(folder)]) == (True, ["d-1"])
    sink.close()


def test_the_reopen_pause_doubles_up_to_a_ceiling(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    clock = Clock()
    sink = JsonLinesSink(tmp_path / "file" / "decisions.jsonl", clock=clock)
    pauses = []
    for _ in range(10):
        retry_at = sink._retry_at
        pauses.append(retry_at - clock.now)
        clock.now = retry_at
        with pytest.raises(SinkError):
            sink.write(events(1))
    assert (FIRST_REOPEN_PAUSE, MAX_REOPEN_PAUSE) == (0.25, 30.0)  # as docs/DEPLOYMENT.md says
    assert pauses[:4] == [FIRST_REOPEN_PAUSE * 2**i for i in range(4)]
    assert max(pauses) == MAX_REOPEN_PAUSE


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(min_value=0, max_value=3000),
    batches=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6),
    width=st.integers(min_value=0, max_value=40),
    max_bytes=st.sampled_from([400, 1000, 64 * 1024]),
)
def test_a_full_disk_keeps_whole_lines_and_counts_every_lost_event(
    capacity: int, batches: list[int], width: int, max_bytes: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("disk")
    sink = JsonLinesSink(folder / "decisions.jsonl", max_bytes=max_bytes, backups=50, write=SmallDisk(folder, capacity))
    on_disk = 0
    start = 0
    for size in batches:
        try:
            sink.write(events(size, start=start, width=width))
            on_disk += size
        except SinkError as exc:
            on_disk += exc.written
        start += size
    sink.close()
    lines = lines_of(folder)
    assert all(p.read_bytes().endswith(b"\n") or p.stat().st_size == 0 for p in folder.iterdir())
    assert len(lines) == on_disk  # rotated files included: enough backups that none is deleted


def test_a_torn_line_left_by_an_earlier_run_is_cut_at_open(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    whole = encode_lines(events(2))
    path.write_bytes(whole + b'{"schema":"tailor.deci')
    sink = JsonLinesSink(path)
    sink.write(events(1, start=2))
    sink.close()
    assert [e["decision_id"] for e in lines_of(tmp_path)] == ["d-0", "d-1", "d-2"]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: the kernel's own full disk. Needs root and mount rights, else skipped."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_real_full_disk_loses_exactly_what_is_not_on_it(small_tmpfs: Path) -> None:
    log = DecisionLog(JsonLinesSink(small_tmpfs / "decisions.jsonl"), max_batch=37, max_wait=0.001)
    for number in range(2000):  # about 150 bytes each: three times what fits
        log.submit(events(1, start=number, width=10))
    assert log.close(WAIT)
    lines = lines_of(small_tmpfs)
    assert len(lines) + log.lost == log.submitted == 2000
    assert (log.written, log.dropped) == (len(lines), 0)
    assert [e["decision_id"] for e in lines] == [f"d-{n}" for n in range(len(lines))]  # the first ones, in order
    assert log.sink_errors > 0
    assert not log.healthy


def test_after_a_full_disk_is_freed_the_log_writes_again(small_tmpfs: Path) -> None:
    (small_tmpfs / "ballast").write_bytes(b"x" * 60 * 1024)
    sink = JsonLinesSink(small_tmpfs / "decisions.jsonl")
    with pytest.raises(SinkError) as failed:
        sink.write(events(100, width=10))
    assert not sink.healthy
    (small_tmpfs / "ballast").unlink()
    sink.write(events(5, start=100))
    sink.close()
    lines = lines_of(small_tmpfs)
    assert len(lines) == failed.value.written + 5
    assert sink.healthy


class HalfSink(MemorySink):
    """Takes the first half of each batch, then fails, saying so."""

    def write(self, batch: Sequence[Event]) -> None:
        half = len(batch) // 2
        super().write(batch[:half])
        raise SinkError("disk full", written=half)


def test_the_log_counts_a_partly_written_batch_exactly() -> None:
    sink = HalfSink()
    log = DecisionLog(sink, max_wait=60, max_batch=10)
    for number in range(5):
        log.submit(events(4, start=4 * number))
    assert log.close(WAIT)
    assert (log.submitted, log.written, log.lost) == (20, len(sink.events), 20 - len(sink.events))
    assert log.written == 10


def test_an_idle_log_retries_its_sink_and_reports_recovery(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    sink = JsonLinesSink(tmp_path / "file" / "decisions.jsonl")
    log = DecisionLog(sink)
    changes = threading.Event()
    log.on_change = changes.set
    assert not log.healthy
    (tmp_path / "file").unlink()  # fixed while no decision arrives
    deadline = time.monotonic() + WAIT
    while not log.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.healthy
    assert changes.is_set()
    assert (tmp_path / "file" / "decisions.jsonl").exists()
    assert log.close(WAIT)


def test_metrics_show_the_health_and_errors_of_the_log(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    metrics = Metrics()
    log = DecisionLog(JsonLinesSink(tmp_path / "file" / "decisions.jsonl"), max_wait=0)
    metrics.watch_decision_log(log)
    log.submit(events(3))
    assert log.close(WAIT)
    text = metrics.exposition().decode()
    assert 'tailor_decision_log_healthy{log="decisions"} 0.0' in text
    assert 'tailor_decision_log_errors_total{log="decisions"} 1.0' in text
    assert 'tailor_decision_events_total{outcome="lost"} 3.0' in text
