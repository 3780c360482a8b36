"""The attribute limits (count, depth, text length) of a page view or each batch recipient.

A batch checks every recipient's attributes before the first result streams out, so the check
first walks without building the paths it would name (``_fits``); only a refused value is walked
again to say where. Both walks must agree on every tree, refused or not.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.errors import RequestError
from service.http import mapping
from service.http.mapping import check_attributes
from service.settings import Settings

LIMITS = Settings(max_attributes=12, max_attribute_depth=3, max_text_length=6)
leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
trees = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


def _slow_answer(attributes: dict[str, Any]) -> tuple[str, str] | None:
    try:
        mapping._check(attributes, "$.visitor.attributes", 1, [LIMITS.max_attributes], LIMITS)
    except RequestError as error:
        return error.where, error.message
    return None


def _answer(attributes: dict[str, Any]) -> tuple[str, str] | None:
    try:
        check_attributes(attributes, LIMITS)
    except RequestError as error:
        return error.where, error.message
    return None


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=3), trees, max_size=5))
def test_the_quick_walk_refuses_exactly_what_the_full_one_does(attributes: dict[str, Any]) -> None:
    assert _answer(attributes) == _slow_answer(attributes)


@pytest.mark.parametrize(
    ("attributes", "where"),
    [
        ({"a": "x" * 7}, "$.visitor.attributes.a"),
        ({"a": [1, {"b": [[1]]}]}, "$.visitor.attributes.a[1].b"),  # the fourth level
        ({f"k{n}": n for n in range(13)}, "$.visitor.attributes"),
        ({"a": [[], {"b": "y" * 9}]}, "$.visitor.attributes.a[1].b"),
    ],
)
def test_a_refused_value_is_named_where_it_is(attributes: dict[str, Any], where: str) -> None:
    refused = _answer(attributes)
    assert refused is not None
    assert refused[0] == where


def test_values_within_every_limit_pass() -> None:
    assert _answer({"a": "x" * 6, "b": [1, {"c": 2}], "d": None}) is None
