"""What a decision returns: immutable structs, built by the compiler where they never change."""

from __future__ import annotations

from typing import Literal

import msgspec

from service.core.whynot import WhyNot

Reason = Literal[
    "targeting_match",
    "experiment",
    "forced",
    "default",
    "no_consent",
    "no_unit_id",
    "holdout",
    "unknown_placement",
]
REASONS: tuple[str, ...] = Reason.__args__  # type: ignore[attr-defined]

Skip = Literal["not_running", "not_in_traffic", "no_unit_id"]
"""Why an experiment a rule runs gives the visitor no arm."""
Outcome = Literal["matched", "no_match", "forced"] | Skip
"""What one rule did for one placement, in a trace."""


class Assignment(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    key: str
    arm: str
    bucket: int | None  # None for a forced (QA) arm or a sticky one, which no bucket chose now
    sticky: bool = False  # kept from the visitor's assignments token, whatever the weights say now


class PlacementDecision(msgspec.Struct, frozen=True, gc=False):
    variant: str | None
    reason: Reason
    rule: str | None = None
    experiment: Assignment | None = None


class TraceStep(msgspec.Struct, frozen=True, gc=False):
    placement: str
    rule: str
    outcome: Outcome
    why_not: WhyNot | None = None  # with no_match: the rule's first failed condition


class Decision(msgspec.Struct, frozen=True):
    segments: list[str]
    placements: dict[str, PlacementDecision]
    trace: list[TraceStep] | None = None
    scores: dict[str, str | float] | None = None  # model outputs, when explaining
