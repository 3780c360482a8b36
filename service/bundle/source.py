"""Where a worker's bundle comes from: the folder (watched) or an HTTP origin (polled).

``open_source(settings, store, on_reload, on_poll)`` picks one from the settings; the app only
starts, reloads and stops it. Both report every load, good or bad, to ``on_reload`` (the reload
metric) and leave the problems of the last failed one in the store (``/v1/bundle``). The origin
also reports every poll's outcome to ``on_poll`` (the origin metrics): once a bundle is served, a
poll that fails changes nothing else, and the operator still has to see it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from service.bundle.store import BundleStore, LoadReport
from service.bundle.watcher import BundleWatcher
from service.core.errors import Problem
from service.settings import Settings

if TYPE_CHECKING:  # the origin (and httpx under it) loads only in workers that pull from one
    from service.bundle.origin import BundleOrigin, PollResult

log = logging.getLogger("tailor.http")

OnReload = Callable[[LoadReport], None]
OnPoll = Callable[[str], None]  # the outcome of a poll: applied, unchanged, rejected or failed


class Source(Protocol):
    """A bundle source: ``start`` loads the first bundle and keeps following; ``reload`` loads now."""

    def start(self) -> None: ...
    def reload(self) -> LoadReport: ...
    def stop(self) -> None: ...


def open_source(
    settings: Settings, store: BundleStore, on_reload: OnReload, on_poll: OnPoll = lambda _outcome: None
) -> Source:
    """The origin when ``TAILOR_BUNDLE_URL`` is set, else the folder."""
    if settings.bundle_url:
        return _origin_source(settings, store, on_reload, on_poll)
    watcher = BundleWatcher(
        store, settings.bundle, state_dir=settings.state_dir, interval=settings.reload_interval, on_reload=on_reload
    )
    return FolderSource(watcher)


@dataclass
class FolderSource:
    watcher: BundleWatcher

    def start(self) -> None:
        self.watcher.start()

    def reload(self) -> LoadReport:
        return self.watcher.request_reload()

    def stop(self) -> None:
        self.watcher.stop()


@dataclass
class OriginSource:
    origin: BundleOrigin
    store: BundleStore
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.origin.start_from_cache()  # serve the last good archive at once if the origin is down
        self.thread = threading.Thread(
            target=self.origin.run, args=(self.stopping,), name="tailor-bundle-origin", daemon=True
        )
        self.thread.start()

    def reload(self) -> LoadReport:
        """Poll now; whatever happens, the report names the revision this worker serves (not None while serving)."""
        from service.bundle.origin import Outcome  # noqa: PLC0415 - loaded with the origin

        result = self.origin.poll_once()
        if result.outcome is Outcome.FAILED:
            return LoadReport(False, self.store.revision, (origin_problem(self.origin.shown_url, result),))
        problems = result.problems or self.store.last_problems
        return LoadReport(result.outcome is not Outcome.REJECTED, self.store.revision, problems)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.origin.close()


def origin_problem(shown_url: str, result: PollResult) -> Problem:
    """A poll that reached no bundle, as a problem named after the origin (its URL redacted)."""
    return Problem(shown_url, (), f"origin: {result.detail}")


def _origin_source(settings: Settings, store: BundleStore, on_reload: OnReload, on_poll: OnPoll) -> OriginSource:
    # Imported here: httpx and the archive reader are 5.5 MB and 112 modules that a worker serving a folder never uses.
    from service.bundle.origin import BundleOrigin, Outcome  # noqa: PLC0415

    def accept(path: Path) -> bool:
        report = store.load(path)
        for problem in report.problems:
            log.error("bundle from the origin not applied: %s", problem.render())
        on_reload(report)
        return report.ok

    def polled(result: PollResult) -> None:
        on_poll(result.outcome.value)
        if result.problems:  # the archive failed verification: reported like a bundle that does not compile
            store.keep_problems(result.problems)  # the poller has logged them
            on_reload(LoadReport(False, store.revision, result.problems))
        elif result.outcome is Outcome.UNCHANGED:  # the origin is back to the bundle served: nothing is wrong
            store.keep_problems(())
        elif result.outcome is Outcome.FAILED and not store.ready:  # why every answer is a 503 (store.current)
            store.keep_problems((origin_problem(origin.shown_url, result),))

    cache = settings.bundle_cache or (settings.state_dir or Path(tempfile.gettempdir())) / "origin"
    origin = BundleOrigin(settings.bundle_url, cache, accept, interval_s=settings.bundle_poll_seconds, on_poll=polled)
    return OriginSource(origin, store)
