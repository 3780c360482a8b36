"""Benchmarks of rendered blocks (pytest-benchmark): page hero, MJML email, recommendations, decide + render.

Run them with ``make bench``, or::

    .venv/bin/pytest tests/bench/test_bench_render.py --benchmark-enable --benchmark-only \
        --benchmark-columns=min,median,mean,ops,rounds

In a normal test run (``--benchmark-disable``) each benchmark runs its function once and
checks what it rendered: the recipient's greeting and name, the cart total in the
recipient's locale and currency, the products left out. No test asserts a time.

Every benchmark cycles through the same 1000 cart-reminder recipients (tests/bench/emails.py)
on the example bundle at the repository root, each with its own locale, currency and
attributes. Three ways to meet the render cache:

- uncached: ``cache=None``, the template renders on every call;
- miss: ``RenderCache(0)``, a cache that keeps nothing (the server with its render cache set to 0):
  the key is built and looked up, then the template renders: what a miss costs the server;
- cached: a ``RenderCache`` warmed with all 1000 recipients (and large enough to keep them),
  so every call is a hit;
- plain Jinja: the same compiled template source in a plain ``jinja2.Environment`` (no sandbox,
  no budgets, no output cap, no cache) with the same settings, globals and filters, rendering the
  same HTML: what the sandbox and Tailor's render add, block by block.

The figures and how to read them are in docs/BENCHMARKS.md ("Rendered blocks").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import pytest
from babel.numbers import format_currency

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.decide import Decision, DecisionRequest, decide
from service.core.rendering import Rendered, RenderInputs
from service.render import blocks as tailor_blocks
from service.render.cache import RenderCache
from service.render.page import Tally, inputs_for, render_decision, render_variant
from tests.bench import emails

ROOT = Path(__file__).parents[2]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # cart_email_test and hero_layout_test are running
RECIPIENTS = 1000
SEED = 2026
PAGE = ("home_hero", "promo_banner", "recommended_products")  # the page's placements, not the email's
GREETING = {"en": ("Hi {}", "there"), "de": ("Hallo {}", "zusammen")}
NO_CART = {"en": "Your cart is waiting", "de": "Ihr Warenkorb wartet"}
CHECKED = 50  # recipients checked after each benchmark, outside the timing
ROOMY = 256 * 1024 * 1024  # a cache that holds every recipient's blocks, whatever the server's default size

T = TypeVar("T")
Recipient = dict[str, Any]
Prepared = tuple[Recipient, RenderInputs]
PageView = tuple[Recipient, DecisionRequest]


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(ROOT)


@pytest.fixture(scope="module")
def prepared(bundle: Bundle) -> list[Prepared]:
    """The recipients with their render inputs (segments decided once, outside the timing)."""
    out = []
    for recipient in emails.recipients(RECIPIENTS, SEED, NOW):
        request = emails.to_request(recipient, NOW)
        out.append((recipient, inputs_for(request, decide(bundle, request).segments)))
    blocks = bundle.blocks
    for _, inputs in out[:20]:  # the first render in a locale loads Babel's data: not part of any timing
        for variant in (v for v in bundle.variants if blocks.has_block(v)):
            render_variant(bundle, variant, inputs, cache=None, tally=Tally())
    return out


# -- what a right block contains -------------------------------------------------------------


def greeting(recipient: Mapping[str, Any]) -> str:
    """``Hi Zoë`` or ``Hallo zusammen``: the name only with consent, and only if the shop knows it."""
    text, nobody = GREETING[emails.context_of(recipient)["locale"]]
    name = recipient["attributes"].get("first_name") if recipient["consent"]["personalization"] else None
    return text.format(name or nobody)


def cart_total(recipient: Mapping[str, Any]) -> str | None:
    """The cart total as Babel formats it for the recipient; None without consent (no attributes, no cart)."""
    context = emails.context_of(recipient)
    if not recipient["consent"]["personalization"]:
        return None
    return format_currency(recipient["attributes"]["cart"]["total"], context["currency"], locale=context["locale"])


def check_hero(recipient: Recipient, block: Rendered) -> None:
    assert block.status == "rendered", block.error
    assert greeting(recipient) in block.html
    assert block.html.lstrip().startswith('<section class="tl-hero"')


def check_email(recipient: Recipient, block: Rendered) -> None:
    assert block.status == "rendered", block.error
    assert greeting(recipient) in block.html
    total = cart_total(recipient)
    if total is None:  # no cart to name: the email says the cart waits, without a made-up total
        assert NO_CART[emails.context_of(recipient)["locale"]] in block.html
    else:
        assert total in block.html
    assert block.html.count("https://shop.example/p/") == 3  # recommend(3)
    assert "{{" not in block.html
    assert "{%" not in block.html


def check_recommendations(recipient: Recipient, block: Rendered) -> None:
    assert block.status == "rendered", block.error
    shown = re.findall(r'data-product="([^"]+)"', block.html)
    assert len(shown) == 4
    assert len(set(shown)) == 4
    if recipient["consent"]["personalization"]:
        assert not set(shown) & set(recipient["attributes"]["purchased_products"])


def bench_block(
    benchmark: Any,
    bundle: Bundle,
    prepared: list[Prepared],
    variant: str,
    cache: RenderCache | None,
    check: Callable[[Recipient, Rendered], None],
) -> None:
    """Render ``variant`` for the next recipient on every call; check the last one and a full cycle."""
    tally = Tally()
    cycle = itertools.cycle(prepared)

    def one() -> tuple[Recipient, Rendered]:
        recipient, inputs = next(cycle)
        return recipient, render_variant(bundle, variant, inputs, cache=cache, tally=tally)

    recipient, block = benchmark(one)

    check(recipient, block)
    assert tally.fallbacks == 0
    for recipient, inputs in prepared[:CHECKED]:  # not only the last one
        check(recipient, render_variant(bundle, variant, inputs, cache=cache, tally=tally))


def warmed(bundle: Bundle, prepared: list[Prepared], *variants: str) -> RenderCache:
    cache = RenderCache(ROOMY)
    for variant in variants:
        for _, inputs in prepared:
            render_variant(bundle, variant, inputs, cache=cache, tally=Tally())
    return cache


def timed_only(benchmark: Any, items: list[T]) -> list[T]:
    """All the recipients when timing; the checked ones when benchmarks are off (warming the rest is slow)."""
    return items[:CHECKED] if benchmark.disabled else items


def bench_cached(
    benchmark: Any,
    bundle: Bundle,
    prepared: list[Prepared],
    variant: str,
    check: Callable[[Recipient, Rendered], None],
) -> None:
    prepared = timed_only(benchmark, prepared)
    cache = warmed(bundle, prepared, variant)
    misses = cache.misses
    bench_block(benchmark, bundle, prepared, variant, cache, check)
    assert cache.misses == misses  # every call was a hit
    assert cache.hits > 0


# -- plain Jinja on the same templates ---------------------------------------------------------

PlainRender = Callable[[str, RenderInputs], str]


@pytest.fixture(scope="module")
def plain_jinja(bundle: Bundle) -> PlainRender:
    """Render a variant's template with plain Jinja: the same source, settings, globals and filters."""
    compiled = bundle.blocks
    sandboxed = next(iter(compiled.blocks.values())).template.environment  # type: ignore[attr-defined]
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: sandboxed.loader.get_source(sandboxed, name)),
        autoescape=lambda name: (name or "").endswith(tailor_blocks.AUTOESCAPED),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
    )
    env.globals.update({"t": sandboxed.globals["t"], "recommend": sandboxed.globals["recommend"]})
    for name in ("price", "number", "percent", "date", "next_weekday"):
        env.filters[name] = getattr(sandboxed.filters[name], "__wrapped__", sandboxed.filters[name])
    locales = compiled.locales  # type: ignore[attr-defined]

    def render(variant: str, inputs: RenderInputs) -> str:
        block = compiled.blocks[variant]  # type: ignore[attr-defined]
        context = inputs.context
        choice = locales.choose(context.get("locale"), context.get("currency"))
        visitor = inputs.attributes if inputs.personalization else {}
        roots = {"visitor": visitor, "context": context, "segments": inputs.segments, "today": inputs.now.date()}
        token = tailor_blocks._CURRENT.set(tailor_blocks._Current(visitor, choice))
        try:
            variables = {**roots, "content": block.content, "params": block.params, "variant": block.variant}
            return env.get_template(block.template.name).render(variables, locale=choice.name, language=choice.language)
        finally:
            tailor_blocks._CURRENT.reset(token)

    return render


def bench_plain(benchmark: Any, bundle: Bundle, prepared: list[Prepared], plain: PlainRender, variant: str) -> None:
    cycle = itertools.cycle(prepared)

    def one() -> str:
        return plain(variant, next(cycle)[1])

    benchmark(one)
    for _, inputs in prepared[:CHECKED]:  # the same HTML as Tailor renders
        assert plain(variant, inputs) == render_variant(bundle, variant, inputs, cache=None, tally=Tally()).html


@pytest.mark.benchmark(group="render: hero (page)")
def test_bench_hero_plain_jinja(
    benchmark: Any, bundle: Bundle, prepared: list[Prepared], plain_jinja: PlainRender
) -> None:
    bench_plain(benchmark, bundle, prepared, plain_jinja, "hero_default")


@pytest.mark.benchmark(group="render: cart email (MJML)")
def test_bench_email_plain_jinja(
    benchmark: Any, bundle: Bundle, prepared: list[Prepared], plain_jinja: PlainRender
) -> None:
    bench_plain(benchmark, bundle, prepared, plain_jinja, "email_cart_discount")


@pytest.mark.benchmark(group="render: recommendations (page)")
def test_bench_recommendations_plain_jinja(
    benchmark: Any, bundle: Bundle, prepared: list[Prepared], plain_jinja: PlainRender
) -> None:
    bench_plain(benchmark, bundle, prepared, plain_jinja, "recs_for_you")


# -- the page hero ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="render: hero (page)")
def test_bench_hero_uncached(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    bench_block(benchmark, bundle, prepared, "hero_default", None, check_hero)


@pytest.mark.benchmark(group="render: hero (page)")
def test_bench_hero_miss(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    cache = RenderCache(0)
    bench_block(benchmark, bundle, prepared, "hero_default", cache, check_hero)
    assert cache.hits == 0


@pytest.mark.benchmark(group="render: hero (page)")
def test_bench_hero_cached(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    bench_cached(benchmark, bundle, prepared, "hero_default", check_hero)


# -- the MJML cart email ----------------------------------------------------------------------


@pytest.mark.benchmark(group="render: cart email (MJML)")
def test_bench_email_uncached(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    bench_block(benchmark, bundle, prepared, "email_cart_discount", None, check_email)


@pytest.mark.benchmark(group="render: cart email (MJML)")
def test_bench_email_miss(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    cache = RenderCache(0)
    bench_block(benchmark, bundle, prepared, "email_cart_discount", cache, check_email)
    assert cache.hits == 0


@pytest.mark.benchmark(group="render: cart email (MJML)")
def test_bench_email_cached(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    bench_cached(benchmark, bundle, prepared, "email_cart_discount", check_email)


def test_email_discount_and_reminder_say_different_things(bundle: Bundle, prepared: list[Prepared]) -> None:
    recipient, inputs = next(p for p in prepared if emails.context_of(p[0])["locale"] == "en")
    discount = render_variant(bundle, "email_cart_discount", inputs, cache=None, tally=Tally())
    reminder = render_variant(bundle, "email_cart_reminder", inputs, cache=None, tally=Tally())
    assert "10% off is yours until Sunday, November 29, 2026" in discount.html
    assert "Shipping is free until Sunday, November 29, 2026" in reminder.html
    assert "https://shop.example/cart?code=CART10" in discount.html
    check_email(recipient, reminder)


# -- recommendations ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="render: recommendations (page)")
def test_bench_recommendations_uncached(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    bench_block(benchmark, bundle, prepared, "recs_for_you", None, check_recommendations)


@pytest.mark.benchmark(group="render: recommendations (page)")
def test_bench_recommendations_cached(benchmark: Any, bundle: Bundle, prepared: list[Prepared]) -> None:
    bench_cached(benchmark, bundle, prepared, "recs_for_you", check_recommendations)


# -- what render: true adds to a decision ------------------------------------------------------


@pytest.fixture(scope="module")
def page_requests(prepared: list[Prepared]) -> list[PageView]:
    """The same recipients on a page view: the three page placements."""
    return [(recipient, emails.to_request(recipient, NOW, PAGE)) for recipient, _ in prepared]


def check_page(bundle: Bundle, recipient: Recipient, decision: Decision, blocks: Mapping[str, Rendered]) -> None:
    with_template = {
        name
        for name, placed in decision.placements.items()
        if placed.variant is not None and bundle.blocks.has_block(placed.variant)
    }
    assert set(blocks) == with_template
    assert {"home_hero", "recommended_products"} <= with_template
    assert all(block.status == "rendered" for block in blocks.values())
    assert greeting(recipient) in blocks["home_hero"].html


def bench_page(benchmark: Any, bundle: Bundle, requests: list[PageView], cache: RenderCache | None) -> None:
    cycle = itertools.cycle(requests)

    def one() -> tuple[Recipient, Decision, Mapping[str, Rendered]]:
        recipient, request = next(cycle)
        decision = decide(bundle, request)
        blocks = render_decision(bundle, decision, inputs_for(request, decision.segments), cache=cache, tally=Tally())
        return recipient, decision, blocks

    recipient, decision, blocks = benchmark(one)
    check_page(bundle, recipient, decision, blocks)
    for recipient, request in requests[:CHECKED]:
        decision = decide(bundle, request)
        blocks = render_decision(bundle, decision, inputs_for(request, decision.segments), cache=cache, tally=Tally())
        check_page(bundle, recipient, decision, blocks)


@pytest.mark.benchmark(group="decide, with and without render")
def test_bench_page_decide_only(benchmark: Any, bundle: Bundle, page_requests: list[PageView]) -> None:
    cycle = itertools.cycle(page_requests)

    def one() -> tuple[Recipient, Decision]:
        recipient, request = next(cycle)
        return recipient, decide(bundle, request)

    recipient, decision = benchmark(one)

    assert set(decision.placements) == set(PAGE)
    assert decision.placements["recommended_products"].variant == "recs_for_you"
    assert recipient["id"].startswith("c-")


@pytest.mark.benchmark(group="decide, with and without render")
def test_bench_page_decide_render_uncached(benchmark: Any, bundle: Bundle, page_requests: list[PageView]) -> None:
    bench_page(benchmark, bundle, page_requests, None)


@pytest.mark.benchmark(group="decide, with and without render")
def test_bench_page_decide_render_cached(benchmark: Any, bundle: Bundle, page_requests: list[PageView]) -> None:
    page_requests = timed_only(benchmark, page_requests)
    cache = RenderCache(ROOMY)
    for _, request in page_requests:  # warm: every recipient's blocks are in the cache
        decision = decide(bundle, request)
        render_decision(bundle, decision, inputs_for(request, decision.segments), cache=cache, tally=Tally())
    misses = cache.misses
    bench_page(benchmark, bundle, page_requests, cache)
    assert cache.misses == misses
