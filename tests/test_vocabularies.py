"""Closed vocabularies stay closed and in step between the core and the wire."""

from __future__ import annotations

import typing

from service.bundle import origin
from service.core.outcome import REASONS, Outcome, Skip
from service.http import wire
from service.telemetry.metrics import POLL_OUTCOMES


def _values(literal: object) -> list[str]:
    """The strings of a Literal, or of a union of Literals."""
    args = typing.get_args(literal)
    return [v for a in args for v in _values(a)] if typing.get_origin(literal) is not typing.Literal else list(args)


def test_wire_reasons_are_the_core_reasons_plus_requested() -> None:
    assert _values(wire.Reason) == [*REASONS, "requested"]


def test_every_reason_an_experiment_gives_no_arm_is_a_trace_outcome() -> None:
    assert set(_values(Skip)) <= set(_values(Outcome))
    assert sorted(_values(Outcome)) == ["forced", "matched", "no_match", "no_unit_id", "not_in_traffic", "not_running"]


def test_the_origin_metric_counts_every_outcome_of_a_poll() -> None:
    assert list(POLL_OUTCOMES) == [outcome.value for outcome in origin.Outcome]
