"""Property tests of compiled conditions: any JSON a client can send is evaluated, never raised on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service.bundle.loader import load_bundle
from service.core.compile import Bundle, compile_bundle
from service.core.conditions import Facts
from service.core.decide import DecisionRequest, decide
from service.core.errors import BundleError
from service.core.spec import OPERATORS, SEMVER_PATTERN, ContentFile, RulesFile
from service.core.values import MAX_VERSION_CHARS, parse_semver
from service.render.blocks import compile_blocks

OPERATORS_BUNDLE = load_bundle(Path(__file__).parent / "bundles" / "operators")
EXAMPLE_BUNDLE = load_bundle(Path(__file__).parents[1])
KEYS = ["plan", "level", "beta", "country", "score", "tags", "email", "loyalty_id", "app", "signed_up_at",
        "last_purchase_at", "views", "cart", "spend", "budget", "electronics_7d", "updated_at", "items"]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    max_leaves=12,
)
attributes = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=10)
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(attributes, st.dictionaries(st.sampled_from(["locale", "page"]), st.text(max_size=10)))
def test_every_operator_evaluates_any_attributes_to_a_bool(attrs: dict[str, Any], context: dict[str, Any]) -> None:
    facts = Facts(attrs, context, NOW.timestamp(), OPERATORS_BUNDLE.segments)
    for name in OPERATORS_BUNDLE.segments:
        assert type(facts.segment(name)) is bool


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), attributes, st.booleans())
def test_decisions_are_total_and_deterministic(visitor_id: str, attrs: dict[str, Any], consent: bool) -> None:
    request = DecisionRequest(visitor_id, attrs, NOW, personalization=consent)
    first, again = decide(EXAMPLE_BUNDLE, request), decide(EXAMPLE_BUNDLE, request)
    assert first == again
    for placement in first.placements.values():
        assert placement.variant in EXAMPLE_BUNDLE.variants
        if not consent:
            assert placement.reason == "no_consent"


# -- whatever validates, evaluates ------------------------------------------------------
# A condition built from any operand: if the spec and the compiler accept it, its predicate
# must give a bool for every JSON value a client can send, in the subject and in a reference.

ODD_TEXTS = ["", " ", "v", "01.2.3", "1.0.0-01", "1.2.3.4", "v1", "2.3.0-rc.1", "1e3", "NaN", "\x00", "é", "ß", "İ",
             "9" * 5000, "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-11-22", "24:00",
             "30d"]  # fmt: skip
ODD_NUMBERS = [
    0,
    -0.0,
    1,
    -1,
    2**63,
    -(2**63) - 1,
    10**400,
    -(10**400),
    1e308,
    -1e308,
    5e-324,
    float("inf"),
    float("nan"),
]
SUBJECT, OTHER = "value", "other"

odd_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(ODD_NUMBERS)
    | st.text(max_size=12)
    | st.sampled_from(ODD_TEXTS),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)
versions = st.from_regex(r"v?\d{1,3}(\.\d{1,3}){0,3}(-[0-9A-Za-z.\-]{1,6})?(\+[0-9A-Za-z.\-]{1,4})?", fullmatch=True)
durations = st.from_regex(r"\d{1,25} ?[smhdw]", fullmatch=True)
times = st.datetimes(timezones=st.none() | st.timezones()).map(lambda t: t.isoformat()) | st.integers() | st.floats()
references = st.sampled_from([{"attr": OTHER}, {"context": OTHER}, {"attr": f"{OTHER}.inner"}])
length_tests = st.dictionaries(
    st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "between"]), odd_values, max_size=2
)
item_conditions = st.fixed_dictionaries(
    {"item": st.sampled_from([".", "price", "a.b"]), "eq": odd_values}
) | st.fixed_dictionaries({"item": st.sampled_from([".", "price"]), "gt": st.integers() | st.text(max_size=3)})
operands = (
    odd_values
    | versions
    | durations
    | times
    | references
    | st.sampled_from(["^a", "(?i)x", "[", "a{2,1}", "text", "number", "boolean", "list", "object", "null"])
    | length_tests
    | item_conditions
)
finite = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
operand_lists = st.lists(
    finite | st.booleans() | st.text(max_size=4) | st.sampled_from(ODD_TEXTS), min_size=1, max_size=4
)
good_versions = st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)).map(
    lambda v: ".".join(map(str, v))
)
FITTING: dict[str, Any] = {  # operands of the right shape, so that most examples get past validation
    **dict.fromkeys(["in", "not_in", "any_of", "all_of", "none_of"], operand_lists),
    "between": st.lists(finite, min_size=2, max_size=2).map(sorted),
    "exists": st.booleans(),
    "type": st.sampled_from(["text", "number", "boolean", "list", "object"]),
    "length": st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]).flatmap(
        lambda op: st.fixed_dictionaries({op: st.integers(0, 5)})
    ),
    **dict.fromkeys(["some", "every"], item_conditions),
    **dict.fromkeys(["semver_eq", "semver_gt", "semver_gte", "semver_lt", "semver_lte"], good_versions | versions),
    **dict.fromkeys(["within", "older_than"], st.from_regex(r"[0-9]{1,4}[smhdw]", fullmatch=True)),
    **dict.fromkeys(["before", "after"], st.datetimes().map(lambda t: t.isoformat() + "Z") | references),
}
OPERATOR_NAMES = [*OPERATORS]
tests_of_any_operator = st.sampled_from(OPERATOR_NAMES).flatmap(
    lambda op: st.tuples(st.just(op), st.booleans().flatmap(lambda fit: FITTING.get(op, operands) if fit else operands))
)  # half of the operands fit the operator's shape (one_of would flatten them into one share in ten)


def _bundle_of(condition: dict[str, Any]) -> Bundle | None:
    """The compiled bundle of one segment, or None when validation refuses the condition."""
    data = {"version": 1, "segments": {"s": {"when": condition}}, "placements": {"slot": {"default": "plain"}}}
    try:
        rules = RulesFile.model_validate(data)
        content = [("c.yaml", PLAIN_CONTENT)]
        blocks = partial(compile_blocks, content_files=content, locale_files=[], templates=[])
        return compile_bundle([("r.yaml", rules)], content, "r", blocks=blocks)
    except (ValidationError, BundleError):
        return None


PLAIN_CONTENT = ContentFile.model_validate({"version": 1, "variants": {"plain": {"content": {}}}})


@settings(max_examples=1000, deadline=None)
@given(
    tests_of_any_operator,
    st.sampled_from([None, True, False]),
    st.booleans(),
    st.lists(odd_values, min_size=1, max_size=4),
    odd_values,
)
def test_whatever_validates_evaluates_to_a_bool(
    test: tuple[str, Any], ignore_case: bool | None, negate: bool, values: list[Any], other: Any
) -> None:
    op, operand = test
    condition: dict[str, Any] = {"attr": SUBJECT, op: operand}
    if ignore_case is not None:
        condition["ignore_case"] = ignore_case
    bundle = _bundle_of({"not": condition} if negate else condition)
    if bundle is None:
        return
    for value in values:
        attrs = {SUBJECT: value, OTHER: other if not isinstance(other, dict) else {"inner": other}}
        facts = Facts(attrs, {OTHER: other}, NOW.timestamp(), bundle.segments)
        assert type(facts.segment("s")) is bool


@settings(max_examples=300, deadline=None)
@given(versions | st.text(max_size=12) | st.sampled_from(ODD_TEXTS))
def test_the_schema_pattern_of_versions_agrees_with_the_parser(text: str) -> None:
    """Editors check versions with the schema's pattern; it must accept exactly what the parser reads."""
    schema_accepts = re.fullmatch(SEMVER_PATTERN, text) is not None and len(text) <= MAX_VERSION_CHARS
    assert schema_accepts == (parse_semver(text) is not None)


# -- negated tests (docs/adr/0004-negated-tests-and-lists.md) -----------------------------
# A negated test is true only for a value of the operand's type, like every other test:
# within that type eq and ne (in and not_in) split the values; outside it both are false.

scalars = st.text(max_size=4) | st.integers(-3, 3) | st.floats(-3, 3, allow_nan=False) | st.booleans()


def _kind(value: Any) -> str:
    return "number" if type(value) in (int, float) else type(value).__name__


def _holds(condition: dict[str, Any], value: Any) -> bool:
    bundle = _bundle_of(condition)
    assert bundle is not None, condition
    return Facts({SUBJECT: value}, {}, NOW.timestamp(), bundle.segments).segment("s")


@settings(max_examples=300, deadline=None)
@given(scalars, odd_values | scalars)
def test_eq_and_ne_split_the_values_of_one_type_and_refuse_the_rest(const: Any, value: Any) -> None:
    eq, ne = _holds({"attr": SUBJECT, "eq": const}, value), _holds({"attr": SUBJECT, "ne": const}, value)
    if _kind(value) == _kind(const) and value == value:  # NaN equals nothing, itself included
        assert eq != ne
    else:
        assert not ne
        assert not eq


@settings(max_examples=300, deadline=None)
@given(st.lists(scalars, min_size=1, max_size=4), odd_values | scalars)
def test_in_and_not_in_split_the_values_of_the_operands_types_and_refuse_the_rest(
    values: list[Any], value: Any
) -> None:
    inside = _holds({"attr": SUBJECT, "in": values}, value)
    outside = _holds({"attr": SUBJECT, "not_in": values}, value)
    if _kind(value) in {_kind(v) for v in values}:
        assert inside != outside
    else:
        assert not inside
        assert not outside
