"""The why-not of explanations: for any visitor, it names a condition that is false on its own.

Case files (tests/cases/*.yaml, ``why_not``) pin the text for each kind of condition; these
properties check the class: every rule that does not match and every segment a visitor is not
in gets a why-not, and the condition it names, read back from its file and path and evaluated
alone on the same visitor, is false. Explaining never changes a decision or runs another model.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.loader import load_bundle
from service.bundle.yamlfile import parse_yaml
from service.core.compile import Bundle
from service.core.conditions import Facts, compile_condition
from service.core.decide import DecisionRequest, decide, segment_why_not
from service.core.models import Scorer
from service.core.spec import Condition
from service.core.whynot import WhyNot
from service.http.mapping import why_not_out
from service.segments.onnx import OnnxScorer

TESTS = Path(__file__).parent
ROOT = TESTS.parent
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
BUNDLES = {
    name: TESTS / "bundles" / name for name in ("operators", "lists", "length", "types", "ignore_case", "negated")
}
BUNDLES["example"] = ROOT

# Values chosen to reach past the first test of a condition, mixed with values of the wrong type.
times = st.sampled_from(["2026-11-21T12:00:00Z", "2026-10-01T00:00:00Z", "2024-06-01T00:00:00Z", 1_700_000_000, "soon"])
texts = st.sampled_from(
    ["pro", "Pro", "free", "gold", "DE", "US", "FR", "anna@example.de", "2.3.0", "EL-1", "sale", ""]
)
numbers = st.sampled_from([0, 1, 2, 3, 3.0, 5, 7.5, 100, 812.5, -1])
scalars = texts | numbers | st.booleans() | st.none()
lines = st.lists(
    st.fixed_dictionaries({"price": numbers, "category": texts, "on_sale": st.booleans(), "sku": texts}), max_size=3
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["plan", "country", "email", "app", "name", "street"], texts | scalars),
    **dict.fromkeys(
        ["level", "score", "spend", "budget", "orders_12m", "spend_12m", "orders_total"], numbers | scalars
    ),
    **dict.fromkeys(["signed_up_at", "last_purchase_at", "first_purchase_at"], times | scalars),
    "spend_total": numbers,
    "sessions_7d": numbers,
    "beta": scalars,
    "loyalty_id": scalars,
    "tags": st.lists(texts, max_size=3) | scalars,
    "scores": st.lists(numbers, max_size=3),
    "prefs": st.dictionaries(st.sampled_from(["a", "b"]), scalars, max_size=2) | scalars,
    "cart": st.fixed_dictionaries({}, optional={"items": numbers, "updated_at": times, "lines": lines | scalars}),
    "views": st.fixed_dictionaries({}, optional={"electronics_7d": numbers}),
    "orders": st.lists(st.fixed_dictionaries({"lines": lines}), max_size=2),
}
attributes = st.fixed_dictionaries({}, optional=VALUES)
contexts = st.fixed_dictionaries({}, optional={"locale": st.sampled_from(["de-DE", "en-US", "fr"])})


@cache
def bundle(name: str) -> Bundle:
    return load_bundle(BUNDLES[name])


@cache
def _document(root: Path, file: str) -> Any:
    return parse_yaml((root / file).read_text()).data


def condition_at(root: Path, why: WhyNot) -> Condition:
    """The condition a why-not names, read back from its file by its path."""
    data = _document(root, why.file)
    for key in why.path:
        data = data[key]
    return Condition.model_validate(data)


def holds_alone(b: Bundle, root: Path, why: WhyNot, request: DecisionRequest) -> bool:
    facts = Facts(request.attributes, request.context, request.now.timestamp(), b.segments, b.model_runners)
    return compile_condition(condition_at(root, why))(facts)


def _request(attrs: dict[str, Any], context: dict[str, Any], explain: bool = False) -> DecisionRequest:
    return DecisionRequest("vip-1", attrs, NOW, context, personalization=True, explain=explain)  # outside the holdout


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(BUNDLES)), attributes, contexts)
def test_a_segment_without_the_visitor_names_a_condition_false_on_its_own(
    name: str, attrs: dict[str, Any], context: dict[str, Any]
) -> None:
    b, request = bundle(name), _request(attrs, context)
    facts = Facts(attrs, context, NOW.timestamp(), b.segments, b.model_runners)
    for segment in b.segments:
        why = segment_why_not(b, request, segment)
        assert (why is None) == facts.segment(segment), segment
        if why is not None:
            assert not holds_alone(b, BUNDLES[name], why, request), (segment, why)
            assert why.path[:2] == ("segments", why.via[-1] if why.via else segment)
            assert why.line == parse_yaml((BUNDLES[name] / why.file).read_text()).line_of(why.path)


@settings(max_examples=150, deadline=None)
@given(attributes, contexts)
def test_every_rule_that_does_not_match_names_a_condition_false_on_its_own(
    attrs: dict[str, Any], context: dict[str, Any]
) -> None:
    b = bundle("example")
    plain, explained = decide(b, _request(attrs, context)), decide(b, _request(attrs, context, explain=True))
    assert plain.trace is None
    assert (explained.segments, explained.placements) == (plain.segments, plain.placements)
    for step in explained.trace or ():
        assert (step.why_not is not None) == (step.outcome == "no_match"), step
        if step.why_not is not None:
            assert not holds_alone(b, ROOT, step.why_not, _request(attrs, context)), step


# -- any tree of conditions -------------------------------------------------------------

LEAVES: Sequence[dict[str, Any]] = (
    {"attr": "plan", "eq": "pro"},
    {"attr": "plan", "in": ["PRO", "gold"], "ignore_case": True},
    {"attr": "level", "gte": 3},
    {"attr": "level", "type": "number"},
    {"attr": "level", "exists": False},
    {"attr": "tags", "any_of": ["sale"]},
    {"attr": "tags", "length": {"gte": 2}},
    {"attr": "spend", "gt": {"attr": "budget"}},
    {"attr": "last_purchase_at", "within": "7d"},
    {"attr": "last_purchase_at", "before": "2025-01-01T00:00:00Z"},
    {"attr": "cart", "some": {"item": "price", "gte": 10}},
    {"context": "locale", "starts_with": "de"},
    {"segment": "keen"},
)
trees = st.recursive(
    st.sampled_from(LEAVES),
    lambda kids: (
        st.builds(lambda c: {"all": c}, st.lists(kids, min_size=1, max_size=3))
        | st.builds(lambda c: {"any": c}, st.lists(kids, min_size=1, max_size=3))
        | st.builds(lambda c: {"not": c}, kids)
    ),
    max_leaves=6,
)
tree_attributes = st.fixed_dictionaries(
    {},
    optional={
        "plan": st.sampled_from(["pro", "Pro", "gold", "free", 5]),
        "level": st.sampled_from([1, 3, 7, "3"]),
        "tags": st.sampled_from([[], ["sale"], ["sale", "new"], "sale"]),
        "spend": numbers,
        "budget": numbers,
        "last_purchase_at": times,
        "cart": st.lists(st.fixed_dictionaries({"price": numbers}), max_size=2) | scalars,
    },
)
KEEN = {
    "any": [{"attr": "plan", "eq": "pro"}, {"all": [{"attr": "level", "gt": 5}, {"attr": "tags", "contains": "sale"}]}]
}
CONTENT = {"version": 1, "variants": {"plain": {}, "special": {}}}


def _tree_bundle(folder: Path, tree: dict[str, Any]) -> Bundle:
    rules = {
        "version": 1,
        "segments": {"keen": {"when": KEEN}},
        "placements": {"slot": {"default": "plain", "rules": [{"name": "tree", "when": tree, "serve": "special"}]}},
    }
    for sub, name, data in (("rules", "r.yaml", rules), ("content", "c.yaml", CONTENT)):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub / name).write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return load_bundle(folder)


@settings(max_examples=100, deadline=None)
@given(trees, st.lists(tree_attributes, min_size=1, max_size=4), contexts)
def test_for_any_tree_of_conditions_the_why_not_is_false_on_its_own(
    tree: dict[str, Any], visitors: list[dict[str, Any]], context: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        b = _tree_bundle(Path(folder), tree)
        for attrs in visitors:
            request = _request(attrs, context, explain=True)
            trace = decide(b, request).trace
            assert trace is not None  # explain=True
            (step,) = trace
            assert (step.outcome == "no_match") == (step.why_not is not None)
            if step.why_not is not None:
                assert not holds_alone(b, Path(folder), step.why_not, request), (tree, attrs, step.why_not)
                assert step.why_not.line is not None


# -- explaining runs nothing more ---------------------------------------------------------


class _Counting:
    def __init__(self, inner: Scorer, calls: list[str], name: str) -> None:
        self.inner, self.calls, self.name = inner, calls, name

    def score(self, row: Sequence[float]) -> str | float:
        self.calls.append(self.name)
        return self.inner.score(row)


def test_explaining_runs_no_model_the_decision_did_not_run() -> None:
    calls: list[str] = []
    # two loads: each has its own memo of scores, so neither decision finds the other's rows there
    plain_bundle, explained_bundle = (
        load_bundle(ROOT, lambda card, data: _Counting(OnnxScorer(card, data), calls, card.name)) for _ in range(2)
    )
    buyer = {"orders_total": 3, "spend_total": 90.0, "last_purchase_at": "2026-11-01T00:00:00Z", "country": "US"}
    # each visitor a row of its own, so that every model a decision asks for runs (no memo hit)
    for attrs in ({}, buyer, {**buyer, "country": "DE", "spend_total": 450.0}):
        decide(plain_bundle, _request(attrs, {}))
        plain, calls[:] = list(calls), []
        explained = decide(explained_bundle, _request(attrs, {}, explain=True))
        assert calls == plain, attrs
        assert sorted(explained.scores or {}) == sorted(set(plain))
        calls.clear()


def test_a_model_condition_names_the_score() -> None:
    b = bundle("example")
    buyer = {"orders_total": 3, "spend_total": 90.0, "last_purchase_at": "2026-11-01T00:00:00Z"}
    decision = decide(b, msgspec.structs.replace(_request(buyer, {}, explain=True), placements=["promo_banner"]))
    (why,) = [s.why_not for s in decision.trace or () if s.rule == "retention"]
    assert why is not None
    assert (why.source, why.name, why.operator, why.expected) == ("model", "churn", "gte", 0.86)
    assert decision.scores is not None
    assert why.actual == decision.scores["churn"]


def test_a_reference_carries_the_value_it_pointed_to_on_the_wire() -> None:
    request = _request({"spend": 10, "budget": 20}, {})
    why = why_not_out(segment_why_not(bundle("operators"), request, "ref_gt"))
    assert why is not None
    assert msgspec.to_builtins(why) == {
        "text": "rules/operators.yaml:33: segments.ref_gt.when: spend gt budget (20), got 10",
        "file": "rules/operators.yaml",
        "line": 33,
        "path": "segments.ref_gt.when",
        "operator": "gt",
        "expected": {"attr": "budget"},
        "source": "attr",
        "name": "spend",
        "actual": 10,
        "reference": 20,
    }


def test_the_plain_path_never_calls_an_explainer() -> None:
    def boom(facts: Facts) -> WhyNot | None:
        raise AssertionError("explained without explain")

    b = bundle("example")
    placements = {
        name: dataclasses.replace(p, rules=tuple(dataclasses.replace(r, why_not=boom) for r in p.rules))
        for name, p in b.placements.items()
    }
    rigged = dataclasses.replace(b, placements=placements)
    decision = decide(rigged, _request({"orders_12m": 1, "country": "US"}, {}))
    assert decision.placements["home_hero"].reason in {"experiment", "default"}
    with pytest.raises(AssertionError, match="explained without explain"):
        decide(rigged, _request({"orders_12m": 1}, {}, explain=True))
