"""The render cache keeps to its budget in real bytes, measured with tracemalloc on real rendered blocks."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from service.bundle.loader import load_bundle
from service.core.rendering import RenderInputs
from service.render.cache import RenderCache
from service.render.page import Tally, render_variant

ROOT = Path(__file__).parents[1]
BUDGET = 1024 * 1024
FILL = 200  # recipients, four blocks each: about twice what the budget holds
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
NAMES = ("Anna", "Ben", "Chiara", "Dmitri", "Emre", "Fatima", "Greta", "Hiro", "Ines", "Jörg", "Kateřina", "Łukasz")


def _inputs(i: int) -> RenderInputs:
    attributes = {
        "first_name": f"{NAMES[i % len(NAMES)]}{i}",
        "cart": {"total": round(10 + i * 0.37, 2), "items": 1 + i % 5},
        "category_views": {("music", "home", "books")[i % 3]: 1 + i % 4},
    }
    locale = ("en", "de-DE", "fr-FR")[i % 3]
    return RenderInputs(attributes, {"locale": locale, "currency": "EUR"}, ["cart_abandoner"], NOW, True)


def _fill(cache: RenderCache, count: int) -> None:
    tally = Tally()
    bundle = load_bundle(ROOT)
    for i in range(count):
        for variant in ("email_cart_discount", "email_cart_reminder", "hero_vip", "recs_for_you"):
            render_variant(bundle, variant, _inputs(i), cache=cache, tally=tally)


def test_a_full_cache_holds_about_its_budget_in_real_bytes() -> None:
    _fill(RenderCache(0), FILL)  # the same renders uncached first: Jinja's and Babel's own caches fill here
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = RenderCache(BUDGET)
        _fill(cache, FILL)  # more than fits: entries are evicted
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(
        f"\nrender cache of {BUDGET} bytes holds {len(cache)} blocks in {held} bytes "
        f"({held / BUDGET:.2f} of the budget)"
    )
    assert len(cache) < FILL * 4  # it is full and evicting
    assert 0.7 * BUDGET <= held <= 1.05 * BUDGET
