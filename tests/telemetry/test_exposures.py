"""Exposure de-duplication: the first (visitor, experiment, arm) per process is the exposure."""

from __future__ import annotations

import threading

import pytest

from service.telemetry import DecisionEvent, ExposureFilter
from tests.telemetry.conftest import NOW, decisions


def event(visitor: str | None, experiment: str | None, arm: str | None, exposure: bool = True) -> DecisionEvent:
    return DecisionEvent(
        decision_id="d",
        time=NOW,
        revision="r",
        placement="home_hero",
        variant="v",
        reason="experiment" if exposure else "default",
        experiment=experiment,
        arm=arm,
        visitor=visitor,
        exposure=exposure,
    )


# events in arrival order → their exposure flags after the filter
SEQUENCES = [
    pytest.param([("a", "x", "bold"), ("a", "x", "bold"), ("a", "x", "bold")], [True, False, False], id="repeats"),
    pytest.param([("a", "x", "bold"), ("b", "x", "bold")], [True, True], id="another visitor"),
    pytest.param([("a", "x", "bold"), ("a", "y", "bold")], [True, True], id="another experiment"),
    pytest.param([("a", "x", "bold"), ("a", "x", "control")], [True, True], id="moved to another arm"),
    pytest.param([("a", "x", "bold"), ("a", "x", "control"), ("a", "x", "bold")], [True, True, False], id="and back"),
]


@pytest.mark.parametrize(("keys", "expected"), SEQUENCES)
def test_only_the_first_exposure_counts(keys: list[tuple[str, str, str]], expected: list[bool]) -> None:
    seen = ExposureFilter()
    assert [e.exposure for e in decisions(seen.apply(event(*key) for key in keys))] == expected


def test_repeats_are_still_logged_as_decisions() -> None:
    first, repeat = ExposureFilter().apply([event("a", "x", "bold"), event("a", "x", "bold")])
    assert repeat == DecisionEvent(**{**{f: getattr(first, f) for f in first.__struct_fields__}, "exposure": False})


def test_events_that_are_no_exposure_pass_unchanged_and_are_not_remembered() -> None:
    seen = ExposureFilter()
    plain = event(None, "x", "bold", exposure=False)
    assert seen.apply([plain, plain]) == [plain, plain]
    assert decisions(seen.apply([event("a", "x", "bold")]))[0].exposure


def test_memory_is_bounded_and_forgets_the_least_recent_first() -> None:
    seen = ExposureFilter(maxsize=2)
    seen.apply([event("a", "x", "bold"), event("b", "x", "bold"), event("a", "x", "bold"), event("c", "x", "bold")])
    again = seen.apply([event("a", "x", "bold"), event("b", "x", "bold")])
    assert [e.exposure for e in decisions(again)] == [False, True]  # b was evicted; a, seen again, was kept


def test_threads_racing_on_one_visitor_count_one_exposure() -> None:
    seen = ExposureFilter()
    flags: list[bool] = []
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        flags.extend(e.exposure for e in decisions(seen.apply([event("a", "x", "bold")] * 100)))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert (len(flags), flags.count(True)) == (800, 1)
