"""Where decision events go: a rotated JSON-lines file, an HTTP collector, or memory (for tests).

Every sink writes the same line format, one JSON object per event (``DecisionEvent``), so a file
can be replayed to a collector as it is. A sink is called from the decision log's one writer
thread only; it may block and may raise: the log counts the failure and carries on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import httpx
import msgspec

from service.core.errors import TailorError
from service.telemetry.events import DecisionEvent

NDJSON = "application/x-ndjson"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 5
DEFAULT_TIMEOUT = 5.0  # seconds; the writer thread waits this long, the requests never do
DEFAULT_RETRIES = 2
FIRST_BACKOFF = 0.25  # seconds, doubled after each failed attempt
RETRY_STATUSES = frozenset({408, 429})  # besides every 5xx: the collector may accept the same batch later

_encoder = msgspec.json.Encoder()


class Sink(Protocol):
    def write(self, batch: Sequence[DecisionEvent]) -> None: ...

    def close(self) -> None: ...


class SinkError(TailorError):
    """A sink gave up on a batch. The message names the cause, never an event's content."""


def encode_lines(batch: Sequence[DecisionEvent]) -> bytes:
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
    """

    def __init__(self, path: Path | str, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = self.path.open("ab")
        self._size = self._file.tell()

    def write(self, batch: Sequence[DecisionEvent]) -> None:
        pending = bytearray()
        for event in batch:
            line = encode_lines((event,))
            if self._size + len(pending) + len(line) > self.max_bytes and self._size + len(pending) > 0:
                self._file.write(pending)
                pending.clear()
                self._rotate()
            pending += line
        self._file.write(pending)
        self._size += len(pending)
        self._file.flush()  # whole batches reach the OS, so a crash loses at most the batch in hand

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        try:
            for index in range(self.backups - 1, 0, -1):
                older = self._backup(index)
                if older.exists():
                    older.replace(self._backup(index + 1))
            if self.backups:
                self.path.replace(self._backup(1))
            else:
                self.path.unlink()
        finally:  # a failed rename must not leave the sink without a file for every later batch
            self._file = self.path.open("ab")
            self._size = self._file.tell()

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")


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
        self.url = url
        self.retries = retries
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._sleep = sleep

    def write(self, batch: Sequence[DecisionEvent]) -> None:
        body = encode_lines(batch)
        pause = FIRST_BACKOFF
        for attempt in range(1, self.retries + 2):
            failure = self._post(body)
            if failure is None:
                return
            cause, retryable = failure
            if attempt > self.retries or not retryable:
                raise SinkError(f"collector refused a batch of {len(batch)} after {attempt} attempts: {cause}")
            self._sleep(pause)
            pause *= 2

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _post(self, body: bytes) -> tuple[str, bool] | None:
        """None on success, else why not (as text holding no event data) and whether to try again."""
        try:
            response = self._client.post(
                self.url, content=body, headers={"content-type": NDJSON}, timeout=self._timeout
            )
        except httpx.TransportError as exc:
            return type(exc).__name__, True  # the collector may be back in a moment
        status = response.status_code
        if response.is_success:
            return None
        return f"HTTP {status}", status >= 500 or status in RETRY_STATUSES


class MemorySink:
    """Keeps batches in memory: the fake for tests of code that logs decisions."""

    def __init__(self) -> None:
        self.batches: list[list[DecisionEvent]] = []
        self.closed = False
        self._changed = threading.Condition()

    @property
    def events(self) -> list[DecisionEvent]:
        with self._changed:
            return [event for batch in self.batches for event in batch]

    def write(self, batch: Sequence[DecisionEvent]) -> None:
        with self._changed:
            self.batches.append(list(batch))
            self._changed.notify_all()

    def close(self) -> None:
        self.closed = True

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` events arrived; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: sum(map(len, self.batches)) >= count, timeout)
