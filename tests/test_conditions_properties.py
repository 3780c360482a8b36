"""Property tests of compiled conditions: any JSON a client can send is evaluated, never raised on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.loader import load_bundle
from service.core.conditions import Facts
from service.core.decide import DecisionRequest, decide

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
