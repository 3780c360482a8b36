"""Run checks: decide each test's visitor the way ``POST /v1/decide`` would, compare, and record reach.

A test runs through the API's own conversion (``to_core``, with the default request
limits) and the core's ``decide`` with ``explain`` on; stand-in model scores replace the
named models' runners for that test only, the way OPA's ``with`` replaces data. What each
test reached (rules that decided a placement according to the trace, variants served,
experiment arms entered, segments the visitor is in) feeds the coverage report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter

from service.checks.files import LIMITS, Check, placement_expectations
from service.checks.spec import PlacementExpect
from service.core.compile import Bundle
from service.core.conditions import Facts
from service.core.decide import Decision, DecisionRequest, decide
from service.core.outcome import TraceStep
from service.core.rendering import Rendered
from service.core.whynot import format_why_not
from service.http import wire
from service.http.mapping import to_core
from service.render.page import Tally, inputs_for, render_decision

_REACHING = ("matched", "forced")  # trace outcomes of a rule that decided its placement


@dataclass(frozen=True, slots=True)
class Failure:
    file: str
    line: int
    test: str
    where: str  # a placement, or "segments" / "experiments"
    expected: str
    got: str
    trace: str = ""

    def render(self) -> str:
        """``file:line: test name: placement: expected X, got Y``, and the placement's trace when it has one."""
        text = f"{self.file}:{self.line}: {self.test}: {self.where}: expected {self.expected}, got {self.got}"
        return f"{text} (trace: {self.trace})" if self.trace else text


@dataclass
class Reach:
    """What the tests reached, for coverage."""

    rules: set[tuple[str, str]] = field(default_factory=set)  # (placement, rule label)
    defaults: set[str] = field(default_factory=set)  # placements that fell through to their default
    arms: set[tuple[str, str]] = field(default_factory=set)  # (experiment, arm)
    variants: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)

    def add(self, other: Reach) -> None:
        for name in ("rules", "defaults", "arms", "variants", "segments"):
            getattr(self, name).update(getattr(other, name))


@dataclass(frozen=True, slots=True)
class Outcome:
    check: Check
    failures: list[Failure]
    reach: Reach
    seconds: float


def run_check(bundle: Bundle, check: Check, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Outcome:
    start = perf_counter()
    bundle = _with_stand_ins(bundle, check.spec.models)
    checked = wire.DecideRequest(check.visitor, context=check.context, explain=True)
    request = to_core(checked, LIMITS, clock, client_time=True)  # a check names its time on purpose
    decision = decide(bundle, request)
    rendered: Mapping[str, Rendered] = {}
    if any(e.html is not None or e.html_contains is not None for _, e in placement_expectations(check)):
        rendered = render_decision(bundle, decision, inputs_for(request, decision.segments), cache=None, tally=Tally())
    segments = _membership(bundle, request)
    failures = _placement_failures(check, decision, rendered)
    failures += _segment_failures(check, segments) + _experiment_failures(check, decision)
    failures.sort(key=lambda f: f.line)
    return Outcome(check, failures, _reach(decision, segments), perf_counter() - start)


def _with_stand_ins(bundle: Bundle, scores: Mapping[str, str | float]) -> Bundle:
    if not scores:
        return bundle
    runners = {**bundle.model_runners, **{name: _constant(value) for name, value in scores.items()}}
    return dataclasses.replace(bundle, model_runners=runners)


def _constant(value: str | float) -> Callable[[Facts], str | float]:
    return lambda _facts: value


def _membership(bundle: Bundle, request: DecisionRequest) -> list[str]:
    """Every segment the visitor is in, models included; none without consent, as in a decision."""
    if not request.personalization:
        return []
    facts = Facts(request.attributes, request.context, request.now.timestamp(), bundle.segments, bundle.model_runners)
    return [name for name in bundle.segments if facts.segment(name)]


def _placement_failures(check: Check, decision: Decision, rendered: Mapping[str, Rendered]) -> list[Failure]:
    failures = []
    for name, wanted in placement_expectations(check):
        placed = decision.placements[name]
        got = {"variant": placed.variant, "reason": placed.reason, "rule": placed.rule}
        asked = {key: value for key, value in wanted.model_dump(include=set(got)).items() if value is not None}
        trace = _trace(decision, name)
        if any(got[key] != value for key, value in asked.items()):
            failures.append(_failure(check, name, _shown(asked), _shown({k: got[k] for k in asked}), trace=trace))
        html = _html_failure(wanted, rendered.get(name), placed.variant)
        if html is not None:
            failures.append(_failure(check, name, *html, trace=trace))
    return failures


def _failure(
    check: Check, where: str, expected: str, got: str, *, trace: str = "", at: tuple[str | int, ...] = ()
) -> Failure:
    """A failure on the line of ``expect.<where>`` (or of the part ``at`` inside it)."""
    return Failure(check.file, check.line_of(where, *at), check.name, where, expected, got, trace)


def _shown(values: Mapping[str, object]) -> str:
    """A bare variant key when only the variant is compared, else ``{variant: x, reason: y}``."""
    if list(values) == ["variant"]:
        return _text(values["variant"])
    return "{" + ", ".join(f"{key}: {_text(value)}" for key, value in values.items()) + "}"


def _text(value: object) -> str:
    """A value as the check file writes it: YAML's ``null``, not Python's ``None``."""
    return "null" if value is None else str(value)


def _html_failure(wanted: PlacementExpect, block: Rendered | None, variant: str | None) -> tuple[str, str] | None:
    """(expected, got) when the rendered HTML is not what the test asks for."""
    if block is None:
        got = f"no HTML (variant {variant} has no template)"
    elif block.status == "fallback":
        got = f"the fallback HTML ({block.error})"
    else:
        got = "rendered HTML"
    if wanted.html is True and got != "rendered HTML":
        return "rendered HTML", got
    if wanted.html is False and got == "rendered HTML":
        return "no rendered HTML", got
    texts = wanted.html_contains or []
    html = "" if block is None else block.html
    missing = [text for text in texts if text not in html]
    if missing:
        # a fallback says why it was served: the template's error is the likelier cause than the text
        return f"HTML containing {missing[0]!r}", "HTML without it" if got == "rendered HTML" else got
    return None


def _segment_failures(check: Check, segments: list[str]) -> list[Failure]:
    expect = check.spec.expect.segments
    if expect is None:
        return []
    got = "segments [" + ", ".join(segments) + "]"
    failures = []
    for key, wanted, text in (("includes", True, "to be in"), ("excludes", False, "not to be in")):
        for i, name in enumerate(getattr(expect, key)):
            if (name in segments) != wanted:
                failures.append(_failure(check, "segments", f"{text} {name}", got, at=(key, i)))
    return failures


def _experiment_failures(check: Check, decision: Decision) -> list[Failure]:
    entered = _arms(decision)
    failures = []
    for experiment, arm in (check.spec.expect.experiments or {}).items():
        got = entered.get(experiment)
        if got != arm:
            shown = f"arm {got}" if got is not None else "not in the experiment"
            failures.append(_failure(check, "experiments", f"{experiment} arm {arm}", shown, at=(experiment,)))
    return failures


def _arms(decision: Decision) -> dict[str, str]:
    return {p.experiment.key: p.experiment.arm for p in decision.placements.values() if p.experiment is not None}


def _trace(decision: Decision, placement: str) -> str:
    steps = [_step(step) for step in decision.trace or () if step.placement == placement]
    return "; ".join(steps)


def _step(step: TraceStep) -> str:
    """A rule's outcome and, for one that did not match, the first condition that failed."""
    if step.why_not is None:
        return f"{step.rule} {step.outcome}"
    return f"{step.rule} {step.outcome}: {format_why_not(step.why_not)}"


def _reach(decision: Decision, segments: list[str]) -> Reach:
    reach = Reach(segments=set(segments))
    for step in decision.trace or ():
        if step.outcome in _REACHING:
            reach.rules.add((step.placement, step.rule))
    for name, placed in decision.placements.items():
        if placed.reason == "default":
            reach.defaults.add(name)
        if placed.variant is not None:
            reach.variants.add(placed.variant)
    reach.arms.update(_arms(decision).items())
    return reach
