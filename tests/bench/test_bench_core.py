"""Benchmarks of the compiled decision core (pytest-benchmark).

Run them with ``make bench``, or::

    .venv/bin/pytest tests/bench --benchmark-enable --benchmark-only \
        --benchmark-columns=min,median,mean,ops,rounds -p no:cacheprovider

In a normal test run (``--benchmark-disable`` in pyproject.toml) each benchmark runs
its function once, so every test also checks what the function returns. No test
asserts a time: the machine is shared and noisy. Read min and median, and compare
``decide`` with the hand-written lower bound of the same run rather than across runs.
The figures and how to read them are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.decide import Decision, DecisionRequest, decide
from tests.bench.workload import COUNTRIES, FLAGS, FLAGS20, lower_bound

ROOT = Path(__file__).parents[2]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # inside hero_layout_test's run, 2 days after the example cart idled
VISITORS = 1000

FLAGS_PER_COUNTRY = {c: sum(1 for _, country, _ in FLAGS if country == c) for c in COUNTRIES}  # 7, 7, 6


def variants(decision: Decision) -> dict[str, str | None]:
    return {name: placed.variant for name, placed in decision.placements.items()}


@pytest.fixture(scope="module")
def flags20() -> Bundle:
    return load_bundle(FLAGS20)


@pytest.fixture(scope="module")
def example() -> Bundle:
    return load_bundle(ROOT)


@pytest.fixture(scope="module")
def requests() -> list[DecisionRequest]:
    """1000 distinct visitors, countries cycling US, DE, FR: each decision hashes new text."""
    return [
        DecisionRequest(f"visitor-{i}", {"country": COUNTRIES[i % 3]}, NOW, personalization=True)
        for i in range(VISITORS)
    ]


# -- the 20-flag workload ------------------------------------------------------------------


def test_flags20_bundle_compiles_as_written(flags20: Bundle) -> None:
    assert list(flags20.placements) == [name for name, _, _ in FLAGS]
    assert len(flags20.experiments) == 20
    assert flags20.holdout is None
    assert flags20.warnings == ()
    experiment = flags20.experiments["exp_07"]
    assert experiment.bounds == (5_000, 10_000)
    assert [arm.variant for arm in experiment.arms] == ["flag_on", "flag_off"]


def test_decide_equals_the_lower_bound_for_every_visitor(flags20: Bundle, requests: list[DecisionRequest]) -> None:
    matched = on = 0
    for request in requests:
        assert request.visitor_id is not None
        decision = decide(flags20, request)
        assert variants(decision) == lower_bound(request.visitor_id, request.attributes)
        reasons = [placed.reason for placed in decision.placements.values()]
        assert set(reasons) <= {"experiment", "default"}
        assert reasons.count("experiment") == FLAGS_PER_COUNTRY[request.attributes["country"]]
        matched += reasons.count("experiment")
        on += sum(placed.variant == "flag_on" for placed in decision.placements.values())
    assert abs(matched / (20 * VISITORS) - 1 / 3) < 0.01  # a third of the flags target a visitor
    assert 0.47 < on / matched < 0.53  # 50/50 arms: ±3.7 standard deviations over ~6 700 draws


@pytest.mark.benchmark(group="flags20")
def test_bench_decide_flags20(benchmark: Any, flags20: Bundle, requests: list[DecisionRequest]) -> None:
    """One visitor, 20 flags; each call takes the next of 1000 visitors."""
    pinned = decide(flags20, requests[0])  # visitor-0, US: flags 00, 03, ..., 18; buckets pinned by HASH_VERSION 1
    assert [name for name, placed in pinned.placements.items() if placed.reason == "experiment"] == [
        "flag_00", "flag_03", "flag_06", "flag_09", "flag_12", "flag_15", "flag_18",
    ]  # fmt: skip
    assert [name for name, variant in variants(pinned).items() if variant == "flag_on"] == ["flag_03", "flag_06"]
    assert pinned.placements["flag_06"].experiment is not None
    assert pinned.placements["flag_06"].experiment.bucket == 123

    cycle = itertools.cycle(requests)
    decision = benchmark(lambda: decide(flags20, next(cycle)))

    assert isinstance(decision, Decision)
    assert len(decision.placements) == 20
    assert set(variants(decision).values()) <= {"flag_on", "flag_off"}


@pytest.mark.benchmark(group="flags20")
def test_bench_lower_bound_flags20(benchmark: Any, requests: list[DecisionRequest]) -> None:
    """The hand-written floor for the same workload and the same 1000 visitors, for ratios from one run."""
    pairs = [(r.visitor_id or "", r.attributes) for r in requests]
    assert [name for name, variant in lower_bound(*pairs[1]).items() if variant == "flag_on"] == [
        "flag_01", "flag_13", "flag_16", "flag_19",
    ]  # fmt: skip

    cycle = itertools.cycle(pairs)
    answer = benchmark(lambda: lower_bound(*next(cycle)))

    assert len(answer) == 20
    assert set(answer.values()) <= {"flag_on", "flag_off"}


# -- the example bundle at the repository root ------------------------------------------


VIP = DecisionRequest(
    "vip-1",  # outside the 5 % holdout (bucket 2672 of holdout-2026 ≥ 500)
    {
        "country": "US",
        "orders_12m": 8,
        "spend_12m": 900.0,
        "orders_total": 30,
        "last_purchase_at": "2026-11-10T10:00:00Z",
        "sessions_7d": 4,
    },
    NOW,
    personalization=True,
)


def _cart_abandoner() -> DecisionRequest:
    visitor = json.loads((ROOT / "examples" / "visitors" / "cart-abandoner.json").read_text())
    return DecisionRequest(
        visitor["id"], visitor["attributes"], NOW, personalization=visitor["consent"]["personalization"]
    )


@pytest.mark.benchmark(group="example bundle")
def test_bench_decide_example_vip(benchmark: Any, example: Bundle) -> None:
    decision = benchmark(decide, example, VIP)

    assert decision.segments == ["vip", "repeat_visitor"]
    assert decision.placements["home_hero"].variant == "hero_vip"
    assert decision.placements["home_hero"].reason == "targeting_match"
    assert decision.placements["promo_banner"].reason == "default"  # loyal_browser excludes VIPs


@pytest.mark.benchmark(group="example bundle")
def test_bench_decide_example_cart_abandoner(benchmark: Any, example: Bundle) -> None:
    request = _cart_abandoner()
    decision = benchmark(decide, example, request)

    assert decision.segments == ["cart_abandoner", "eu_visitor", "electronics_fan"]
    assert decision.placements["promo_banner"].variant == "banner_free_shipping"
    assert decision.placements["promo_banner"].rule == "cart_reminder"
    assert decision.placements["home_hero"].variant == "hero_eu"


@pytest.mark.benchmark(group="compile")
def test_bench_compile_example_bundle(benchmark: Any) -> None:
    """Read, validate and compile every file of the example bundle (what a reload costs)."""
    bundle = benchmark(load_bundle, ROOT)

    assert set(bundle.placements) == {"home_hero", "promo_banner", "recommended_products", "cart_email"}
    assert set(bundle.experiments) == {"hero_layout_test", "hero_copy_test", "cart_email_test"}
    assert len(bundle.segments) == 10
    assert set(bundle.models) == {"rfm", "churn", "value", "purchases"}
    assert bundle.holdout is not None
    assert bundle.holdout.buckets == 500
