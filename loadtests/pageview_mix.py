"""A realistic mix of /v1/decide bodies for the page-view load, generated from a seed.

Each body is one page view of one kind of visitor, with the attributes a storefront
would send and that the example bundle reads (rules/segments.yaml; the models in models/
read last_purchase_at, orders_total and spend_total). Times are written
relative to ``now``, as a storefront would send them, so the same seed gives the same
mix of visitors on any day: a lapsed customer stays lapsed.

The same seed gives the same bodies in the same order; the Lua script cycles through them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

EU = ("DE", "FR", "IT", "ES", "NL", "PL", "SE", "AT", "BE", "IE")
ELSEWHERE = ("US", "GB", "CH", "NO", "CA", "AU", "JP")
LOCALES = {"DE": "de-DE", "AT": "de-AT", "FR": "fr-FR", "BE": "fr-BE", "IT": "it-IT", "ES": "es-ES", "NL": "nl-NL"}
PAGES = ("/", "/", "/", "/collections/new", "/product/4711", "/cart", "/electronics", "/account", "/search?q=shoes")
APP_VERSIONS = ("3.9.2", "4.0.0", "4.1.3", "4.2.0")
EXPLAIN_EVERY = 100  # 1 % of the requests ask for the trace, as a debugging storefront would


@dataclass(frozen=True, slots=True)
class PageView:
    persona: str
    body: dict[str, Any]


class _Maker:
    """Random attribute values for one generated page view."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now

    def ago(self, days_low: float, days_high: float) -> str:
        """An RFC 3339 time between ``days_low`` and ``days_high`` days before now."""
        when = self.now - timedelta(days=self.rng.uniform(days_low, days_high))
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def visitor_id(self) -> str:
        return f"v-{self.rng.getrandbits(64):016x}"

    def country(self) -> str:
        return self.rng.choice(EU + ELSEWHERE)

    def money(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 2)


def _anonymous(m: _Maker) -> dict[str, Any]:
    attributes: dict[str, Any] = {"sessions_7d": m.rng.randint(1, 2)}
    if m.rng.random() < 0.7:
        attributes["country"] = m.country()
    if m.rng.random() < 0.2:
        attributes["app_version"] = m.rng.choice(APP_VERSIONS)
    # 3 % arrive before the storefront has set its cookie: no id, so no experiment or holdout bucket
    visitor_id = None if m.rng.random() < 0.03 else m.visitor_id()
    return {"id": visitor_id, "attributes": attributes, "consent": {"personalization": True}}


def _vip(m: _Maker) -> dict[str, Any]:
    orders_12m = m.rng.randint(5, 25)
    attributes: dict[str, Any] = {
        "country": m.country(),
        "orders_12m": orders_12m,
        "spend_12m": m.money(500, 6000),
        "orders_total": orders_12m + m.rng.randint(0, 30),
        "spend_total": m.money(6000, 20000),
        "first_purchase_at": m.ago(400, 2000),
        "last_purchase_at": m.ago(1, 60),
        "sessions_7d": m.rng.randint(1, 8),
    }
    if m.rng.random() < 0.3:
        attributes["cart"] = {"items": m.rng.randint(1, 4), "value": m.money(20, 400), "updated_at": m.ago(0, 2)}
    return {"id": m.visitor_id(), "attributes": attributes, "consent": {"personalization": True, "analytics": True}}


def _cart_abandoner(m: _Maker) -> dict[str, Any]:
    cart_days = m.rng.uniform(1.1, 14)
    attributes: dict[str, Any] = {
        "country": m.country(),
        "cart": {"items": m.rng.randint(1, 6), "value": m.money(15, 300), "updated_at": m.ago(cart_days, cart_days)},
        "sessions_7d": m.rng.randint(1, 4),
    }
    if m.rng.random() < 0.6:  # a returning customer whose last order is older than the cart
        attributes["orders_total"] = m.rng.randint(1, 6)
        attributes["spend_total"] = m.money(20, 600)
        attributes["last_purchase_at"] = m.ago(cart_days + 1, cart_days + 120)
    return {"id": m.visitor_id(), "attributes": attributes, "consent": {"personalization": True, "analytics": True}}


def _lapsed(m: _Maker) -> dict[str, Any]:
    attributes = {
        "country": m.country(),
        "orders_total": m.rng.randint(1, 4),  # lapsed customers are mostly small, occasional buyers
        "spend_total": m.money(15, 400),
        "first_purchase_at": m.ago(900, 2000),
        "last_purchase_at": m.ago(181, 900),
        "sessions_7d": 1,
    }
    return {"id": m.visitor_id(), "attributes": attributes, "consent": {"personalization": True}}


def _eu_visitor(m: _Maker) -> dict[str, Any]:
    attributes = {"country": m.rng.choice(EU), "sessions_7d": m.rng.randint(1, 3)}
    return {"id": m.visitor_id(), "attributes": attributes, "consent": {"personalization": True}}


def _electronics_fan(m: _Maker) -> dict[str, Any]:
    attributes = {
        "country": m.country(),
        "views": {"electronics_7d": m.rng.randint(3, 20), "fashion_7d": m.rng.randint(0, 3)},
        "sessions_7d": m.rng.randint(1, 6),
    }
    return {"id": m.visitor_id(), "attributes": attributes, "consent": {"personalization": True, "analytics": True}}


def _regular(m: _Maker) -> dict[str, Any]:
    attributes = {
        "country": m.country(),
        "orders_12m": m.rng.randint(1, 4),
        "spend_12m": m.money(50, 450),
        "orders_total": m.rng.randint(1, 10),
        "spend_total": m.money(50, 1500),
        "last_purchase_at": m.ago(5, 90),
        "sessions_7d": m.rng.randint(3, 10),
        "app_version": m.rng.choice(APP_VERSIONS),
    }
    return {"id": m.visitor_id(), "attributes": attributes, "consent": {"personalization": True}}


def _no_consent(m: _Maker) -> dict[str, Any]:
    """Any kind of visitor who declined personalization (or whose banner was never answered)."""
    visitor = m.rng.choice((_anonymous, _vip, _cart_abandoner, _eu_visitor))(m)
    if m.rng.random() < 0.5:
        visitor["consent"] = {"personalization": False}
    else:
        del visitor["consent"]  # absent consent means no
    return visitor


PERSONAS: tuple[tuple[str, int, Callable[[_Maker], dict[str, Any]]], ...] = (
    ("anonymous", 34, _anonymous),
    ("eu_visitor", 12, _eu_visitor),
    ("cart_abandoner", 10, _cart_abandoner),
    ("electronics_fan", 10, _electronics_fan),
    ("no_consent", 10, _no_consent),
    ("vip", 8, _vip),
    ("lapsed", 8, _lapsed),
    ("regular", 8, _regular),
)


def _placements(rng: random.Random) -> list[str]:
    """Most pages show both slots; some only one of them."""
    roll = rng.random()
    if roll < 0.5:
        return ["home_hero", "promo_banner"]
    return ["home_hero"] if roll < 0.75 else ["promo_banner"]


def page_views(count: int, seed: int, now: datetime) -> list[PageView]:
    """``count`` page views drawn from PERSONAS by weight, the same for the same seed."""
    rng = random.Random(seed)
    maker = _Maker(rng, now)
    names = [name for name, _, _ in PERSONAS]
    weights = [weight for _, weight, _ in PERSONAS]
    builders = {name: build for name, _, build in PERSONAS}
    views = []
    for i in range(count):
        persona = rng.choices(names, weights)[0]
        visitor = builders[persona](maker)
        country = visitor["attributes"].get("country", "US")
        body: dict[str, Any] = {
            "visitor": visitor,
            "placements": _placements(rng),
            "context": {"locale": LOCALES.get(country, "en-US"), "page": rng.choice(PAGES)},
        }
        if i % EXPLAIN_EVERY == EXPLAIN_EVERY // 2:
            body["explain"] = True
        views.append(PageView(persona, body))
    return views


def describe(views: list[PageView]) -> str:
    """One line: how many of each persona, and how many ask for the trace."""
    counts = Counter(view.persona for view in views)
    explained = sum(1 for view in views if view.body.get("explain"))
    parts = ", ".join(f"{name} {counts[name]}" for name, _, _ in PERSONAS)
    return f"{len(views)} bodies: {parts}; {explained} with explain"
