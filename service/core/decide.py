"""decide(bundle, request) → Decision: the whole decision, pure and deterministic.

Order of a decision, and the closed set of reasons it can give:

1. no consent to personalization  → every placement gets its default, ``no_consent``;
   no segment is evaluated at all;
2. a global holdout               → visitors in it get defaults, ``holdout``; without a
   visitor id nobody can be placed in or out of it: ``no_unit_id``;
3. each placement tries its rules in order; the first that applies wins:
   ``targeting_match`` (a rule serving a variant), ``experiment`` (an arm by bucket),
   ``forced`` (a QA visitor's arm), ``no_unit_id`` (an experiment applies but the
   visitor has no value to bucket by: the default, never a random arm);
   an experiment that is not running or that the visitor does not enter passes to
   the next rule;
4. no rule applies                → ``default``;
   a placement the bundle does not have → ``unknown_placement``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import msgspec

from service.core.bucketing import BUCKETS, bucket_of
from service.core.compile import Bundle, CompiledExperiment, CompiledPlacement
from service.core.conditions import Facts
from service.core.outcome import REASONS, Assignment, Decision, Outcome, PlacementDecision, Reason, Skip, TraceStep
from service.core.whynot import WhyNot

__all__ = ["REASONS", "Decision", "DecisionRequest", "PlacementDecision", "decide", "segment_why_not"]

_EVERYONE = (0, BUCKETS)
NO_STICKY: Mapping[str, tuple[str, int]] = MappingProxyType({})  # shared: no allocation per request


class DecisionRequest(msgspec.Struct, frozen=True):
    """The core's view of a request: plain data, with the time supplied by the caller."""

    visitor_id: str | None
    attributes: Mapping[str, Any]
    now: datetime
    context: Mapping[str, Any] = msgspec.field(default_factory=dict)
    personalization: bool = False
    placements: Sequence[str] | None = None  # None: every placement of the bundle
    explain: bool = False
    sticky: Mapping[str, tuple[str, int]] = NO_STICKY
    """Experiment key → (arm key, bucket version) from the visitor's verified assignments token."""


_UNKNOWN = PlacementDecision(None, "unknown_placement")


def decide(bundle: Bundle, request: DecisionRequest) -> Decision:
    """Decide every requested placement for one visitor."""
    names = tuple(bundle.placements) if request.placements is None else request.placements
    trace: list[TraceStep] | None = [] if request.explain else None
    if not request.personalization:
        return _defaults(bundle, names, "no_consent", trace)
    visitor_id = request.visitor_id or None  # an empty id is no id
    holdout = bundle.holdout
    if holdout is not None and visitor_id not in bundle.qa_ids:
        if visitor_id is None:
            return _defaults(bundle, names, "no_unit_id", trace)
        if bucket_of(holdout.prefix, visitor_id) < holdout.buckets:
            return _defaults(bundle, names, "holdout", trace)
    facts = Facts(request.attributes, request.context, request.now.timestamp(), bundle.segments, bundle.model_runners)
    placements = bundle.placements
    decided = {}
    if request.placements is None:  # every placement: iterate them, no lookup by name
        for name, placement in placements.items():
            decided[name] = _place(placement, facts, visitor_id, trace, request.sticky)
    else:
        for name in names:
            found = placements.get(name)
            decided[name] = _UNKNOWN if found is None else _place(found, facts, visitor_id, trace, request.sticky)
    return Decision(_segments(bundle, facts), decided, trace, dict(facts.scores) if request.explain else None)


def segment_why_not(bundle: Bundle, request: DecisionRequest, name: str) -> WhyNot | None:
    """Why the visitor is not in segment ``name`` (None when they are), for tests and previews.

    Consent and the holdout do not matter here: this answers what the segment's condition says.
    """
    facts = Facts(request.attributes, request.context, request.now.timestamp(), bundle.segments, bundle.model_runners)
    return bundle.segment_why_not[name](facts)


def _segments(bundle: Bundle, facts: Facts) -> list[str]:
    """Every segment without a model that the visitor is in, and the model segments the decision needed.

    Listing a model segment must not run its model: models run only for placements that ask.
    """
    needs_model = bundle.segment_models
    return [
        name for name in bundle.segments if (facts.evaluated(name) if needs_model.get(name) else facts.segment(name))
    ]


def _defaults(bundle: Bundle, names: Sequence[str], reason: Reason, trace: list[TraceStep] | None) -> Decision:
    decided = {}
    for name in names:
        placement = bundle.placements.get(name)
        decided[name] = _UNKNOWN if placement is None else placement.defaults[reason]
    return Decision([], decided, trace)


def _place(
    placement: CompiledPlacement,
    facts: Facts,
    visitor_id: str | None,
    trace: list[TraceStep] | None,
    sticky: Mapping[str, tuple[str, int]],
) -> PlacementDecision:
    for rule in placement.rules:
        if rule.target is not None and not rule.target(facts):
            if trace is not None:  # the why-not is worked out only here, when explaining
                why_not = None if rule.why_not is None else rule.why_not(facts)
                trace.append(TraceStep(placement.name, rule.label, "no_match", why_not))
            continue
        if rule.served is not None:
            if trace is not None:
                trace.append(TraceStep(placement.name, rule.label, "matched"))
            return rule.served
        experiment = rule.experiment
        assert experiment is not None  # the spec requires serve or experiment
        outcome = _assign(experiment, facts, visitor_id, rule.label, sticky.get(experiment.key))
        if trace is not None:
            step: Outcome = (
                outcome if isinstance(outcome, str) else "matched" if outcome.reason == "experiment" else "forced"
            )
            trace.append(TraceStep(placement.name, rule.label, step))
        if outcome == "no_unit_id":
            return PlacementDecision(placement.default, "no_unit_id", rule.label)
        if not isinstance(outcome, str):
            return outcome
    return placement.fallback


def _assign(
    experiment: CompiledExperiment, facts: Facts, visitor_id: str | None, label: str, held: tuple[str, int] | None
) -> PlacementDecision | Skip:
    """The arm of a visitor the rule has targeted, or why there is none.

    ``held``: the arm and bucket version of the visitor's assignments token. While the experiment
    runs, that arm exists and the version is unchanged, it wins over weights and traffic.
    """
    if visitor_id is not None and experiment.forced and experiment.status != "stopped":
        forced = experiment.forced.get(visitor_id)
        if forced is not None:
            arm = experiment.arms[forced]
            return PlacementDecision(arm.variant, "forced", label, Assignment(experiment.key, arm.key, None))
    window = experiment.window
    if not (experiment.running and window[0] <= facts.now < window[1]):  # CompiledExperiment.active_at, inlined
        return "not_running"
    if held is not None and held[1] == experiment.bucket_version:
        sticky = _held(experiment, held[0], facts, visitor_id, label)
        if sticky is not None:
            return sticky
    unit = visitor_id if experiment.unit is None else _unit_text(experiment.unit(facts))
    if unit is None:
        return "no_unit_id"
    entry = experiment.entry_range
    if entry != _EVERYONE and not entry[0] <= bucket_of(experiment.entry_prefix, unit) < entry[1]:
        return "not_in_traffic"
    bucket = bucket_of(experiment.arm_prefix, unit)
    arm = experiment.arms[bisect_right(experiment.bounds, bucket)]  # bucketing.arm_index, inlined
    return PlacementDecision(arm.variant, "experiment", label, Assignment(experiment.key, arm.key, bucket))


def _held(
    experiment: CompiledExperiment, arm_key: str, facts: Facts, visitor_id: str | None, label: str
) -> PlacementDecision | None:
    """The token's arm, if it still exists, and, in a layer, while the visitor is in this experiment's
    slice (ADR 0021): held arms once outlived a change of slices, and 434 of 1,869 token holders were
    then in both experiments of an exclusive layer. Outside a layer a held arm outlives the traffic."""
    arm = next((arm for arm in experiment.arms if arm.key == arm_key), None)
    if arm is None:
        return None
    if experiment.layer is not None:
        unit = visitor_id if experiment.unit is None else _unit_text(experiment.unit(facts))
        low, high = experiment.entry_range
        if unit is None or not low <= bucket_of(experiment.entry_prefix, unit) < high:
            return None
    return PlacementDecision(arm.variant, "experiment", label, Assignment(experiment.key, arm.key, None, True))


def _unit_text(value: Any) -> str | None:
    """Bucket by text or whole numbers only: a float or a list has no stable text form."""
    kind = type(value)
    if kind is str:
        return value if value else None
    if kind is int:
        return str(value)
    return None
