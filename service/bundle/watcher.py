"""Live reload: watch the bundle folder and swap in each new bundle that compiles.

Every server worker runs one watcher thread. It polls a cheap fingerprint of the
bundle (each file's path, size and modification time, plus a trigger file that an
admin reload touches so that every worker follows), and when it changes it loads,
validates and compiles the bundle off the request path and asks the store to swap
it in. A bundle with any error changes nothing but the reported problems.

Polling rather than inotify: a bundle is a few dozen files, a stat of each every
half second costs microseconds, and it works the same on every filesystem,
including the bind mounts and network volumes operators use for bundles.

The last good bundle is also kept on disk (``LastGood``): a worker that starts
while the folder is broken (a new replica, or granian respawning workers on SIGHUP)
starts from it instead of serving nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.bundle.snapshot import Snapshot, bundle_files, write_snapshot
from service.bundle.store import BundleStore, LoadReport

log = logging.getLogger("tailor.reload")

TRIGGER_FILE = "reload-trigger"
LAST_GOOD_DIR = "last-good"
SAVE_ATTEMPTS = 3
LEFTOVER_SECONDS = 3600.0  # a save takes milliseconds: a leftover this old belongs to a worker that died
_LEFTOVER = re.compile(r"^\.(.+\.(staging|pruned)-.+|current-\d+)$")
# With TAILOR_RELOAD_INTERVAL=0 the folder is not watched, but the trigger is: POST /admin/reload
# reaches one worker, and the others follow the trigger file it touches.
TRIGGER_INTERVAL_S = 0.5
KEPT_COPIES = 5  # last-good copies kept besides the one ``current`` names: an edit storm must not fill the disk
Fingerprint = tuple[tuple[str, int, int, int, int], ...]  # path, size, mtime, inode, ctime of every file


def fingerprint(source: Path | None, trigger: Path | None = None) -> Fingerprint:
    """What changes when any bundle file (or the trigger) is written, added or removed; no source: the trigger's."""
    entries = []
    paths = [] if source is None else bundle_files(source)
    if trigger is not None and trigger.exists():
        paths.append(trigger)
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed between listing and stat: the next poll sees it
            continue
        # size and mtime alone miss a file replaced by one of the same size with its mtime kept (cp -p,
        # rsync -t, a reproducible build): the replacement is a new inode, and its ctime is now.
        entries.append((path.as_posix(), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns))
    return tuple(entries)


def _without(seen: Fingerprint, trigger: Path | None) -> Fingerprint:
    shown = None if trigger is None else trigger.as_posix()
    return tuple(entry for entry in seen if entry[0] != shown)


@dataclass(frozen=True, slots=True)
class LastGood:
    """Copies of bundles that compiled, in ``folder``; one pointer file, ``current``, names the newest.

    Copies are written from the snapshot that compiled, never copied from the live folder (which
    may already hold the next edit), and ``current`` moves only once the copy is complete.
    """

    folder: Path

    def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (which compiled); several workers may do this at once, so every step is atomic."""
        dest = self.folder / snapshot.revision
        for _ in range(SAVE_ATTEMPTS):
            write_snapshot(snapshot, dest)
            try:
                os.utime(dest)  # a revision saved again (an edit undone) counts as new, not as the oldest
                break
            except FileNotFoundError:  # an old copy of it, pruned by another worker since: write it again
                continue
        pointer = self.folder / f".current-{os.getpid()}"
        pointer.write_text(snapshot.revision)
        pointer.replace(self.folder / "current")
        self.prune()

    def prune(self) -> None:
        """Remove all but the ``KEPT_COPIES`` newest copies, never the one ``current`` names.

        Each copy is renamed away before it is deleted, so a reader sees a whole copy or none;
        two workers pruning at once each remove what the other has not.
        """
        current = self.path()
        copies = [p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p != current]
        copies.sort(key=_saved_at, reverse=True)
        for old in copies[KEPT_COPIES:]:
            stale = old.with_name(f".{old.name}.pruned-{uuid.uuid4().hex}")
            try:
                old.rename(stale)
            except OSError:  # another worker pruned it first
                continue
            shutil.rmtree(stale, ignore_errors=True)
        self._sweep(time.time() - LEFTOVER_SECONDS)

    def _sweep(self, before: float) -> None:
        """Remove what a worker killed mid-write or mid-prune left (a staging or renamed-away folder, a
        pointer being written): an hour old, it is no one's work in progress, only disk taken."""
        for leftover in self.folder.iterdir():
            if _LEFTOVER.match(leftover.name) and _saved_at(leftover)[0] < before * 1e9:
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> LastGood:
        return cls(state_dir / LAST_GOOD_DIR)

    def path(self) -> Path | None:
        try:
            revision = (self.folder / "current").read_text().strip()
        except (OSError, UnicodeDecodeError):  # none kept, or the folder is not one: no copy to start from
            return None
        folder = self.folder / revision
        return folder if folder.is_dir() else None


def _saved_at(copy: Path) -> tuple[int, str]:
    try:
        return copy.stat().st_mtime_ns, copy.name
    except FileNotFoundError:  # pruned by another worker meanwhile: the oldest of all
        return 0, copy.name


class BundleWatcher:
    """Loads the bundle at start, then reloads it whenever its files change."""

    def __init__(
        self,
        store: BundleStore,
        source: Path,
        *,
        state_dir: Path | None = None,
        interval: float = 0.5,
        on_reload: Callable[[LoadReport], None] | None = None,
    ) -> None:
        """``interval`` 0: the folder is not watched; only the trigger is, every TRIGGER_INTERVAL_S."""
        self.store = store
        self.source = source
        self.watch_folder = interval > 0
        self.interval = interval if self.watch_folder else TRIGGER_INTERVAL_S
        self.trigger = None if state_dir is None else state_dir / TRIGGER_FILE
        self.last_good = None if state_dir is None else LastGood.in_state_dir(state_dir)
        self._on_reload = on_reload or (lambda _report: None)
        self._seen: Fingerprint = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LoadReport:
        """First load (from the last good copy if the folder is broken), then watch in a daemon thread."""
        report = self.reload()
        if not report.ok and self.last_good is not None and (kept := self.last_good.path()) is not None:
            fallback = self.store.load(kept)
            if fallback.ok:
                log.warning("started from the last good bundle %s: %s is broken", fallback.revision, self.source)
                self.store.keep_problems(report.problems)
        if self.watch_folder or self.trigger is not None:  # else nothing can change what this worker serves
            self._thread = threading.Thread(target=self._run, name="tailor-bundle-watcher", daemon=True)
            self._thread.start()
        return report

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def request_reload(self) -> LoadReport:
        """Reload now in this worker, and touch the trigger so that every other worker reloads too."""
        report = self.reload()
        if self.trigger is not None:
            try:
                self.trigger.parent.mkdir(parents=True, exist_ok=True)
                self.trigger.touch()
            except OSError as exc:  # this worker has reloaded; the others follow their folder checks, if any
                log.error("the other workers were not told to reload: %s: %s", self.trigger, exc.strerror or exc)
            else:
                self._seen_own_touch()
        return report

    def _seen_own_touch(self) -> None:
        """This worker's touch of the trigger is no news to its own watcher (a second load of the same folder,
        which with in-place edits might catch the next one half written); a change to the folder still is."""
        now = self._fingerprint()
        if _without(now, self.trigger) == _without(self._seen, self.trigger):
            self._seen = now

    def reload(self) -> LoadReport:
        self._seen = self._fingerprint()
        report = self.store.load(self.source)
        if report.ok:
            log.info(
                "bundle %s loaded from %s in %.1f ms (%.1f ms of CPU) by worker %d",
                report.revision, self.source, report.seconds * 1000, report.cpu_seconds * 1000, os.getpid(),
            )  # fmt: skip
            if self.last_good is not None and report.snapshot is not None:
                self._keep(report.snapshot)
        else:
            for problem in report.problems:
                log.error("bundle not reloaded: %s", problem.render())
        self._on_reload(report)
        return report

    def _keep(self, snapshot: Snapshot) -> None:
        """Save the last good copy; a disk that cannot take it (full, read-only) costs only the copy.

        The bundle is served either way, and the copy is only needed by a worker that starts while
        the folder is broken: the failure is logged, not raised, so the load still counts as one.
        """
        assert self.last_good is not None
        try:
            self.last_good.save(snapshot)
        except OSError as exc:
            log.error(
                "bundle %s is served, but its last good copy was not kept in %s: %s",
                snapshot.revision, self.last_good.folder, exc.strerror or exc,
            )  # fmt: skip

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self._fingerprint() != self._seen:
                    self.reload()
            except Exception:
                log.exception("bundle watcher error")

    def _fingerprint(self) -> Fingerprint:
        return fingerprint(self.source if self.watch_folder else None, self.trigger)
