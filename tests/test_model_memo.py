"""Model scores are remembered per feature row, and models read the request time to the hour (docs/adr/0013).

The unit tests run ``_memoized`` over a counting stand-in for a scorer; the last ones run the real
ONNX models of the example bundle over the page-view mix of the load tests.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.pageview_mix import page_views
from service.bundle.loader import load_bundle
from service.core.decide import DecisionRequest, decide
from service.core.models import MODEL_CLOCK_SECONDS, FeatureSource, FeatureSpec, _memoized, features_for
from service.segments.onnx import OnnxScorer

ROOT = Path(__file__).resolve().parents[1]
HOUR = datetime(2026, 11, 22, 12, tzinfo=UTC)


class _Counting:
    """A scorer whose score is a known function of the row, counting its calls."""

    def __init__(self, pause: float = 0.0) -> None:
        self.calls = 0
        self.pause = pause

    def score(self, row: Sequence[float]) -> float:  # a scorer's signature: any sequence of features
        self.calls += 1
        if self.pause:
            time.sleep(random.uniform(0, self.pause))  # widen the window between lookup and store
        return sum(row) * 2.0 + len(row)


rows = st.lists(st.tuples(st.sampled_from([0.0, 1.5, 3.0]), st.sampled_from([2.0, 7.25])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(min_value=1, max_value=8))
def test_a_remembered_score_is_the_scorer_s_and_each_row_runs_once_while_held(
    seen: list[tuple[float, float]], size: int
) -> None:
    scorer = _Counting()
    score = _memoized(scorer.score, size)
    assert [score(row) for row in seen] == [_Counting().score(row) for row in seen]
    if len(set(seen)) <= size:  # everything fits: one run per distinct row
        assert scorer.calls == len(set(seen))


def test_the_memo_keeps_the_last_rows_only() -> None:
    scorer = _Counting()
    score = _memoized(scorer.score, 3)
    for row in [(1.0,), (2.0,), (3.0,), (4.0,), (1.0,)]:  # (1.0,) left when (4.0,) came
        score(row)
    assert scorer.calls == 5
    score((4.0,))
    assert scorer.calls == 5


def test_no_rows_means_no_memo() -> None:
    scorer = _Counting()
    score = _memoized(scorer.score, 0)
    score((1.0,))
    score((1.0,))
    assert scorer.calls == 2


def test_threads_scoring_at_once_get_the_right_scores() -> None:
    """Render batches decide in a worker thread while the loop decides page views."""
    scorer = _Counting(pause=0.0005)
    score = _memoized(scorer.score, 4)  # smaller than the rows: evictions race with lookups
    pool = [(float(i), 1.0) for i in range(10)]
    wrong: list[tuple[float, ...]] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            row = rng.choice(pool)
            if score(row) != _Counting().score(row):
                wrong.append(row)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not wrong
    assert not any(thread.is_alive() for thread in threads)


_SINCE = [FeatureSpec(name="r", unit="days", description="d", source=FeatureSource(days_since="at"), missing=0.0)]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3_599_999), st.integers(0, 400_000))
def test_models_read_the_time_to_the_hour(ms_into_the_hour: int, seconds_before: int) -> None:
    into_the_hour = ms_into_the_hour / 1000  # whole milliseconds: epoch floats have no finer steps to spare
    at = (HOUR - timedelta(seconds=seconds_before)).isoformat()
    start = features_for(_SINCE, {"at": at}, HOUR.timestamp())
    assert features_for(_SINCE, {"at": at}, HOUR.timestamp() + into_the_hour) == start
    # an hour's start is read as it is: training's midnights too
    assert start == [pytest.approx(seconds_before / 86_400, abs=1e-12)]
    later = features_for(_SINCE, {"at": at}, HOUR.timestamp() + MODEL_CLOCK_SECONDS)
    assert later[0] - start[0] == pytest.approx(MODEL_CLOCK_SECONDS / 86_400, abs=1e-12)


def _mix_requests(count: int) -> list[DecisionRequest]:
    requests = []
    for view in page_views(count, 2026, HOUR):
        visitor = view.body["visitor"]
        requests.append(
            DecisionRequest(
                visitor.get("id"), visitor.get("attributes", {}), HOUR + timedelta(minutes=7), view.body["context"],
                personalization=visitor.get("consent", {}).get("personalization", False), explain=True,
            )
        )  # fmt: skip
    return requests


def test_remembered_scores_are_the_real_models_scores() -> None:
    """The page-view mix twice through one load (the second pass from the memo), each score checked
    against a session run of its own."""
    bundle = load_bundle(ROOT)
    direct = {name: OnnxScorer(m.card, ROOT / "models" / m.card.file) for name, m in bundle.models.items()}
    requests = _mix_requests(300)
    first = [decide(bundle, request) for request in requests]
    second = [decide(bundle, request) for request in requests]
    assert second == first
    checked = 0
    for request, decision in zip(requests, second, strict=True):
        for name, value in (decision.scores or {}).items():
            row = features_for(bundle.models[name].card.inputs, request.attributes, request.now.timestamp())
            assert value == direct[name].score(row), (name, request.attributes)
            checked += 1
    assert checked > 50  # the mix's buyers ask for every model
