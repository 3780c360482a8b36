"""Recommendations: ranked by category affinity, purchases left out, ties by popularity."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.spec import Product, Recommendations
from service.render.catalog import MAX_RECOMMENDATIONS, Catalog


def _product(category: str, popularity: float, name: str = "p") -> Product:
    return Product(name=name, category=category, price=10.0, url="/p", popularity=popularity)


CATALOG = Catalog(
    {
        "a1": _product("audio", 90),
        "a2": _product("audio", 50),
        "b1": _product("books", 80),
        "b2": _product("books", 80),  # ties b1 on popularity: the id decides
        "h1": _product("home", 99, name="Mug"),
    },
    Recommendations(),
)


def _ids(attributes: dict[str, Any], limit: int = 10) -> list[str]:
    return [p["id"] for p in CATALOG.recommend(attributes, limit, "en")]


def test_without_affinities_the_most_popular_come_first() -> None:
    assert _ids({}) == ["h1", "a1", "b1", "b2", "a2"]


def test_views_rank_a_category_first() -> None:
    assert _ids({"category_views": {"books": 2}}) == ["b1", "b2", "h1", "a1", "a2"]


def test_a_purchase_weighs_three_views() -> None:
    both = {"category_views": {"books": 2}, "category_purchases": {"audio": 1}}
    assert _ids(both)[:2] == ["a1", "a2"]  # 3 for audio beats 2 for books
    tied = {"category_views": {"books": 3}, "category_purchases": {"audio": 1}}  # 3 each: popularity decides
    assert _ids(tied) == ["a1", "b1", "b2", "a2", "h1"]


def test_bought_products_are_left_out() -> None:
    assert _ids({"category_views": {"audio": 5}, "purchased_products": ["a1", "h1"]}) == ["a2", "b1", "b2"]


def test_weights_and_attribute_names_come_from_the_catalog_file() -> None:
    catalog = Catalog(
        {"x": _product("audio", 1), "y": _product("books", 2)},
        Recommendations(views_attribute="seen.categories", view_weight=0, purchase_weight=1),
    )
    assert [p["id"] for p in catalog.recommend({"seen": {"categories": {"audio": 9}}}, 5, "en")] == ["y", "x"]
    assert [p["id"] for p in catalog.recommend({"category_purchases": {"audio": 1}}, 5, "en")] == ["x", "y"]


@pytest.mark.parametrize(
    "attributes",
    [
        {"category_views": "music"},
        {"category_views": {"audio": "many"}},
        {"category_views": {"audio": -4}},
        {"category_views": {"audio": True}},
        {"category_views": {"audio": 10**400}},
        {"purchased_products": "a1"},
        {"purchased_products": [{"id": "a1"}, None, 3]},
    ],
)
def test_odd_input_never_fails(attributes: dict[str, Any]) -> None:
    assert len(_ids(attributes)) >= 4


def test_limit_is_bounded() -> None:
    assert _ids({}, limit=0) == []
    assert _ids({}, limit=-3) == []
    assert len(_ids({}, limit=10**9)) == 5
    assert MAX_RECOMMENDATIONS == 50


def test_names_are_translated_by_language_then_by_its_base() -> None:
    catalog = Catalog({"m": Product(name="Mug", names={"de": "Tasse"}, category="home", price=3, url="/m")}, None)
    assert catalog.recommend({}, 1, "de_AT")[0]["name"] == "Tasse"
    assert catalog.recommend({}, 1, "fr")[0]["name"] == "Mug"


@given(
    views=st.dictionaries(st.sampled_from(["audio", "books", "home", "toys"]), st.integers(0, 50)),
    bought=st.lists(st.sampled_from(["a1", "a2", "b1", "b2", "h1"]), unique=True),
)
def test_order_follows_scores_and_never_repeats(views: dict[str, int], bought: list[str]) -> None:
    ids = _ids({"category_views": views, "purchased_products": bought})
    assert len(ids) == len(set(ids)) == 5 - len(bought)
    scores = [views.get({"a": "audio", "b": "books", "h": "home"}[i[0]], 0) for i in ids]
    assert scores == sorted(scores, reverse=True)
