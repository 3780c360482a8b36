"""Where decision events go: a rotated JSON-lines file, an HTTP collector, or memory (for tests).

Every sink writes the same line format, one JSON object per event (``DecisionEvent`` or ``OutcomeEvent``), so a file
can be replayed to a collector as it is. A sink is called from the decision log's one writer
thread only; it may block and may raise: the log counts the failure and carries on.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from service.core.errors import TailorError
from service.telemetry.events import Event

if TYPE_CHECKING:  # httpx loads with the first collector sink: most workers log to a file or not at all
    import httpx

NDJSON = "application/x-ndjson"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 5
DEFAULT_TIMEOUT = 5.0  # seconds; the writer thread waits this long, the requests never do
DEFAULT_RETRIES = 2
FIRST_BACKOFF = 0.25  # seconds, doubled after each failed attempt
RETRY_STATUSES = frozenset({408, 429})  # besides every 5xx: the collector may accept the same batch later

FIRST_REOPEN_PAUSE = 0.25  # seconds before an unopenable log file is tried again, doubled each time
MAX_REOPEN_PAUSE = 30.0
FILE_MODE = 0o640
TAIL_CHUNK = 64 * 1024  # bytes read at a time when looking for the last whole line

log = logging.getLogger("tailor.telemetry")
_encoder = msgspec.json.Encoder()


class Sink(Protocol):
    """Where the log's writer thread puts batches. ``write`` raises ``SinkError`` (or any error,
    then taken as nothing written) on failure; ``healthy`` is False while the sink cannot write."""

    @property
    def healthy(self) -> bool: ...

    def write(self, batch: Sequence[Event]) -> None: ...

    def retry(self) -> None:
        """Try to become healthy without a batch (called while idle and unhealthy); may raise."""

    def close(self) -> None: ...


class SinkError(TailorError):
    """A sink gave up on a batch. The message names the cause, never an event's content.

    ``written`` is how many of the batch's first events did reach their destination all the same
    (a file that filled up mid-batch), so the log can count the lost ones exactly.
    """

    def __init__(self, message: str, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


def encode_lines(batch: Sequence[Event]) -> bytes:
    """The batch as JSON lines, each ending in a newline."""
    buffer = bytearray()
    for event in batch:
        _encoder.encode_into(event, buffer, len(buffer))
        buffer += b"\n"
    return bytes(buffer)


def process_path(path: Path, pid: int | None = None) -> Path:
    """``decisions.jsonl`` → ``decisions.<pid>.jsonl``: one file per worker process.

    Two processes rotating one file would rename it under each other and lose lines.
    """
    return path.with_name(f"{path.stem}.{os.getpid() if pid is None else pid}{path.suffix}")


class JsonLinesSink:
    """Appends events to a file; before a line would take it past ``max_bytes`` the file rotates.

    Rotation renames ``path`` → ``path.1`` → ``path.2`` … keeping ``backups`` old files (0: none).
    A single line longer than ``max_bytes`` still gets a file of its own rather than being lost.

    The log must never take serving down and never lie about what reached the disk:

    - the file is opened at start if it can be; if not (a read-only or missing path), the sink is
      unhealthy and every later batch tries again, at most once per backoff pause (doubling up to
      ``MAX_REOPEN_PAUSE``), creating the folder if it is missing;
    - before each batch the path is checked to still name the open file: a folder removed and
      recreated, or a file moved away, is reopened instead of written into an unlinked inode;
    - a batch is written with ``os.write`` on an unbuffered descriptor, and a short write or a full
      disk is cut back to the last whole line, so the file only ever holds whole lines and
      ``SinkError.written`` says exactly how many of the batch's events are on disk.
    """

    def __init__(
        self,
        path: Path | str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        *,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[int, bytes | memoryview], int] = os.write,
    ) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._clock = clock
        self._os_write = write  # the one seam a test needs to play a full disk
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._size = 0
        self._pause = FIRST_REOPEN_PAUSE
        self._retry_at = 0.0
        self.problem: str | None = None  # why the last open or write failed; None while healthy
        if not self._open():
            log.warning("decision log %s cannot be opened (%s): serving without it, retrying", self.path, self.problem)

    @property
    def healthy(self) -> bool:
        return self.problem is None

    def write(self, batch: Sequence[Event]) -> None:
        self._ensure_open()
        written = 0
        pending = bytearray()
        for event in batch:
            line = encode_lines((event,))
            if self._size + len(pending) + len(line) > self.max_bytes and self._size + len(pending) > 0:
                written = self._append(pending, written)
                pending.clear()
                self._rotate(written)
            pending += line
        self._append(pending, written)
        self.problem = None

    def retry(self) -> None:
        """Reopen a file that could not be opened or has vanished, within the backoff pauses."""
        self._ensure_open()

    def close(self) -> None:
        self._close_fd()

    def _ensure_open(self) -> None:
        """Reopen when the path no longer names the open file; raise while the file cannot be had."""
        if self._fd is not None and self._identity == _identity_of(self.path):
            return
        if self._fd is not None:
            log.warning("decision log %s was removed or replaced: reopening", self.path)
            self._close_fd()
            self._retry_at = 0.0  # a vanished file is worth trying at once, not after the last pause
        if self._clock() < self._retry_at or not self._open():
            raise SinkError(f"decision log file unavailable: {self.problem}")

    def _open(self) -> bool:
        """Open (creating the folder) and cut a torn tail; on failure note why and when to try again."""
        fd = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)  # read: to find a torn tail
            status = os.fstat(fd)
            # appending after a torn line would make the next line unreadable too
            size = _cut_torn_tail(fd, status.st_size)
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            self._failed(exc)
            self._retry_at = self._clock() + self._pause
            self._pause = min(self._pause * 2, MAX_REOPEN_PAUSE)
            return False
        self._fd, self._identity, self._size = fd, (status.st_dev, status.st_ino), size
        self._pause, self.problem = FIRST_REOPEN_PAUSE, None
        return True

    def _append(self, chunk: bytearray, written: int) -> int:
        """Write whole lines; return ``written`` plus the chunk's lines, or raise with the exact count."""
        assert self._fd is not None
        view = memoryview(chunk)
        done = 0
        try:
            while done < len(chunk):
                wrote = self._os_write(self._fd, view[done:])  # a short write is followed by the error itself
                if wrote <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += wrote
        except OSError as exc:
            whole = chunk.rfind(b"\n", 0, done) + 1
            self._truncate(self._size + whole)
            self._failed(exc)
            raise SinkError(
                f"decision log write failed: {self.problem}", written=written + chunk.count(b"\n", 0, whole)
            ) from exc
        self._size += done
        return written + chunk.count(b"\n")

    def _truncate(self, size: int) -> None:
        """Cut a partly written line; if even that fails, close so the next open cuts it."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
            self._size = size
        except OSError:
            self._close_fd()

    def _rotate(self, written: int) -> None:
        self._close_fd()
        try:
            for index in range(self.backups - 1, 0, -1):
                older = self._backup(index)
                if older.exists():
                    older.replace(self._backup(index + 1))
            if self.backups:
                self.path.replace(self._backup(1))
            else:
                self.path.unlink()
        except OSError as exc:
            log.warning("decision log %s failed to rotate: %s", self.path, exc.strerror or type(exc).__name__)
        # a failed rename must not leave the sink without a file for every later batch
        if not self._open():
            raise SinkError(f"decision log file unavailable: {self.problem}", written=written)

    def _failed(self, exc: OSError) -> None:
        self.problem = f"{type(exc).__name__}: {exc.strerror or exc}"

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._identity = self._fd, None, None
            os.close(fd)

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")


def _identity_of(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _cut_torn_tail(fd: int, size: int) -> int:
    """Truncate after the file's last newline (a line torn by a crash or an older version); the new size."""
    end = size
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)
    return end


class HttpBatchSink:
    """POSTs each batch to a collector as NDJSON (``application/x-ndjson``), the file sink's format.

    NDJSON rather than a JSON array: the same bytes as the file, and a collector can stream it line
    by line. A 5xx, 408, 429 or a transport error is retried ``retries`` times with a doubling
    pause; a 4xx is not (the same batch would be refused again). Giving up raises ``SinkError``.
    """

    def __init__(
        self,
        url: str,
        client: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx  # noqa: PLC0415 - see TYPE_CHECKING above

        self.url = url
        self.retries = retries
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._transport_error = httpx.TransportError
        self._timeout = timeout
        self._sleep = sleep
        self.healthy = True  # until a batch is given up on; the next accepted batch makes it true again

    def write(self, batch: Sequence[Event]) -> None:
        body = encode_lines(batch)
        pause = FIRST_BACKOFF
        for attempt in range(1, self.retries + 2):
            failure = self._post(body)
            if failure is None:
                self.healthy = True
                return
            cause, retryable = failure
            if attempt > self.retries or not retryable:
                self.healthy = False
                raise SinkError(f"collector refused a batch of {len(batch)} after {attempt} attempts: {cause}")
            self._sleep(pause)
            pause *= 2

    def retry(self) -> None:
        """Nothing to do without a batch: the next accepted batch makes the sink healthy again."""

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _post(self, body: bytes) -> tuple[str, bool] | None:
        """None on success, else why not (as text holding no event data) and whether to try again."""
        try:
            response = self._client.post(
                self.url, content=body, headers={"content-type": NDJSON}, timeout=self._timeout
            )
        except self._transport_error as exc:
            return type(exc).__name__, True  # the collector may be back in a moment
        status = response.status_code
        if response.is_success:
            return None
        return f"HTTP {status}", status >= 500 or status in RETRY_STATUSES


class MemorySink:
    """Keeps batches in memory: the fake for tests of code that logs decisions."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.closed = False
        self.healthy = True
        self._changed = threading.Condition()

    @property
    def events(self) -> list[Event]:
        with self._changed:
            return [event for batch in self.batches for event in batch]

    def write(self, batch: Sequence[Event]) -> None:
        with self._changed:
            self.batches.append(list(batch))
            self._changed.notify_all()

    def retry(self) -> None:
        """Always healthy: nothing to retry."""

    def close(self) -> None:
        self.closed = True

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` events arrived; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: sum(map(len, self.batches)) >= count, timeout)
