"""Recommendations: ranked by category affinity, purchases left out, ties by popularity; prices in one currency."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.rendering import RenderInputs
from service.core.spec import ContentFile, LocaleFile, Product, Recommendations
from service.render.blocks import CompiledBlocks, TemplateFile, compile_blocks
from service.render.catalog import MAX_RECOMMENDATIONS, Catalog
from service.render.locales import next_weekday

NOW = datetime(2026, 12, 1, tzinfo=UTC)


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
    "USD",
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
        "USD",
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
    catalog = Catalog(
        {"m": Product(name="Mug", names={"de": "Tasse"}, category="home", price=3, url="/m")}, None, "USD"
    )
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


_CATEGORIES = {"a1": "audio", "a2": "audio", "b1": "books", "b2": "books", "h1": "home"}
_POPULARITY = {"a1": 90, "a2": 50, "b1": 80, "b2": 80, "h1": 99}
_COUNTS = st.dictionaries(st.sampled_from(["audio", "books", "home", "toys"]), st.integers(0, 50))


@given(
    views=_COUNTS,
    purchases=_COUNTS,
    bought=st.lists(st.sampled_from(sorted(_CATEGORIES)), unique=True),
    limit=st.integers(0, 7),
)
def test_the_ranking_is_its_definition(
    views: dict[str, int], purchases: dict[str, int], bought: list[str], limit: int
) -> None:
    def score(pid: str) -> int:
        return views.get(_CATEGORIES[pid], 0) + 3 * purchases.get(_CATEGORIES[pid], 0)

    # the module docstring's order: affinity, then popularity, then the product id
    expected = sorted((pid for pid in _CATEGORIES if pid not in bought), key=lambda p: (-score(p), -_POPULARITY[p], p))
    attributes = {"category_views": views, "category_purchases": purchases, "purchased_products": bought}
    assert _ids(attributes, limit) == expected[:limit]


def _recommending(source: str) -> CompiledBlocks:
    content = ContentFile.model_validate(
        {
            "version": 1,
            "localization": {"default_currency": "USD"},
            "products": {"m": {"name": "Mug", "category": "home", "price": 32, "url": "/m"}},
            "variants": {"v": {"render": {"template": "t.html", "fallback": "-"}}},
        }
    )
    locale = LocaleFile.model_validate({"version": 1, "messages": {}})
    template = TemplateFile("t.html", "content/templates/t.html", source)
    return compile_blocks("r", [("content/x.yaml", content)], [("content/locales/en.yaml", locale)], [template])


@pytest.mark.parametrize(
    ("source", "context", "status", "html"),
    [
        ("{{ recommend(1)[0].price | price }}", {}, "rendered", "$32.00"),
        ("{{ recommend(1)[0].price | price }}", {"currency": "EUR"}, "rendered", "$32.00"),
        ("{{ recommend(1)[0].price | price }}", {"currency": "EUR", "locale": "de"}, "rendered", "32,00\u00a0$"),
        ('{{ recommend(1)[0].price | price("USD") }}', {"currency": "EUR"}, "rendered", "$32.00"),
        ('{{ recommend(1)[0].price | price("EUR") }}', {}, "fallback", "-"),
        ("{{ recommend(1)[0].currency }}", {"currency": "EUR"}, "rendered", "USD"),
        ("{{ (recommend(1)[0].price * 2) | price }}", {"currency": "EUR"}, "rendered", "€64.00"),
        ("{{ 5 | price }}", {"currency": "EUR"}, "rendered", "€5.00"),
        ("{{ recommend(1)[0].price }} {{ recommend(1) | tojson }}", {}, "rendered", '32.0 [{"category": "home", '),
    ],
)
def test_catalog_prices_print_in_the_catalog_currency_and_are_never_converted(
    source: str, context: dict[str, str], status: str, html: str
) -> None:
    rendered = _recommending(source).render("v", RenderInputs({}, context, [], NOW, True))
    assert rendered.status == status, rendered.detail
    assert rendered.html.startswith(html)
    if status == "fallback":
        assert rendered.detail == "ValueError: this price is in USD; Tailor does not convert it to EUR"


@pytest.mark.parametrize(
    ("day", "weekday", "expected"),
    [
        (date(2026, 11, 22), "sunday", date(2026, 11, 29)),  # a Sunday: the next one
        (date(2026, 12, 1), "sunday", date(2026, 12, 6)),
        (date(2026, 12, 1), "Wednesday", date(2026, 12, 2)),
        (date(2026, 12, 1), "tuesday", date(2026, 12, 8)),
        ("2026-12-31T23:00:00", "friday", date(2027, 1, 1)),
    ],
)
def test_next_weekday_is_the_first_one_after_the_day(day: date | str, weekday: str, expected: date) -> None:
    assert next_weekday(day, weekday) == expected


def test_next_weekday_refuses_what_is_not_a_weekday() -> None:
    with pytest.raises(ValueError, match="weekdays are monday, tuesday"):
        next_weekday(date(2026, 12, 1), "sun")
