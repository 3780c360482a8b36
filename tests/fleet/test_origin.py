"""A replica polling a real HTTP origin on 127.0.0.1: ETags, retries, verification, the last good archive."""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.bundle import archive as archive_module
from service.bundle import origin as origin_module
from service.bundle.archive import build_archive
from service.bundle.loader import load_bundle, revision_of
from service.bundle.origin import ARCHIVE_NAME, BUNDLES_DIR, BundleOrigin, Outcome
from tests.fleet.conftest import OriginServer


class Replica:
    """What an integrator passes as on_bundle: load the folder, say whether it is accepted, remember it."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.offered: list[Path] = []
        self.revisions: list[str] = []

    def __call__(self, path: Path) -> bool:
        self.offered.append(path)
        if self.accept:
            self.revisions.append(load_bundle(path).revision)
        return self.accept


@pytest.fixture
def archive(bundle: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "v1.tar.gz"
    build_archive(bundle, out)
    return out.read_bytes()


@pytest.fixture
def archive_v2(bundle: Path, tmp_path: Path) -> bytes:
    variants = bundle / "content" / "variants.yaml"
    variants.write_text(variants.read_text() + "\n# second edition\n")
    out = tmp_path / "v2.tar.gz"
    build_archive(bundle, out)
    return out.read_bytes()


def _poller(origin: OriginServer, cache: Path, replica: Replica, sleeps: list[float], retries: int = 3) -> BundleOrigin:
    """The poller's own client (closed with it); the jitter source is seeded and sleeping only records."""
    return BundleOrigin(
        origin.url,
        cache,
        replica,
        retries=retries,
        backoff_s=0.5,
        max_backoff_s=4.0,
        rng=random.Random(7),
        sleep=sleeps.append,
    )


def test_first_poll_applies_then_an_unchanged_origin_answers_304(
    origin: OriginServer, archive: bytes, bundle: Path, tmp_path: Path
) -> None:
    origin.publish(archive)
    replica, sleeps = Replica(), list[float]()
    with _poller(origin, tmp_path / "cache", replica, sleeps) as poller:
        first = poller.poll_once()
        second = poller.poll_once()
    assert (first.outcome, first.attempts, first.revision) == (Outcome.APPLIED, 1, revision_of(bundle))
    assert first.path is not None
    assert replica.offered == [first.path]
    assert replica.revisions == [revision_of(bundle)]
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == archive
    assert (second.outcome, second.path) == (Outcome.UNCHANGED, first.path)
    assert "If-None-Match" not in origin.requests[0]
    assert origin.requests[1]["If-None-Match"] == origin.etag
    assert sleeps == []


def test_a_new_archive_on_the_origin_is_applied_and_the_old_folder_removed(
    origin: OriginServer, archive: bytes, archive_v2: bytes, tmp_path: Path
) -> None:
    origin.publish(archive)
    replica = Replica()
    with _poller(origin, tmp_path / "cache", replica, []) as poller:
        first = poller.poll_once()
        origin.publish(archive_v2)
        second = poller.poll_once()
    assert second.outcome == Outcome.APPLIED
    assert second.revision != first.revision
    assert replica.revisions == [first.revision, second.revision]
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == archive_v2
    assert list((tmp_path / "cache" / BUNDLES_DIR).iterdir()) == [second.path]


def test_a_rejected_bundle_is_not_kept_as_last_good(
    origin: OriginServer, archive: bytes, archive_v2: bytes, tmp_path: Path
) -> None:
    origin.publish(archive)
    accepted_etag = origin.etag
    replica = Replica()
    with _poller(origin, tmp_path / "cache", replica, []) as poller:
        first = poller.poll_once()
        origin.publish(archive_v2)
        replica.accept = False
        rejected = poller.poll_once()
        again = poller.poll_once()
    assert (rejected.outcome, again.outcome) == (Outcome.REJECTED, Outcome.REJECTED)
    assert "was not accepted" in rejected.detail
    assert len(replica.offered) == 2  # the same refused archive is not offered again
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == archive
    assert list((tmp_path / "cache" / BUNDLES_DIR).iterdir()) == [first.path]
    assert origin.requests[-1]["If-None-Match"] == accepted_etag  # still asking as the holder of the good one


def test_a_first_bundle_that_is_rejected_leaves_no_cache(origin: OriginServer, archive: bytes, tmp_path: Path) -> None:
    origin.publish(archive)
    with _poller(origin, tmp_path / "cache", Replica(accept=False), []) as poller:
        assert poller.poll_once().outcome == Outcome.REJECTED
    assert not (tmp_path / "cache" / ARCHIVE_NAME).exists()
    assert list((tmp_path / "cache" / BUNDLES_DIR).iterdir()) == []
    with _poller(origin, tmp_path / "cache", Replica(), []) as restarted:
        assert restarted.start_from_cache() is None


def test_an_archive_that_fails_verification_is_rejected(
    origin: OriginServer, archive: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    middle = len(archive) // 2
    origin.publish(archive[:middle] + bytes(40) + archive[middle + 40 :])  # damaged in transit or at rest
    replica = Replica()
    with caplog.at_level(logging.ERROR, "tailor.origin"), _poller(origin, tmp_path / "cache", replica, []) as poller:
        result = poller.poll_once()
    assert result.outcome == Outcome.REJECTED
    assert "failed verification" in result.detail
    assert replica.offered == []
    assert not (tmp_path / "cache" / ARCHIVE_NAME).exists()
    assert "no bundle is loaded yet" in caplog.text  # nothing was: "keeping the current bundle" misled


def test_a_replica_starts_from_the_last_good_archive_when_the_origin_is_down(
    origin: OriginServer, archive: bytes, bundle: Path, tmp_path: Path
) -> None:
    origin.publish(archive)
    with _poller(origin, tmp_path / "cache", Replica(), []) as poller:
        assert poller.poll_once().outcome == Outcome.APPLIED
    origin.stop()

    replica, sleeps = Replica(), list[float]()
    with _poller(origin, tmp_path / "cache", replica, sleeps, retries=2) as restarted:
        started = restarted.start_from_cache()
        assert started is not None
        assert load_bundle(started).revision == revision_of(bundle)
        assert replica.offered == [started]
        down = restarted.poll_once()
    assert (down.outcome, down.attempts) == (Outcome.FAILED, 3)
    assert "ConnectError" in down.detail
    assert len(sleeps) == 2
    assert replica.offered == [started]  # still serving the cached bundle


def test_a_restarted_replica_asks_with_the_cached_etag(origin: OriginServer, archive: bytes, tmp_path: Path) -> None:
    origin.publish(archive)
    with _poller(origin, tmp_path / "cache", Replica(), []) as poller:
        poller.poll_once()
    replica = Replica()
    with _poller(origin, tmp_path / "cache", replica, []) as restarted:
        started = restarted.start_from_cache()
        result = restarted.poll_once()
    assert (result.outcome, result.path) == (Outcome.UNCHANGED, started)
    assert origin.requests[-1]["If-None-Match"] == origin.etag
    assert len(replica.offered) == 1


def test_a_damaged_cache_is_not_started_from(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ARCHIVE_NAME).write_bytes(b"not an archive")
    replica = Replica()
    with caplog.at_level(logging.ERROR, "tailor.origin"), BundleOrigin("http://127.0.0.1:9/", cache, replica) as poller:
        assert poller.start_from_cache() is None
    assert replica.offered == []
    assert "unusable" in caplog.text


def test_two_503s_then_200_succeeds_within_the_retries(origin: OriginServer, archive: bytes, tmp_path: Path) -> None:
    origin.publish(archive)
    origin.fail_next = 2
    sleeps: list[float] = []
    with _poller(origin, tmp_path / "cache", Replica(), sleeps, retries=3) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.attempts) == (Outcome.APPLIED, 3)
    assert len(origin.requests) == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


def test_a_persistent_failure_stops_after_the_bound(origin: OriginServer, archive: bytes, tmp_path: Path) -> None:
    origin.publish(archive)
    origin.fail_always = True
    sleeps: list[float] = []
    with _poller(origin, tmp_path / "cache", Replica(), sleeps, retries=4) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.attempts) == (Outcome.FAILED, 5)
    assert "gave up after 5 attempts: HTTP 503" in result.detail
    assert len(origin.requests) == 5
    assert all(delay <= 4.0 for delay in sleeps)
    assert len(sleeps) == 4
    assert not (tmp_path / "cache" / ARCHIVE_NAME).exists()


def test_a_client_error_is_not_retried(origin: OriginServer, tmp_path: Path) -> None:
    origin.fail_always, origin.fail_status = True, 404
    sleeps: list[float] = []
    with _poller(origin, tmp_path / "cache", Replica(), sleeps) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.attempts, result.detail) == (Outcome.FAILED, 1, "HTTP 404")
    assert (len(origin.requests), sleeps) == (1, [])


def test_an_origin_without_etags_costs_a_download_but_no_reload(
    origin: OriginServer, archive: bytes, tmp_path: Path
) -> None:
    origin.publish(archive)
    origin.send_etag = False
    replica = Replica()
    with _poller(origin, tmp_path / "cache", replica, []) as poller:
        results = [poller.poll_once().outcome for _ in range(2)]
    assert results == [Outcome.APPLIED, Outcome.UNCHANGED]
    assert len(replica.offered) == 1
    assert all("If-None-Match" not in request for request in origin.requests)


def test_poll_intervals_are_jittered_deterministically_with_a_seeded_source(tmp_path: Path) -> None:
    def delays(seed: int) -> list[float]:
        with BundleOrigin("http://127.0.0.1:9/", tmp_path, Replica(), rng=random.Random(seed), interval_s=10) as p:
            return [p.next_delay() for _ in range(50)]

    assert delays(1) == delays(1) != delays(2)
    assert all(8.0 <= delay <= 12.0 for delay in delays(1))
    assert len(set(delays(1))) > 1


def test_the_loop_survives_a_failing_callback_and_stops_when_asked(
    origin: OriginServer, archive: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    origin.publish(archive)

    def explode(path: Path) -> bool:
        raise RuntimeError(f"cannot load {path}")

    stop = threading.Event()
    with (
        httpx.Client(timeout=5.0) as client,  # an injected client stays the caller's to close
        BundleOrigin(
            origin.url, tmp_path / "cache", explode, client=client, interval_s=0.01, rng=random.Random(3)
        ) as poller,
        caplog.at_level(logging.ERROR, "tailor.origin"),
    ):
        thread = threading.Thread(target=poller.run, args=(stop,))
        thread.start()
        try:
            while len(origin.requests) < 3 and thread.is_alive():
                stop.wait(0.01)
        finally:
            stop.set()
            thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(origin.requests) >= 3
    assert "on_bundle failed" in caplog.text
    assert not (tmp_path / "cache" / ARCHIVE_NAME).exists()


def test_worker_processes_of_one_replica_can_share_a_cache(
    origin: OriginServer, archive: bytes, archive_v2: bytes, tmp_path: Path
) -> None:
    origin.publish(archive)
    first, second = Replica(), Replica()
    with _poller(origin, tmp_path / "cache", first, []) as one, _poller(origin, tmp_path / "cache", second, []) as two:
        assert [one.poll_once().outcome, two.poll_once().outcome] == [Outcome.APPLIED, Outcome.APPLIED]
        origin.publish(archive_v2)
        assert [two.poll_once().outcome, one.poll_once().outcome] == [Outcome.APPLIED, Outcome.APPLIED]
    assert first.revisions == second.revisions
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == archive_v2
    assert len(list((tmp_path / "cache" / BUNDLES_DIR).iterdir())) == 1


def test_an_oversized_download_is_abandoned(
    origin: OriginServer, archive: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(origin_module, "MAX_ARCHIVE_BYTES", len(archive) - 1)
    origin.publish(archive)
    with _poller(origin, tmp_path / "cache", Replica(), []) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.attempts) == (Outcome.FAILED, 1)
    assert "larger than" in result.detail
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # the partial download is gone


def _no_space(real: Callable[..., object], spares: list[int]) -> Callable[..., object]:
    """``real``, but failing with ENOSPC until the disk has been 'mended' (``spares`` emptied by the test)."""

    def full(*args: object, **kwargs: object) -> object:
        if spares:
            raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/tailor/origin/x")
        return real(*args, **kwargs)

    return full


# Where the cache's disk can fill up: while the archive downloads, or while it is extracted.
DISK_FULL_AT: dict[str, tuple[str, Callable[..., object]]] = {
    "download": ("os.fdopen", os.fdopen),  # the poller writes the download through it
    "extract": ("service.bundle.archive._copy_out", archive_module._copy_out),
}


@pytest.mark.parametrize("where", sorted(DISK_FULL_AT))
def test_a_full_cache_disk_fails_the_poll_and_the_next_one_applies_once_mended(
    origin: OriginServer, archive: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The disk, not the archive: 'failed' (retried at the next poll), never 'rejected' (not tried again)."""
    target, real = DISK_FULL_AT[where]
    full = [1]
    monkeypatch.setattr(target, _no_space(real, full))
    origin.publish(archive)
    replica, sleeps = Replica(), list[float]()
    with _poller(origin, tmp_path / "cache", replica, sleeps) as poller:
        failed = poller.poll_once()
        full.clear()
        mended = poller.poll_once()
    assert (failed.outcome, failed.detail, failed.problems) == (
        Outcome.FAILED, "cannot write the bundle cache: No space left on device", ()
    )  # fmt: skip
    assert mended.outcome is Outcome.APPLIED
    assert replica.revisions == [mended.revision]
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".download-")] == []


class _WatchedLock:
    """The poller's lock, telling the test when a caller found it taken (so that no sleep guesses when)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.found_taken = threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        got = self.lock.acquire(blocking)
        if not got:
            self.found_taken.set()
        return got

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _two_polls_at_once(origin: OriginServer, poller: BundleOrigin) -> list[object]:
    """The timer's poll held at the origin, then a second caller's, once it has found the lock taken."""
    lock = _WatchedLock()
    poller._polling = lock  # type: ignore[assignment]
    origin.answering.clear()
    results: list[object] = []
    timer = threading.Thread(target=lambda: results.append(poller.poll_once()))
    timer.start()
    while not origin.requests:  # the timer's poll is at the origin, waiting for its answer
        time.sleep(0.01)
    admin = threading.Thread(target=lambda: results.append(poller.poll_once()))
    admin.start()
    assert lock.found_taken.wait(timeout=10)
    origin.answering.set()
    timer.join(timeout=30)
    admin.join(timeout=30)
    return results


def test_a_poll_asked_for_while_one_fails_gets_that_failure(
    origin: OriginServer, archive: bytes, tmp_path: Path
) -> None:
    """An admin reload during the timer's poll of a silent origin: one poll's attempts, not two polls' (76.8 s)."""
    origin.publish(archive)
    origin.fail_always = True
    with _poller(origin, tmp_path / "cache", Replica(), [], retries=2) as poller:
        timer, admin = _two_polls_at_once(origin, poller)
    assert timer is admin
    assert (timer.outcome, len(origin.requests)) == (Outcome.FAILED, 3)  # type: ignore[attr-defined]


def test_a_poll_asked_for_while_one_reaches_the_origin_asks_again(
    origin: OriginServer, archive: bytes, tmp_path: Path
) -> None:
    """What the poll under way fetched may predate what the caller just published: it asks again (a 304)."""
    origin.publish(archive)
    with _poller(origin, tmp_path / "cache", Replica(), []) as poller:
        timer, admin = _two_polls_at_once(origin, poller)
    assert [timer.outcome, admin.outcome] == [Outcome.APPLIED, Outcome.UNCHANGED]  # type: ignore[attr-defined]
    assert len(origin.requests) == 2


def test_a_bundle_applied_but_not_kept_in_a_full_cache_still_counts_as_applied(
    origin: OriginServer, archive: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store serves it already: 'failed' would make every poll fetch and compile it again."""
    origin.publish(archive)
    replica = Replica()
    with _poller(origin, tmp_path / "cache", replica, []) as poller:
        monkeypatch.setattr(poller, "_write_state", _no_space(lambda *_: None, [1]))
        applied = poller.poll_once()
        again = poller.poll_once()
    assert (applied.outcome, again.outcome) == (Outcome.APPLIED, Outcome.UNCHANGED)
    assert replica.revisions == [applied.revision]
