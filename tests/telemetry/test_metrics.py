"""Metrics counted off the request path: plain numbers first, Prometheus values at flush time.

The request path must not write the Prometheus values (file-backed under ``tailor serve``), and
what a flush folds in must be exactly what ``observe`` and ``inc`` would have recorded one by one.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from service.telemetry.metrics import POLL_OUTCOMES, REQUEST_BUCKETS, Metrics

DECIDED = ("home_hero", "hero_vip", "targeting_match")
PROPERTY = settings(max_examples=60, deadline=None, database=None)
ENDPOINTS = (("/v1/decide", "POST", "2xx"), ("/v1/decide", "POST", "4xx"), ("/healthz", "GET", "2xx"))
# Values on every bucket bound (a value on a bound belongs to it), between them, below and above all.
LATENCIES = st.one_of(
    st.sampled_from((0.0, *REQUEST_BUCKETS, 2.5)),
    st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
)


def _decided(metrics: Metrics, labels: tuple[str, str, str] = DECIDED) -> float | None:
    names = {"placement": labels[0], "variant": labels[1], "reason": labels[2]}
    return metrics.registry.get_sample_value("tailor_decisions_total", names)


def _histogram_samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        if metric.name == name
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_counting_a_decision_leaves_the_prometheus_value_alone_until_a_flush() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.count_decisions([DECIDED])
        metrics.observe_request("/v1/decide", "POST", "2xx", 0.002)
    assert _decided(metrics) is None  # nothing written on the request path
    metrics.flush()
    assert _decided(metrics) == 3.0
    metrics.flush()  # a second flush adds nothing
    assert _decided(metrics) == 3.0
    count = metrics.registry.get_sample_value(
        "tailor_http_request_duration_seconds_count", {"endpoint": "/v1/decide", "method": "POST", "status": "2xx"}
    )
    assert count == 3.0


@PROPERTY
@given(
    observations=st.lists(st.tuples(st.sampled_from(ENDPOINTS), LATENCIES), max_size=60),
    flush_after=st.sets(st.integers(min_value=0, max_value=60)),
)
def test_flushed_latencies_equal_observing_each_one(
    observations: list[tuple[tuple[str, str, str], float]], flush_after: set[int]
) -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    direct = Histogram(
        "tailor_http_request_duration_seconds", "reference", ["endpoint", "method", "status"],
        buckets=REQUEST_BUCKETS, registry=reference,
    )  # fmt: skip
    for index, (labels, seconds) in enumerate(observations):
        metrics.observe_request(*labels, seconds)
        direct.labels(*labels).observe(seconds)
        if index in flush_after:
            metrics.flush()
    metrics.flush()
    got = _histogram_samples(metrics.registry, "tailor_http_request_duration_seconds")
    want = _histogram_samples(reference, "tailor_http_request_duration_seconds")
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key[0].endswith("_sum"):  # added in another order: the last bits may differ
            assert abs(got[key] - value) <= 1e-9 * max(1.0, value), key
        else:
            assert got[key] == value, key


def test_counts_stay_exact_while_threads_count_and_flushes_run() -> None:
    metrics = Metrics()
    threads, rounds = 4, 2000
    other = ("promo_banner", "banner_newsletter", "default")
    done = threading.Event()

    def count() -> None:
        for _ in range(rounds):
            metrics.count_decisions([DECIDED, other])
            metrics.observe_render("hero_vip", "rendered", hit=False, seconds=0.00003)

    def flush() -> None:
        while not done.is_set():
            metrics.flush()

    flusher = threading.Thread(target=flush)
    flusher.start()
    workers = [threading.Thread(target=count) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    done.set()
    flusher.join(timeout=60)
    metrics.flush()
    assert _decided(metrics) == _decided(metrics, other) == threads * rounds
    rendered = {"variant": "hero_vip", "status": "rendered"}
    assert metrics.registry.get_sample_value("tailor_rendered_blocks_total", rendered) == threads * rounds
    assert metrics.registry.get_sample_value("tailor_render_seconds_count", {"cache": "miss"}) == threads * rounds


def test_a_scrape_reports_what_was_counted_before_it() -> None:
    metrics = Metrics()
    metrics.count_decisions([DECIDED] * 5)
    text = metrics.exposition().decode()
    assert 'tailor_decisions_total{placement="home_hero",reason="targeting_match",variant="hero_vip"} 5.0' in text
    assert 'tailor_render_seconds_count{cache="hit"} 0.0' in text  # both cache series show from the start


# (outcomes of the polls in order, then the success time and each outcome's count after them)
POLLS = [
    ([], 0.0, {}),
    (["unchanged"], 1.0, {"unchanged": 1}),
    (["applied", "failed", "failed"], 1.0, {"applied": 1, "failed": 2}),
    (["applied", "rejected"], 1.0, {"applied": 1, "rejected": 1}),
    (["failed", "unchanged", "failed", "unchanged", "failed"], 4.0, {"failed": 3, "unchanged": 2}),
]


@pytest.mark.parametrize(("outcomes", "success", "counts"), POLLS)
def test_the_origin_series_count_every_poll_and_keep_the_last_success(
    outcomes: list[str], success: float, counts: dict[str, int]
) -> None:
    metrics = Metrics()
    metrics.watch_origin()
    for at, outcome in enumerate(outcomes, start=1):
        metrics.origin_polled(outcome, float(at))
    value = metrics.registry.get_sample_value
    assert value("tailor_origin_last_success_timestamp_seconds") == success
    seen = {o: value("tailor_origin_polls_total", {"outcome": o}) for o in POLL_OUTCOMES}
    assert seen == {o: float(counts.get(o, 0)) for o in POLL_OUTCOMES}


def test_a_server_without_an_origin_has_no_origin_series() -> None:
    text = Metrics().exposition().decode()
    assert "tailor_origin_polls_total{" not in text
    assert "tailor_origin_last_success_timestamp_seconds " not in text
