"""The render cache keys a block on exactly what its template reads, and nothing a visitor can forge."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2 import DictLoader

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.rendering import RenderInputs
from service.render.cache import RenderCache
from service.render.reads import reads_of, simplify, value_at
from service.render.sandbox import TailorSandbox

ROOT = Path(__file__).parents[2]
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _reads(source: str) -> tuple[tuple[tuple[str, ...], ...], bool]:
    env = TailorSandbox(DictLoader({}), autoescape=lambda _: True)
    found, recommends = reads_of(env.parse(source))
    return simplify(found), recommends


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("{{ visitor.first_name }}", [("visitor", "first_name")]),
        ('{{ visitor["cart"]["total"] | price }}', [("visitor", "cart", "total")]),
        ("{{ visitor.first_name.upper() }}", [("visitor", "first_name", "upper")]),
        ("{{ visitor[key] }}", [("visitor",)]),  # a key known only at render time: the whole visitor
        ("{% for k, v in visitor.items() %}{{ k }}{% endfor %}", [("visitor",)]),  # the method, not a key
        ("{{ visitor.cart.get('total') }}", [("visitor", "cart")]),
        ("{{ visitor.a }}{{ visitor }}", [("visitor",)]),
        ("{{ 'vip' in segments }}{{ context.page }}{{ today }}", [("context", "page"), ("segments",), ("today",)]),
        ("{{ content.headline }}{{ params.x }}", []),  # fixed per variant: part of the variant key
        ("{% set visitor = 1 %}{{ visitor }}", [("visitor",)]),  # shadowing reads more, never less
    ],
)
def test_reads_of_a_template(source: str, reads: list[tuple[str, ...]]) -> None:
    assert _reads(source) == (tuple(sorted(reads)), False)


def test_recommend_is_noticed() -> None:
    assert _reads("{% for p in recommend(3) %}{{ p.name }}{% endfor %}")[1]


@pytest.mark.parametrize(
    ("roots", "path", "value"),
    [
        ({"visitor": {"a": {"b": 1}}}, ("visitor", "a", "b"), [1, 1]),
        ({"visitor": {"a": None}}, ("visitor", "a"), [1, None]),
        ({"visitor": {}}, ("visitor", "a"), [0]),  # missing is not None: `default` treats them differently
        ({"visitor": {"a": "Anna"}}, ("visitor", "a", "upper"), [1, "Anna"]),  # stops where mappings stop
        ({}, ("today",), [0]),
    ],
)
def test_value_at(roots: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    assert value_at(roots, path) == value


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(ROOT)


def _render(bundle: Bundle, cache: RenderCache, variant: str, attributes: dict[str, Any], **context: Any) -> str:
    inputs = RenderInputs(attributes, context, [], NOW, personalization=True)
    return bundle.blocks.render(variant, inputs, cache).html


def test_visitors_who_differ_only_in_what_the_template_ignores_share_an_entry(bundle: Bundle) -> None:
    cache = RenderCache()
    first = _render(bundle, cache, "hero_default", {"first_name": "Anna", "orders_12m": 6, "email": "a@x"})
    second = _render(bundle, cache, "hero_default", {"first_name": "Anna", "spend_12m": 10})
    assert first == second
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_what_the_template_reads_separates_entries(bundle: Bundle) -> None:
    cache = RenderCache()
    anna = _render(bundle, cache, "hero_default", {"first_name": "Anna"})
    ben = _render(bundle, cache, "hero_default", {"first_name": "Ben"})
    nobody = _render(bundle, cache, "hero_default", {})
    none = _render(bundle, cache, "hero_default", {"first_name": None})
    german = _render(bundle, cache, "hero_default", {"first_name": "Anna"}, locale="de")
    assert len({anna, ben, nobody, german}) == 4
    assert none == nobody  # default(..., true) treats both alike, but the key need not know that
    assert (cache.hits, cache.misses) == (0, 5)


def test_recommendations_are_keyed_on_the_affinities(bundle: Bundle) -> None:
    cache = RenderCache()
    music = _render(bundle, cache, "recs_for_you", {"category_views": {"music": 3}})
    books = _render(bundle, cache, "recs_for_you", {"category_views": {"books": 3}})
    bought = _render(bundle, cache, "recs_for_you", {"category_views": {"music": 3}, "purchased_products": ["p-2002"]})
    again = _render(bundle, cache, "recs_for_you", {"category_views": {"music": 3}, "first_name": "X"})
    assert len({music, books, bought}) == 3
    assert again == music
    assert cache.hits == 1


def test_the_revision_is_part_of_the_key(bundle: Bundle, tmp_path: Path) -> None:
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    hero = tmp_path / "content" / "templates" / "hero.html"
    hero.write_text(hero.read_text().replace("tl-hero__greeting", "tl-hero__hello"))
    changed = load_bundle(tmp_path)
    cache = RenderCache()
    before = _render(bundle, cache, "hero_default", {"first_name": "Anna"})
    after = _render(changed, cache, "hero_default", {"first_name": "Anna"})
    assert "tl-hero__hello" in after
    assert "tl-hero__hello" not in before


def test_without_consent_attributes_are_not_read(bundle: Bundle) -> None:
    cache = RenderCache()
    inputs = RenderInputs({"first_name": "Anna"}, {}, [], NOW, personalization=False)
    assert "Hi there" in bundle.blocks.render("hero_default", inputs, cache).html
    assert "Hi there" in _render(bundle, cache, "hero_default", {})
    assert cache.hits == 1  # the same as a visitor with no attributes


def test_a_zero_sized_cache_is_off() -> None:
    cache = RenderCache(0)
    assert cache.get(("k",)) is None
    assert len(cache) == 0
