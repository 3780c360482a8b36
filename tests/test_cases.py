"""Decision behaviour as data: every case in tests/cases/*.yaml runs against its bundle."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.bundle.loader import load_bundle
from service.bundle.yamlfile import parse_yaml
from service.core.compile import Bundle
from service.core.decide import REASONS, Decision, DecisionRequest, decide, segment_why_not
from service.core.whynot import format_why_not
from service.http import wire

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CASE_FILES = sorted((TESTS / "cases").glob("*.yaml"))


@cache
def bundle_at(name: str) -> Bundle:
    return load_bundle(ROOT if name == "example" else TESTS / name)


def _cases() -> list[Any]:
    suites = [(path, parse_yaml(path.read_text()).data) for path in CASE_FILES]
    return [
        pytest.param(suite, case, id=f"{path.stem}: {case['name']}")
        for path, suite in suites
        for case in suite["cases"]
    ]


@pytest.mark.parametrize(("suite", "case"), _cases())
def test_case(suite: dict[str, Any], case: dict[str, Any]) -> None:
    bundle = bundle_at(suite["bundle"])
    visitor = msgspec.convert(case["visitor"], wire.Visitor)
    context = case.get("context", {})
    request = DecisionRequest(
        visitor_id=visitor.id,
        attributes=visitor.attributes,
        now=datetime.fromisoformat(case.get("now", suite["now"])),
        context=context,
        personalization=visitor.consent.personalization,
        placements=case.get("placements"),
    )
    decision = decide(bundle, request)
    expect = case["expect"]
    if "segments" in expect:
        assert decision.segments == expect["segments"]
    for name, wanted in expect.get("placements", {}).items():
        got = msgspec.to_builtins(decision.placements[name])
        assert {key: got.get(key) for key in wanted} == wanted, f"placement {name}"
    if "why_not" in expect:
        _check_why_not(bundle, request, decision, expect["why_not"])


def _check_why_not(bundle: Bundle, request: DecisionRequest, plain: Decision, expected: dict[str, Any]) -> None:
    """``why_not``: the line for a rule (``placement.rule``, which must not match) or a segment (null: in it)."""
    explained = decide(bundle, msgspec.structs.replace(request, explain=True))
    assert (explained.segments, explained.placements) == (plain.segments, plain.placements)
    failed = {f"{s.placement}.{s.rule}": s.why_not for s in explained.trace or () if s.outcome == "no_match"}
    for rule, text in expected.get("rules", {}).items():
        assert rule in failed, f"{rule} is not a rule that did not match: {sorted(failed)}"
        why = failed[rule]
        assert why is not None
        assert format_why_not(why) == text, rule
    for name, text in expected.get("segments", {}).items():
        why = segment_why_not(bundle, request, name)
        assert (None if why is None else format_why_not(why)) == text, f"segment {name}"


def test_every_reason_is_covered_by_a_case() -> None:
    """The closed set of reasons: each one is shown by at least one case."""
    seen = {
        placement["reason"]
        for path in CASE_FILES
        for case in parse_yaml(path.read_text()).data["cases"]
        for placement in case["expect"].get("placements", {}).values()
    }
    assert seen == set(REASONS)
