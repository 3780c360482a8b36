"""The product catalog and the recommendations block's ranking.

Prices are in the bundle's default currency (``localization.default_currency``) and
print in it whatever currency the request names: there are no exchange rates to convert
with (see ``locales.Amount``).

A product's score is its category's affinity for the visitor: views times the view
weight plus purchases times the purchase weight, both sent by the client as counts
per category (``category_views: {electronics: 3}``). Products the visitor already
bought are left out. Ties, and visitors with no affinity at all, fall back to the
catalog's popularity, then to the product id, so the order is total and stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service.core.spec import Product, Recommendations
from service.render.locales import Amount

MAX_RECOMMENDATIONS = 50
MAX_COUNT = 1e12  # larger counts rank the same; a huge integer would not fit a float


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    category: str
    rank: int  # position by popularity, then id
    fields: Mapping[str, Any]  # what templates see, in the default language
    names: Mapping[str, str]  # translated names by language


class Catalog:
    def __init__(self, products: Mapping[str, Product], settings: Recommendations | None, currency: str) -> None:
        """``currency``: what the prices are in, the bundle's default currency."""
        self.settings = settings or Recommendations()
        ordered = sorted(products.items(), key=lambda item: (-item[1].popularity, item[0]))
        self._entries = tuple(
            _Entry(pid, p.category, rank, MappingProxyType(_fields(pid, p, currency)), MappingProxyType(p.names))
            for rank, (pid, p) in enumerate(ordered)
        )
        self.reads = tuple(
            tuple(path.split("."))
            for path in (
                self.settings.views_attribute,
                self.settings.purchases_attribute,
                self.settings.purchased_attribute,
            )
        )

    def recommend(self, attributes: Mapping[str, Any], limit: int, language: str) -> list[dict[str, Any]]:
        """The ``limit`` best products for this visitor, as plain dicts for templates."""
        limit = max(0, min(int(limit), MAX_RECOMMENDATIONS))
        settings = self.settings
        views = _counts(_lookup(attributes, self.reads[0]))
        purchases = _counts(_lookup(attributes, self.reads[1]))
        bought = _ids(_lookup(attributes, self.reads[2]))
        scores = {
            cat: settings.view_weight * views.get(cat, 0.0) + settings.purchase_weight * purchases.get(cat, 0.0)
            for cat in views.keys() | purchases.keys()
        }
        candidates = [e for e in self._entries if e.id not in bought]
        candidates.sort(key=lambda e: (-scores.get(e.category, 0.0), e.rank))
        return [_localized(e, language) for e in candidates[:limit]]


def _fields(pid: str, product: Product, currency: str) -> dict[str, Any]:
    return {
        "id": pid,
        "name": product.name,
        "category": product.category,
        "price": Amount(product.price, currency),
        "currency": currency,
        "url": product.url,
        "image": product.image,
    }


def _localized(entry: _Entry, language: str) -> dict[str, Any]:
    fields = dict(entry.fields)
    name = entry.names.get(language) or entry.names.get(language.split("_", maxsplit=1)[0])
    if name:
        fields["name"] = name
    return fields


def _lookup(attributes: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = attributes
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _counts(value: Any) -> dict[str, float]:
    """Category counts as the client sent them; anything that is not a non-negative number counts as 0."""
    if not isinstance(value, Mapping):
        return {}
    return {
        str(k): min(float(v), MAX_COUNT) if v < MAX_COUNT else MAX_COUNT
        for k, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
    }


def _ids(value: Any) -> frozenset[str]:
    if not isinstance(value, list | tuple):
        return frozenset()
    return frozenset(str(v) for v in value if isinstance(v, str | int) and not isinstance(v, bool))
