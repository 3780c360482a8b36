"""Prometheus metrics of one server, across its worker processes.

Under ``tailor serve`` every worker writes its samples to files in a folder shared by
the workers (prometheus_client's multiprocess mode, turned on by PROMETHEUS_MULTIPROC_DIR
before this module is imported), so a scrape that lands on any worker reports them all.
In a single process (tests, ``create_app`` used directly) samples stay in memory.

The request path does not touch those values. A file-backed increment takes a lock, checks
the process id and packs a float into the memory-mapped file; a request made one per placement
decided and per block rendered, and two per model score and for its latency (22 for 20 flags).
Instead each count goes into a plain integer behind one lock, and ``flush()`` folds what
gathered into the Prometheus values: on every scrape (so the scraped worker is exact) and once
a FLUSH_INTERVAL_S in every worker from one daemon thread (so the others are at most that late).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from service.core.models import ModelCard, Scorer
from service.telemetry.log import DecisionLog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
EVENT_OUTCOMES = ("submitted", "written", "dropped", "lost")
POLL_OUTCOMES = ("applied", "unchanged", "rejected", "failed")  # service.bundle.origin.Outcome
# A poll that leaves the worker serving the origin's bundle: a new one applied, or the same one still there.
POLL_SUCCESSES = frozenset({"applied", "unchanged"})
# A decision takes tens of microseconds and a request under a few milliseconds: buckets start low.
REQUEST_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MODEL_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005)
# A cached block takes microseconds, a Jinja render tens of microseconds, a large email block a millisecond.
RENDER_BUCKETS = (0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.02)
# Prometheus scrapes every 15 s or more: a second late is invisible there, and a flush a second is
# a few dozen file writes however busy the worker is.
FLUSH_INTERVAL_S = 1.0

Labels = tuple[str, ...]


class _Counts:
    """Increments of one labelled Counter since the last flush."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.pending: dict[Labels, int] = {}
        self.children: dict[Labels, Any] = {}

    def take(self) -> dict[Labels, int]:
        taken, self.pending = self.pending, {}
        return taken

    def fold(self, taken: dict[Labels, int]) -> None:
        for labels, amount in taken.items():
            child = self.children.get(labels)
            if child is None:  # labels() validates and locks: look each label set up once
                child = self.children[labels] = self.counter.labels(*labels)
            child.inc(amount)


class _Observations:
    """Observations of one labelled Histogram since the last flush: a count per bucket and the sum."""

    def __init__(self, histogram: Histogram, buckets: Sequence[float]) -> None:
        self.histogram = histogram
        self.bounds = (*buckets, float("inf"))
        self.pending: dict[Labels, list[float]] = {}  # per label set: a count per bound, then the sum
        self.children: dict[Labels, Any] = {}

    def add(self, labels: Labels, seconds: float) -> None:
        """Count one observation; the caller holds the lock. A value on a bound goes into that bound's bucket."""
        slot = self.pending.get(labels)
        if slot is None:
            slot = self.pending[labels] = [0] * (len(self.bounds) + 1)
        slot[bisect_left(self.bounds, seconds)] += 1
        slot[-1] += seconds

    def take(self) -> dict[Labels, list[float]]:
        taken, self.pending = self.pending, {}
        return taken

    def child(self, labels: Labels) -> Any:
        """The Histogram's child for ``labels``; making it shows the label set (with zeros) in /metrics."""
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = self.histogram.labels(*labels)
        return child

    def fold(self, taken: dict[Labels, list[float]]) -> None:
        for labels, slot in taken.items():
            _add_to_histogram(self.child(labels), slot)


def _add_to_histogram(child: Any, slot: list[float]) -> None:
    """Add bucket counts and a sum to a Histogram child in one write each.

    prometheus_client only offers ``observe(value)``, one value at a time; its child keeps a
    value per bucket (``_buckets``, not cumulative) and ``_sum``, which ``observe`` increments.
    tests/telemetry/test_metrics.py checks the result against ``observe`` for every bucket.
    """
    for index, count in enumerate(slot[:-1]):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(slot[-1])


class Metrics:
    """Every metric the service exports; one instance per app."""

    def __init__(self) -> None:
        # prometheus_client picks in-memory or file-backed values when it is first imported; a worker
        # forked from a process that imported it before PROMETHEUS_MULTIPROC_DIR was set must pick again.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "tailor_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint, method and status class.",
            ["endpoint", "method", "status"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "tailor_decisions", "Placement decisions by placement, variant and reason.",
            ["placement", "variant", "reason"], registry=r,
        )  # fmt: skip
        self.model_seconds = Histogram(
            "tailor_model_seconds", "Time to score one visitor, by model.", ["model"], buckets=MODEL_BUCKETS, registry=r
        )
        self.reloads = Counter("tailor_bundle_reloads", "Bundle loads by result (ok, error).", ["result"], registry=r)
        self.bundle = Gauge(
            "tailor_bundle_info", "1 for the bundle revision a worker serves.", ["revision"],
            multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.outcomes = Counter(
            "tailor_outcome_events",
            "Outcome events of POST /v1/events by result: accepted, refused (the log could not take them), "
            "no_consent (dropped: no analytics consent).",
            ["result"], registry=r,
        )  # fmt: skip
        self.events = Counter(
            "tailor_decision_events",
            "Decision events by outcome: submitted, written, dropped (queue full), lost (the sink failed).",
            ["outcome"],
            registry=r,
        )
        self.log_healthy = Gauge(
            "tailor_decision_log_healthy",
            "1 while every worker's decision log can write, 0 while one cannot (events are being lost).",
            ["log"], multiprocess_mode="livemin", registry=r,
        )  # fmt: skip
        self.log_errors = Counter(
            "tailor_decision_log_errors",
            "Failed writes of the decision log's sink (file or collector).",
            ["log"],
            registry=r,
        )
        self.render_seconds = Histogram(
            "tailor_render_seconds",
            "Time to render one block, by whether it came from the render cache (hit, miss).",
            ["cache"],
            buckets=RENDER_BUCKETS,
            registry=r,
        )
        self.renders = Counter(
            "tailor_rendered_blocks", "Rendered blocks by variant and status (rendered, fallback).",
            ["variant", "status"], registry=r,
        )  # fmt: skip
        self._lock = threading.Lock()  # the request path's: held for a few dictionary updates
        self._flushing = threading.Lock()  # one flush at a time, so a scrape waits for a timer's flush to land
        self._decided = _Counts(self.decisions)
        self._rendered = _Counts(self.renders)
        self._request_time = _Observations(self.requests, REQUEST_BUCKETS)
        self._render_time = _Observations(self.render_seconds, RENDER_BUCKETS)
        self._model_time = _Observations(self.model_seconds, MODEL_BUCKETS)
        for cache in (_HIT, _MISS):  # both show from the start, as the request and model series do once seen
            self._render_time.child(cache)
        self._revision: str | None = None
        self._decision_log: DecisionLog | None = None
        self._seen = dict.fromkeys(EVENT_OUTCOMES, 0)
        _flusher.register(self)
        self._seen_errors = 0
        self._seen_healthy: bool | None = None

    def serving(self, revision: str) -> None:
        """Record the revision this worker now serves."""
        if self._revision == revision:
            return
        if self._revision is not None:
            self.bundle.labels(self._revision).set(0)
        self.bundle.labels(revision).set(1)
        self._revision = revision

    def watch_decision_log(self, decision_log: DecisionLog) -> None:
        self._decision_log = decision_log
        # The writer folds too: a log's health must show before the next timed flush.
        decision_log.on_change = self._log_changed
        self._log_changed()

    def _log_changed(self) -> None:
        with self._flushing:  # the log's writer thread and the flusher both fold
            self._fold_decision_log()

    def watch_origin(self) -> None:
        """Add the origin's series (a server on a folder has none): every outcome at 0, and no success yet."""
        self.origin_polls = Counter(
            "tailor_origin_polls",
            "Polls of TAILOR_BUNDLE_URL by outcome: applied (a new bundle), unchanged, rejected (it failed "
            "verification or does not compile), failed (no answer, or an error after the retries).",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.origin_success = Gauge(
            "tailor_origin_last_success_timestamp_seconds",
            "Unix time of the last poll that found the origin's bundle served (applied or unchanged): the "
            "stalest worker's, 0 for a worker that has had none.",
            multiprocess_mode="livemin", registry=self.registry,
        )  # fmt: skip
        for outcome in POLL_OUTCOMES:
            self.origin_polls.labels(outcome)
        self.origin_success.set(0)

    def origin_polled(self, outcome: str, at: float) -> None:
        """One poll of the origin, at Unix time ``at`` (after ``watch_origin``). Fits ``bundle.source.OnPoll``."""
        self.origin_polls.labels(outcome).inc()
        if outcome in POLL_SUCCESSES:
            self.origin_success.set(at)

    def count_decisions(self, decided: Sequence[tuple[str, str, str]]) -> None:
        with self._lock:
            pending = self._decided.pending
            for labels in decided:
                pending[labels] = pending.get(labels, 0) + 1

    def observe_render(self, variant: str, status: str, hit: bool, seconds: float) -> None:
        """One rendered block: its time, by cache hit or miss, and its status. Fits ``render.page.Observer``."""
        with self._lock:
            self._render_time.add(_HIT if hit else _MISS, seconds)
            pending = self._rendered.pending
            key = (variant, status)
            pending[key] = pending.get(key, 0) + 1

    def observe_request(self, endpoint: str, method: str, status_class: str, seconds: float) -> None:
        with self._lock:
            self._request_time.add((endpoint, method, status_class), seconds)

    def observe_model(self, model: str, seconds: float) -> None:
        with self._lock:
            self._model_time.add((model,), seconds)

    def flush(self) -> None:
        """Fold what the request path counted since the last flush into the Prometheus values."""
        with self._flushing:
            counts, observations = (
                (self._decided, self._rendered),
                (self._request_time, self._render_time, self._model_time),
            )
            with self._lock:
                counted = [(tally, tally.take()) for tally in counts]
                observed = [(tally, tally.take()) for tally in observations]
            for count, taken in counted:
                count.fold(taken)
            for observation, seen in observed:
                observation.fold(seen)
            self._fold_decision_log()

    def _fold_decision_log(self) -> None:
        decision_log = self._decision_log
        if decision_log is None:
            return
        for outcome in EVENT_OUTCOMES:
            now = getattr(decision_log, outcome)
            if now != self._seen[outcome]:
                self.events.labels(outcome).inc(now - self._seen[outcome])
                self._seen[outcome] = now
        if decision_log.sink_errors != self._seen_errors:
            self.log_errors.labels("decisions").inc(decision_log.sink_errors - self._seen_errors)
            self._seen_errors = decision_log.sink_errors
        healthy = decision_log.healthy
        if healthy != self._seen_healthy:
            self.log_healthy.labels("decisions").set(1 if healthy else 0)
            self._seen_healthy = healthy

    def timed_scorer(self, open_model: Callable[[ModelCard, bytes], Scorer]) -> Callable[[ModelCard, bytes], Scorer]:
        """Wrap a scorer factory so that every score is timed into ``tailor_model_seconds``."""

        def open_timed(card: ModelCard, model: bytes) -> Scorer:
            scorer = _TimedScorer(open_model(card, model), card.name, self.observe_model)
            with self._flushing:  # flush() reads the children from another thread
                self._model_time.child((card.name,))
            return scorer

        return open_timed

    def exposition(self) -> bytes:
        self.flush()
        folder = os.environ.get(MULTIPROCESS_ENV)
        if not folder:
            return generate_latest(self.registry)
        forget_dead_workers(folder)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def forget_dead_workers(folder: str) -> None:
    """Drop the live gauges of workers that are gone (killed, or ended by a restart).

    A worker's ``livemin``/``livemax`` gauges stay in its file after it dies, so a dead worker's
    last value would count for good: its revision in ``tailor_bundle_info``, its last good poll in
    ``tailor_origin_last_success_timestamp_seconds``. prometheus_client leaves the clean-up to the
    server, and granian runs none of ours when it respawns a worker, so each scrape does it.
    Counters and histograms keep a dead worker's counts: they happened.
    """
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # a scrape on another worker removed it first
                mark_process_dead(int(pid), folder)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal is sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and none of ours
        return True
    return True


class _TimedScorer:
    def __init__(self, scorer: Scorer, name: str, observe: Callable[[str, float], None]) -> None:
        self._score = scorer.score
        self._name = name
        self._observe = observe

    def score(self, row: Sequence[float]) -> str | float:
        start = perf_counter()
        try:
            return self._score(row)
        finally:
            self._observe(self._name, perf_counter() - start)


_HIT, _MISS = ("hit",), ("miss",)


class _Flusher:
    """One daemon thread a process that flushes every live Metrics once a FLUSH_INTERVAL_S.

    It holds the instances weakly (an app that is gone stops being flushed), starts with the
    first one, and starts again in a forked child, which keeps none of its parent's instances:
    their counts are the parent's to report.
    """

    def __init__(self) -> None:
        self.live: weakref.WeakSet[Metrics] = weakref.WeakSet()
        self.thread: threading.Thread | None = None
        self.guard = threading.Lock()

    def register(self, metrics: Metrics) -> None:
        with self.guard:
            self.live.add(metrics)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="tailor-metrics-flush", daemon=True)
                self.thread.start()

    def flush_all(self) -> None:
        for metrics in list(self.live):
            metrics.flush()

    def forget(self) -> None:
        """In a forked child: the parent's thread and instances did not come along."""
        self.live = weakref.WeakSet()
        self.thread = None
        self.guard = threading.Lock()

    def _run(self) -> None:
        stop = threading.Event()  # never set: the thread ends with the process
        while not stop.wait(FLUSH_INTERVAL_S):
            self.flush_all()


_flusher = _Flusher()
os.register_at_fork(after_in_child=_flusher.forget)
atexit.register(_flusher.flush_all)  # a worker that stops cleanly reports its last second too
