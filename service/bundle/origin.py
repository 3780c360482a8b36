"""A replica pulls its bundle archive from an HTTP origin and keeps the last good one on disk.

Polling sends ``If-None-Match`` with the ETag of the archive this process applied, so an
unchanged bundle costs one 304. Transport errors, 429 and 5xx are retried a bounded
number of times with jittered exponential backoff; anything else waits for the next poll.
Poll intervals are jittered too, so a fleet restarted together does not poll together.

A downloaded archive is verified (``extract_archive``) into its own folder under
``cache_dir/bundles/`` and offered to ``on_bundle``; only an accepted one replaces
``last-good.tar.gz``, from which ``start_from_cache`` starts a replica whose origin is down.

Cache layout (one per replica; the worker processes of one replica may share it)::

    cache_dir/last-good.tar.gz   the last archive on_bundle accepted
    cache_dir/last-good.json     its sha256, revision and ETag
    cache_dir/bundles/<sha>/     the extracted bundle being served
    cache_dir/.lock              serialises extraction, apply and clean-up between processes
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

import httpx
import msgspec

from service.bundle.archive import MANIFEST_NAME, MAX_TOTAL_BYTES, ArchiveError, extract_archive
from service.core.errors import Problem, TailorError
from service.redaction import ScrubFilter, redact_url, scrub

log = logging.getLogger("tailor.origin")

ARCHIVE_NAME = "last-good.tar.gz"
STATE_NAME = "last-good.json"
BUNDLES_DIR = "bundles"
LOCK_NAME = ".lock"
DEFAULT_INTERVAL_S = 30.0
INTERVAL_JITTER = 0.2  # each wait is interval * uniform(0.8, 1.2)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
DEFAULT_MAX_BACKOFF_S = 8.0
DEFAULT_TIMEOUT_S = 10.0
MAX_ARCHIVE_BYTES = 2 * MAX_TOTAL_BYTES  # tar headers and gzip framing never double a bundle
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
DIR_NAME_CHARS = 16
CHUNK_BYTES = 1024 * 1024

OnBundle = Callable[[Path], bool]
OnPoll = Callable[["PollResult"], None]


class Outcome(StrEnum):
    APPLIED = "applied"  # a new archive was verified and accepted
    UNCHANGED = "unchanged"  # 304, or the same bytes as the bundle being served
    REJECTED = "rejected"  # the archive failed verification or on_bundle refused it
    FAILED = "failed"  # the origin could not be reached or answered an error


@dataclass(frozen=True, slots=True)
class PollResult:
    outcome: Outcome
    attempts: int
    revision: str | None = None
    path: Path | None = None
    detail: str = ""
    problems: tuple[Problem, ...] = ()  # an archive that failed verification, as bundle problems


class _State(msgspec.Struct, frozen=True):
    sha256: str
    revision: str
    etag: str | None


@dataclass(frozen=True, slots=True)
class _Download:
    path: Path | None  # None after a 304
    sha256: str = ""
    etag: str | None = None


class _RetryableError(TailorError):
    pass


class _FetchError(TailorError):
    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class BundleOrigin:
    """Polls one URL for bundle archives, usually from ``run`` in a background thread.

    Polls are serialised, so an admin endpoint may call ``poll_once`` while ``run`` is going.
    """

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        on_bundle: OnBundle,
        *,
        client: httpx.Client | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_poll: OnPoll | None = None,
    ) -> None:
        self.url = url
        self.shown_url = redact_url(url)  # for logs and answers: the URL may carry credentials
        self._scrubbing = ScrubFilter(url)  # in case an exception's text quotes the URL
        log.addFilter(self._scrubbing)
        logging.getLogger("httpx").addFilter(_REQUEST_URLS)  # httpx logs every URL it requests, redirects too
        self._cache = Path(cache_dir)
        self._on_bundle = on_bundle
        self._on_poll = on_poll or (lambda _result: None)
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=DEFAULT_TIMEOUT_S, follow_redirects=True)
        self._interval_s = interval_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        # Seeded from the OS by default: replicas must not share a jitter sequence. Tests pass a seeded one.
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a decision or a secret
        self._sleep = sleep
        self._etag: str | None = None  # only for an archive applied by this process: a 304 must mean "have it"
        self._current_sha: str | None = None
        self._rejected_sha: str | None = None
        self._current: Path | None = None
        self._polling = threading.Lock()  # in this process; _locked() is the one between processes
        self._last: PollResult | None = None  # of the poll that ended last, for a caller that waited for it

    @property
    def current(self) -> Path | None:
        """The extracted folder of the bundle this process applied last, if any."""
        return self._current

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
        log.removeFilter(self._scrubbing)

    def __enter__(self) -> BundleOrigin:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # --- start-up ----------------------------------------------------------------------------------------------

    def start_from_cache(self) -> Path | None:
        """Verify the last good archive, offer it to on_bundle, and return its folder if accepted.

        For start-up before the first poll: a replica whose origin is down serves what it served last.
        """
        try:
            with self._polling, self._locked():
                return self._apply_cached()
        except (OSError, ArchiveError) as exc:
            log.error("the cached bundle in %s is unusable: %s", self._cache, exc)
            return None

    def _apply_cached(self) -> Path | None:
        archive = self._cache / ARCHIVE_NAME
        if not archive.is_file():
            log.info("no cached bundle in %s", self._cache)
            return None
        sha = _sha256_of(archive)
        dest = self._bundle_dir(sha)
        manifest = extract_archive(archive, dest)
        if not self._offer(dest):
            shutil.rmtree(dest, ignore_errors=True)
            return None
        state = self._read_state()
        self._adopt(sha, state.etag if state and state.sha256 == sha else None, dest)
        log.info("started from cached bundle %s (%s)", manifest.revision, dest)
        return dest

    # --- polling -----------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll now and then every jittered interval until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("unexpected error while polling %s", self.shown_url)
            stop.wait(self.next_delay())

    def next_delay(self) -> float:
        return self._interval_s * self._rng.uniform(1 - INTERVAL_JITTER, 1 + INTERVAL_JITTER)

    def poll_once(self) -> PollResult:
        """Ask the origin once (with bounded retries) and apply a new archive if there is one.

        A poll already under way (the timer's, when an admin reload comes) that fails is this call's
        too: its result is returned when it ends. Polling again after it would double the wait on an
        origin that does not answer (4 timeouts each) for the same failure.
        """
        if self._polling.acquire(blocking=False):
            return self._poll_holding_the_lock()
        with self._polling:  # wait for the poll under way to end
            ended = self._last
        if ended is not None and ended.outcome is Outcome.FAILED:
            return ended
        # It reached the origin (or raised): its answer may predate what the caller just published, and a
        # second ask of an origin that answers is quick (a 304 when nothing is new).
        return self.poll_once()

    def _poll_holding_the_lock(self) -> PollResult:
        try:
            self._last = None
            result = self._last = self._poll()
            self._on_poll(result)  # under the lock: a caller that waited sees the store as this poll left it
        finally:
            self._polling.release()
        return result

    def _poll(self) -> PollResult:
        try:
            download, attempts = self._fetch_with_retries()
        except _FetchError as exc:
            log.warning("bundle origin %s: %s", self.shown_url, exc)
            return PollResult(Outcome.FAILED, exc.attempts, detail=str(exc))
        if download.path is None:
            log.debug("bundle origin %s: not modified", self.shown_url)
            return PollResult(Outcome.UNCHANGED, attempts, path=self._current)
        try:
            return self._apply_download(download, attempts)
        finally:
            download.path.unlink(missing_ok=True)

    def _fetch_with_retries(self) -> tuple[_Download, int]:
        attempt = 1
        while True:
            try:
                return self._fetch(), attempt
            except _FetchError as exc:
                exc.attempts = attempt
                raise
            except _RetryableError as exc:
                if attempt > self._retries:
                    raise _FetchError(f"gave up after {attempt} attempts: {exc}", attempt) from None
                delay = self._backoff(attempt)
                log.info("bundle origin %s: %s; retrying in %.2fs", self.shown_url, exc, delay)
                self._sleep(delay)
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        # Half fixed, half random ("equal jitter"): the wait grows, yet replicas do not retry in step.
        ceiling = min(self._max_backoff_s, self._backoff_s * 2.0 ** (attempt - 1))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def _fetch(self) -> _Download:
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            with self._client.stream("GET", self.url, headers=headers) as response:
                status = response.status_code
                if status == httpx.codes.NOT_MODIFIED:
                    return _Download(None)
                if status >= httpx.codes.INTERNAL_SERVER_ERROR or status in RETRY_STATUSES:
                    raise _RetryableError(f"HTTP {status}")
                if status != httpx.codes.OK:
                    raise _FetchError(f"HTTP {status}")
                return self._save(response)
        except httpx.TransportError as exc:
            raise _RetryableError(scrub(f"{type(exc).__name__}: {exc}", self.url)) from None

    def _save(self, response: httpx.Response) -> _Download:
        """Stream the body to a temporary file in the cache (same disk, so accepting it is a rename)."""
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=".download-", suffix=".tar.gz", dir=self._cache)
        except OSError as exc:
            raise self._unwritable(exc) from None
        path = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    size += len(chunk)
                    if size > MAX_ARCHIVE_BYTES:
                        raise _FetchError(f"the archive is larger than {MAX_ARCHIVE_BYTES} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise self._unwritable(exc) from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return _Download(path, digest.hexdigest(), response.headers.get("ETag"))

    def _unwritable(self, exc: OSError) -> _FetchError:
        log.error("bundle origin %s: cannot write the cache in %s: %s", self.shown_url, self._cache, exc)
        return _FetchError(_cache_fault(exc))

    # --- applying ----------------------------------------------------------------------------------------------

    def _apply_download(self, download: _Download, attempts: int) -> PollResult:
        assert download.path is not None
        if download.sha256 == self._current_sha:  # an origin without ETags, or a new ETag for the same bytes
            self._etag = download.etag
            return PollResult(Outcome.UNCHANGED, attempts, path=self._current)
        if download.sha256 == self._rejected_sha:  # still the archive refused before: do not log it all again
            return PollResult(Outcome.REJECTED, attempts, detail="the origin still serves the rejected archive")
        self._rejected_sha = None
        try:
            with self._locked():
                return self._apply_locked(download, attempts)
        except OSError as exc:  # the cache's disk (full, read-only ...): failed, not rejected, so the next poll retries
            log.error("bundle origin %s: cannot write the cache in %s: %s", self.shown_url, self._cache, exc)
            return PollResult(Outcome.FAILED, attempts, detail=_cache_fault(exc))

    def _apply_locked(self, download: _Download, attempts: int) -> PollResult:
        assert download.path is not None
        dest = self._bundle_dir(download.sha256)
        try:
            manifest = extract_archive(download.path, dest)
        except ArchiveError as exc:
            rejected = self._reject(download, attempts, f"the archive failed verification: {exc}")
            return dataclasses.replace(rejected, problems=(archive_problem(exc),))
        if not self._offer(dest):
            shutil.rmtree(dest, ignore_errors=True)
            return self._reject(download, attempts, f"bundle {manifest.revision} was not accepted")
        self._adopt(download.sha256, download.etag, dest)  # served from here on, whatever the disk does next
        log.info("bundle %s from %s applied (%s)", manifest.revision, self.shown_url, dest)
        try:
            os.replace(download.path, self._cache / ARCHIVE_NAME)
            self._write_state(_State(download.sha256, manifest.revision, download.etag))
        except OSError as exc:  # a restart starts from the archive kept before; this poll still applied
            log.error("bundle origin %s: bundle %s is served, but the cache did not keep it: %s",
                      self.shown_url, manifest.revision, exc)  # fmt: skip
        return PollResult(Outcome.APPLIED, attempts, manifest.revision, dest)

    def _reject(self, download: _Download, attempts: int, detail: str) -> PollResult:
        self._rejected_sha = download.sha256
        kept = "keeping the current bundle" if self._current is not None else "no bundle is loaded yet"
        log.error("bundle origin %s: %s; %s", self.shown_url, detail, kept)
        return PollResult(Outcome.REJECTED, attempts, detail=detail)

    def _offer(self, dest: Path) -> bool:
        try:
            return bool(self._on_bundle(dest))
        except Exception:
            log.exception("on_bundle failed for %s", dest)
            return False

    def _adopt(self, sha: str, etag: str | None, dest: Path) -> None:
        self._current_sha, self._etag, self._current = sha, etag, dest
        self._prune(keep=dest)

    def _prune(self, keep: Path) -> None:
        """Remove the folders of older bundles; the accepted one is compiled into memory by now."""
        for child in (self._cache / BUNDLES_DIR).iterdir():
            if child != keep:
                shutil.rmtree(child, ignore_errors=True)

    def _bundle_dir(self, sha: str) -> Path:
        return self._cache / BUNDLES_DIR / sha[:DIR_NAME_CHARS]

    # --- state on disk -----------------------------------------------------------------------------------------

    def _read_state(self) -> _State | None:
        try:
            return msgspec.json.decode((self._cache / STATE_NAME).read_bytes(), type=_State)
        except (OSError, msgspec.DecodeError):
            return None  # without a state the archive is still good; only its ETag is unknown

    def _write_state(self, state: _State) -> None:
        handle, name = tempfile.mkstemp(prefix=".state-", dir=self._cache)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(msgspec.json.encode(state))
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, self._cache / STATE_NAME)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Worker processes of one replica share the cache: one of them at a time extracts, applies or prunes."""
        self._cache.mkdir(parents=True, exist_ok=True)
        with open(self._cache / LOCK_NAME, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class _RedactRequestUrls(logging.Filter):
    """httpx's request lines show URLs redacted: a presigned redirect target is as secret as the origin's URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_REQUEST_URLS = _RedactRequestUrls()


def archive_problem(error: ArchiveError) -> Problem:
    """A verification failure located like a compile error: the member of the archive it is about."""
    return Problem(error.file or MANIFEST_NAME, (), f"the archive from the origin failed verification: {error.message}")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_fault(exc: OSError) -> str:
    """What clients may read of a cache that cannot be written: the error, not the server's path (logged)."""
    return f"cannot write the bundle cache: {exc.strerror or type(exc).__name__}"
