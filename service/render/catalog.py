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

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service.core.spec import Product, Recommendations
from service.render.locales import Amount

MAX_RECOMMENDATIONS = 50
MAX_COUNT = 1e12  # larger counts rank the same; a huge integer would not fit a float
LANGUAGES = 64  # the languages whose names are kept ready: a bundle's locale files, in practice


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
        self._by_language: dict[str, tuple[Mapping[str, Any], ...]] = {}
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
        order: Iterable[int] = range(len(self._entries))  # by popularity, then id
        if views or purchases:
            scores = {
                cat: settings.view_weight * views.get(cat, 0.0) + settings.purchase_weight * purchases.get(cat, 0.0)
                for cat in views.keys() | purchases.keys()
            }
            # Entries are in rank order and the sort is stable: by score alone, ties stay by rank.
            against = [-scores.get(entry.category, 0.0) for entry in self._entries]
            order = sorted(order, key=against.__getitem__)
        fields = self._localized(language)
        picked = (rank for rank in order if self._entries[rank].id not in bought)
        return [dict(fields[rank]) for rank in itertools.islice(picked, limit)]

    def _localized(self, language: str) -> tuple[Mapping[str, Any], ...]:
        """Every entry's fields with its name in ``language``, in rank order, made once per language."""
        found = self._by_language.get(language)
        if found is None:
            if len(self._by_language) >= LANGUAGES:
                self._by_language.clear()
            found = self._by_language[language] = tuple(_localized(entry, language) for entry in self._entries)
        return found


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
