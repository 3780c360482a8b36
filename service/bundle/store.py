"""One reference to the bundle being served, swapped atomically; the last good bundle keeps serving.

Readers take ``store.current`` once per request and use that object throughout,
so a swap in the middle of a request never mixes two revisions.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from service.bundle.loader import Reuse, load_snapshot
from service.bundle.snapshot import Snapshot, read_snapshot
from service.core.compile import Bundle
from service.core.errors import BundleError, Problem, TailorError

log = logging.getLogger("tailor.reload")


class NotReadyError(TailorError):
    """No bundle has loaded yet, so no decision can be made."""


@dataclass(frozen=True, slots=True)
class Loaded:
    bundle: Bundle
    loaded_at: datetime
    source: Path


@dataclass(frozen=True, slots=True)
class LoadReport:
    ok: bool
    revision: str | None  # the revision served after this load: unchanged when it failed, None before any
    problems: tuple[Problem, ...]
    snapshot: Snapshot | None = None  # the bytes that compiled, for the last-good copy; None after a failure
    seconds: float = 0.0  # wall time to read and compile: longer than ``cpu_seconds`` while requests share the GIL
    cpu_seconds: float = 0.0  # CPU time of the loading thread: what a reload costs the worker


def relative_to(root: Path, problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """Problems that name files inside the bundle only: ``/v1/bundle`` shows them to anyone, no server paths.

    The loader already names files relative to the bundle; this also catches a message that quotes a
    path (a library's error text, say).
    """
    prefixes = {f"{folder}/" for folder in (root.as_posix(), root.resolve().as_posix()) if folder not in ("", ".")}
    out = []
    for problem in problems:
        file, message = problem.file, problem.message
        for prefix in sorted(prefixes, key=len, reverse=True):
            file, message = file.removeprefix(prefix), message.replace(prefix, "")
        out.append(
            problem
            if (file, message) == (problem.file, problem.message)
            else replace(problem, file=file, message=message)
        )
    return tuple(out)


def _not_loaded(problems: tuple[Problem, ...]) -> str:
    """Why nothing is served, in every 503: a replica whose origin keeps failing said only "not yet"."""
    if not problems:
        return "no bundle is loaded yet"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"no bundle is loaded yet; the last load failed: {problems[0].render()}{more}"


class BundleStore:
    """Holds the current bundle and the problems of the last failed load."""

    def __init__(self, load: Callable[[Snapshot], Bundle] | None = None, clock: Callable[[], datetime] | None = None):
        self._load = load or functools.partial(load_snapshot, reuse=Reuse())  # a reload rebuilds only what changed
        self._clock = clock or (lambda: datetime.now(UTC))
        self._current: Loaded | None = None
        self._last_problems: tuple[Problem, ...] = ()
        self._lock = threading.Lock()  # one load at a time; readers never wait for it

    @property
    def current(self) -> Loaded:
        loaded = self._current
        if loaded is None:
            raise NotReadyError(_not_loaded(self._last_problems))
        return loaded

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def last_problems(self) -> tuple[Problem, ...]:
        """Problems of the most recent load if it failed; empty after a success."""
        return self._last_problems

    @property
    def revision(self) -> str | None:
        """The revision being served, if any."""
        loaded = self._current
        return None if loaded is None else loaded.bundle.revision

    def keep_problems(self, problems: tuple[Problem, ...]) -> None:
        """Report problems of a source that could not be loaded while another bundle serves."""
        self._last_problems = problems

    def load(self, source: Path) -> LoadReport:
        """Read ``source`` once and load those bytes; on success swap them in, on failure keep serving."""
        with self._lock:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                report = self._load_locked(read_snapshot(source), source)
            except Exception as exc:  # noqa: BLE001 -- a bug or an OS error is a failed load like any other
                report = self._crashed(exc)
            return replace(report, seconds=time.perf_counter() - wall, cpu_seconds=time.thread_time() - cpu)

    def _crashed(self, exc: Exception) -> LoadReport:
        """A load that raised: reported where broken edits are (the log, /v1/bundle, the error count)."""
        log.error("bundle load failed", exc_info=exc)
        self._last_problems = (Problem(".", (), f"the bundle could not be loaded: {type(exc).__name__}: {exc}"),)
        return LoadReport(False, self.revision, self._last_problems)

    def _load_locked(self, snapshot: Snapshot, source: Path) -> LoadReport:
        current = self._current
        if current is not None and snapshot.revision == current.bundle.revision:
            # The revision hashes the very bytes that compiled, so equal revisions are equal bundles.
            self._last_problems = ()
            return LoadReport(True, snapshot.revision, (), snapshot)
        try:
            bundle = self._load(snapshot)
        except BundleError as exc:
            self._last_problems = relative_to(source, exc.problems)
            return LoadReport(False, None if current is None else current.bundle.revision, self._last_problems)
        self._current = Loaded(bundle, self._clock(), source)
        self._last_problems = ()
        return LoadReport(True, bundle.revision, (), snapshot)
