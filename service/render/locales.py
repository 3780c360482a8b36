"""Translated strings and locale-aware formats.

A request names its locale in ``context.locale`` (``de-AT``, ``de_AT``, ``de``).
Strings come from ``content/locales/<locale>.yaml``: the most specific file that
exists (``de_AT``, then ``de``), and any key it lacks from the default language.
Numbers, prices and dates are formatted by Babel for the requested locale itself,
so ``de-AT`` gets Austrian formats with German strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_LOCALE_CHARS = 35  # BCP 47 tags this long are already unusual
NEGOTIATED_LOCALES = 256  # requests name arbitrary locales; remember a bounded number
FORMATTED_PRICES = 4096


class Message:
    """A translated string with ``{name}`` parameters, split once so rendering only joins."""

    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        self.parts: tuple[tuple[str, str | None], ...] = tuple(_split(text))

    def format(self, params: Mapping[str, Any]) -> str:
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                value = params.get(name)
                out.append("" if value is None else str(value))
        return "".join(out)


def placeholders(text: str) -> frozenset[str]:
    """The ``{name}`` parameters of a message."""
    return frozenset(match.group(1) for match in _PARAM.finditer(text))


def _split(text: str) -> list[tuple[str, str | None]]:
    parts: list[tuple[str, str | None]] = []
    start = 0
    for match in _PARAM.finditer(text):
        parts.append((text[start : match.start()], match.group(1)))
        start = match.end()
    parts.append((text[start:], None))
    return parts


@dataclass(frozen=True, slots=True)
class LocaleChoice:
    """What one request's locale resolved to; ``key`` is part of every render cache key."""

    key: str
    babel: Locale
    name: str  # the formats' locale as templates see it: de_AT
    language: str  # the locale whose strings are used
    messages: Mapping[str, Message]
    currency: str

    def translate(self, key: str, params: Mapping[str, Any]) -> str:
        message = self.messages.get(key)
        return key if message is None else message.format(params)

    def price(self, amount: Any, currency: str | None = None) -> str:
        if isinstance(amount, Amount):
            return _price(float(amount), amount.in_currency(currency), self.babel)
        return _price(as_number(amount), currency or self.currency, self.babel)

    def number(self, value: Any, digits: int | None = None) -> str:
        pattern = None if digits is None else "#,##0." + "0" * max(0, min(digits, 6))
        return format_decimal(as_number(value), format=pattern, locale=self.babel)

    def percent(self, value: Any) -> str:
        return format_percent(as_number(value), locale=self.babel)

    def date(self, value: Any, style: str = "medium") -> str:
        moment = as_moment(value)
        if isinstance(moment, datetime) and style.endswith("time"):
            return format_datetime(moment, format=style.removesuffix("time") or "medium", locale=self.babel)
        return format_date(moment, format=style, locale=self.babel)


class Amount(float):
    """A price that knows its currency: a catalog price prints in the catalog's currency, whatever the request's.

    Tailor has no exchange rates, so it never converts: asking for another currency
    (``product.price | price("EUR")`` on a dollar price) is an error, and the block falls back.
    Arithmetic gives a plain number, which prints in the request's currency like any other.
    """

    __slots__ = ("currency",)
    currency: str

    def __new__(cls, value: float, currency: str) -> Amount:
        amount = super().__new__(cls, value)
        amount.currency = currency
        return amount

    def in_currency(self, requested: str | None) -> str:
        if requested is not None and requested != self.currency:
            raise ValueError(f"this price is in {self.currency}; Tailor does not convert it to {requested}")
        return self.currency


@lru_cache(maxsize=FORMATTED_PRICES)
def _price(amount: Decimal | int | float, currency: str, locale: Locale) -> str:
    # Babel takes about 20 µs a price, most of a product card; catalog prices and common cart
    # totals repeat, so remember them.
    return format_currency(amount, currency, locale=locale)


def as_number(value: Any) -> Decimal | int | float:
    if isinstance(value, bool):
        raise TypeError("a yes/no value is not a number")
    if isinstance(value, int | float | Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError("the value is not a number") from None


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def weekday_number(name: Any) -> int:
    """``"sunday"`` → 6, as ``date.weekday()`` counts."""
    if not isinstance(name, str) or name.lower() not in WEEKDAYS:
        raise ValueError(f"weekdays are {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(name.lower())


def next_weekday(value: Any, weekday: Any) -> date:
    """The first ``weekday`` after the date ``value``: an offer that ends "on Sunday" ends on the coming one."""
    moment = as_moment(value)
    day = moment.date() if isinstance(moment, datetime) else moment
    return day + timedelta(days=(weekday_number(weekday) - day.weekday() - 1) % 7 + 1)


def as_moment(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise TypeError("dates must be dates or ISO 8601 text")


class Locales:
    """Every locale of a bundle, resolved at compile time."""

    def __init__(self, default: str, currency: str, files: Mapping[str, Mapping[str, str]]) -> None:
        self.default = _normal(default)
        self.currency = currency
        default_strings = files.get(self.default, {})
        self._tables: dict[str, Mapping[str, Message]] = {}
        for name in files:
            merged = dict(default_strings)
            language = name.split("_")[0]
            if language != name:
                merged.update(files.get(language, {}))
            merged.update(files[name])
            self._tables[name] = MappingProxyType({k: Message(v) for k, v in merged.items()})
        # Locale files without the default language: every other check of keys would fail too.
        self.default_missing = bool(files) and self.default not in files
        self._tables.setdefault(self.default, MappingProxyType({}))
        self.choose = lru_cache(maxsize=NEGOTIATED_LOCALES)(self._choose)

    def messages(self, language: str) -> Mapping[str, Message]:
        return self._tables[language]

    def _choose(self, requested: str | None, currency: str | None) -> LocaleChoice:
        parsed = _parse(requested) or _parse(self.default) or Locale("en")
        language = self._language_for(parsed)
        chosen_currency = currency if currency is not None and _CURRENCY.match(currency) else self.currency
        return LocaleChoice(
            f"{parsed}|{language}|{chosen_currency}",
            parsed,
            str(parsed),
            language,
            self._tables[language],
            chosen_currency,
        )

    def _language_for(self, parsed: Locale) -> str:
        for candidate in (str(parsed), f"{parsed.language}_{parsed.territory}", parsed.language):
            if candidate in self._tables:
                return candidate
        return self.default


def _normal(name: str) -> str:
    parts = name.replace("-", "_").split("_")
    return "_".join([parts[0].lower(), *(p.upper() if len(p) == 2 else p for p in parts[1:])])


def _parse(requested: str | None) -> Locale | None:
    if not requested or not isinstance(requested, str) or len(requested) > MAX_LOCALE_CHARS:
        return None
    try:
        return Locale.parse(_normal(requested))
    except (UnknownLocaleError, ValueError, TypeError):
        return None
