"""Prometheus metrics of one server, across its worker processes.

Under ``tailor serve`` every worker writes its samples to files in a folder shared by
the workers (prometheus_client's multiprocess mode, turned on by PROMETHEUS_MULTIPROC_DIR
before this module is imported), so a scrape that lands on any worker reports them all.
In a single process (tests, ``create_app`` used directly) samples stay in memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from service.core.models import ModelCard, Scorer
from service.telemetry.log import DecisionLog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
EVENT_OUTCOMES = ("submitted", "written", "dropped", "lost")
# A decision takes tens of microseconds and a request under a few milliseconds: buckets start low.
REQUEST_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MODEL_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005)
# A cached block takes microseconds, a Jinja render tens of microseconds, a large email block a millisecond.
RENDER_BUCKETS = (0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.02)


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
        self._render_children: dict[tuple[str, str], Any] = {}
        self._render_time = {True: self.render_seconds.labels("hit"), False: self.render_seconds.labels("miss")}
        self._revision: str | None = None
        self._decision_children: dict[tuple[str, str, str], Any] = {}
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self._decision_log: DecisionLog | None = None
        self._seen = dict.fromkeys(EVENT_OUTCOMES, 0)
        self._seen_errors = 0
        self._seen_healthy: bool | None = None
        self._sync_lock = threading.Lock()

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
        # The writer syncs too: a worker without requests must still report its log's health.
        decision_log.on_change = self.sync
        self.sync()

    def sync(self) -> None:
        """Carry the decision log's counters into the metrics; cheap enough to do after every request."""
        decision_log = self._decision_log
        if decision_log is None:
            return
        with self._sync_lock:  # requests and the log's writer thread both call this
            self._sync(decision_log)

    def _sync(self, decision_log: DecisionLog) -> None:
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

    def count_decisions(self, decided: Sequence[tuple[str, str, str]]) -> None:
        children = self._decision_children
        for labels in decided:
            child = children.get(labels)
            if child is None:  # labels() validates and locks: look each label set up once
                child = children[labels] = self.decisions.labels(*labels)
            child.inc()

    def observe_render(self, variant: str, status: str, hit: bool, seconds: float) -> None:
        """One rendered block: its time, by cache hit or miss, and its status. Fits ``render.page.Observer``."""
        self._render_time[hit].observe(seconds)
        key = (variant, status)
        child = self._render_children.get(key)
        if child is None:
            child = self._render_children[key] = self.renders.labels(*key)
        child.inc()

    def observe_request(self, endpoint: str, method: str, status_class: str, seconds: float) -> None:
        key = (endpoint, method, status_class)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.observe(seconds)

    def timed_scorer(self, open_model: Callable[[ModelCard, Path], Scorer]) -> Callable[[ModelCard, Path], Scorer]:
        """Wrap a scorer factory so that every score is timed into ``tailor_model_seconds``."""

        def open_timed(card: ModelCard, path: Path) -> Scorer:
            return _TimedScorer(open_model(card, path), self.model_seconds.labels(card.name))

        return open_timed

    def exposition(self) -> bytes:
        self.sync()
        folder = os.environ.get(MULTIPROCESS_ENV)
        if not folder:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


class _TimedScorer:
    def __init__(self, scorer: Scorer, histogram: Histogram) -> None:
        self._score = scorer.score
        self._observe = histogram.observe

    def score(self, row: Sequence[float]) -> str | float:
        start = perf_counter()
        try:
            return self._score(row)
        finally:
            self._observe(perf_counter() - start)
