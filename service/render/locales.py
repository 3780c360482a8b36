"""Translated strings and locale-aware formats.

A request names its locale in ``context.locale`` (``de-AT``, ``de_AT``, ``de``).
Strings come from ``content/locales/<locale>.yaml``: the most specific file that
exists (``de_AT``, then ``de``), and any key it lacks from the default language.
Numbers, prices and dates are formatted by Babel for the requested locale itself,
so ``de-AT`` gets Austrian formats with German strings.
"""

from __future__ import annotations

import math
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
from babel.numbers import (
    NumberPattern,
    get_currency_precision,
    get_currency_symbol,
    parse_pattern,
)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_LOCALE_CHARS = 35  # BCP 47 tags this long are already unusual
NEGOTIATED_LOCALES = 256  # requests name arbitrary locales; remember a bounded number
FORMATTED_PRICES = 4096
FORMATTED_PERCENTS = 1024
CURRENCIES = 64  # number formats kept per locale, one per currency
FORMATTED_DATES = 1024  # today, the coming weekdays: few dates repeat for every recipient


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
            return _cached_price(float(amount), amount.in_currency(currency), self.name)
        return _cached_price(as_number(amount), currency or self.currency, self.name)

    def number(self, value: Any, digits: int | None = None) -> str:
        places = None if digits is None else max(0, min(digits, 6))
        return _formats(self.name).number(places)(as_number(value))

    def percent(self, value: Any) -> str:
        number = as_number(value)
        return _percent(number, math.copysign(1.0, number) < 0, self.name)

    def date(self, value: Any, style: str = "medium") -> str:
        moment = as_moment(value)
        if isinstance(moment, datetime) and style.endswith("time"):
            return format_datetime(moment, format=style.removesuffix("time") or "medium", locale=self.babel)
        if type(moment) is date:  # a datetime's time zone prints too: only plain dates are remembered
            return _date(moment, style, self.name)
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


def _cached_price(amount: Decimal | int | float, currency: str, locale: str) -> str:
    # Equal amounts share a key (0.0 and -0.0, 2 and Decimal("2")): the type and the sign of zero,
    # which Babel prints ("-$0.00"), are part of it.
    return _price(amount, math.copysign(1.0, amount) < 0, currency, locale)


@lru_cache(maxsize=FORMATTED_PRICES, typed=True)
def _price(amount: Decimal | int | float, _negative: bool, currency: str, locale: str) -> str:
    # Catalog prices and common cart totals repeat: remember them. (Keyed by the locale's name:
    # hashing a Babel Locale hashes all of its fields.)
    return _formats(locale).currency(currency)(amount)


@lru_cache(maxsize=FORMATTED_PERCENTS, typed=True)
def _percent(number: Decimal | int | float, _negative: bool, locale: str) -> str:
    # A campaign's discount prints in every email of the batch: remember it, keyed as prices are.
    return _formats(locale).percent(number)


@lru_cache(maxsize=FORMATTED_DATES)
def _date(moment: date, style: str, locale: str) -> str:
    return format_date(moment, format=style, locale=_formats(locale).locale)


class NumberFormat:
    """``pattern.apply(value, locale, currency=currency)`` with everything but the value looked up once.

    Babel looks the locale's symbols, the currency's digits and symbol up again on every call,
    through its locale data's slow mappings: most of the 9 to 15 µs a price or percentage cost.
    Here they are read when the format is made, and a call does only what depends on the value,
    with the same ``decimal`` steps in the same order, so the text is the same (the tests compare
    it with Babel's for many locales and values). Patterns this class does not handle (scientific,
    significant digits, a currency's long name) are left to Babel itself.
    """

    __slots__ = (
        "_babel", "_decimal", "_fraction", "_group", "_grouping", "_infinity", "_min_int", "_prefix", "_quantum",
        "_scale", "_suffix",
    )  # fmt: skip

    def __init__(self, pattern: NumberPattern, locale: Locale, currency: str | None = None) -> None:
        symbols = locale.number_symbols.get("latn", {})
        self._group = str(symbols.get("group", ","))
        self._decimal = str(symbols.get("decimal", "."))
        self._infinity = str(symbols.get("infinity", "∞"))
        self._scale = pattern.scale
        self._grouping = pattern.grouping
        self._min_int = pattern.int_prec[0]
        self._fraction = (get_currency_precision(currency),) * 2 if currency else pattern.frac_prec
        self._quantum = Decimal(10) ** (-self._fraction[1])
        self._prefix = tuple(_with_currency(text, currency, locale) for text in pattern.prefix)
        self._suffix = tuple(_with_currency(text, currency, locale) for text in pattern.suffix)
        self._babel: Any = None
        if not symbols or not _plain(pattern):
            self._babel = lambda value: pattern.apply(value, locale, currency=currency)

    def __call__(self, value: Decimal | int | float) -> str:
        if self._babel is not None:
            return self._babel(value)  # type: ignore[no-any-return]
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        number = number.scaleb(self._scale)
        negative = int(number.is_signed())
        number = abs(number).normalize()
        text = self._prefix[negative] + self._digits(number) + self._suffix[negative]
        return _QUOTED.sub(_unquoted, text) if "'" in text else text

    def _digits(self, number: Decimal) -> str:
        if number.is_infinite():
            return self._infinity
        whole, _, fraction = f"{number.quantize(self._quantum):f}".partition(".")
        return self._grouped(whole) + self._fractional(fraction or "0")

    def _grouped(self, whole: str) -> str:
        if len(whole) < self._min_int:
            whole = "0" * (self._min_int - len(whole)) + whole
        size, out = self._grouping[0], ""
        while len(whole) > size:
            out = self._group + whole[-size:] + out
            whole = whole[:-size]
            size = self._grouping[1]
        return whole + out

    def _fractional(self, digits: str) -> str:
        least, most = self._fraction
        if len(digits) < least:
            digits += "0" * (least - len(digits))
        if most == 0 or (least == 0 and int(digits) == 0):
            return ""
        while len(digits) > least and digits[-1] == "0":
            digits = digits[:-1]
        return self._decimal + digits


_QUOTED = re.compile(r"'([^']*)'")


def _unquoted(match: re.Match[str]) -> str:
    return match.group(1) or "'"


def _plain(pattern: NumberPattern) -> bool:
    """Not scientific, no significant digits, a number part, no currency name (which depends on the value)."""
    affixes = "".join((*pattern.prefix, *pattern.suffix))
    return not pattern.exp_prec and "@" not in pattern.pattern and pattern.number_pattern != "" and "¤¤¤" not in affixes


def _with_currency(text: str, currency: str | None, locale: Locale) -> str:
    """A prefix or suffix with its currency signs replaced, in Babel's order."""
    if currency is None or "¤" not in text:
        return text
    return text.replace("¤¤", currency.upper()).replace("¤", get_currency_symbol(currency, locale))


class _Formats:
    """One locale's number formats, made the first time each is used and kept."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        self.percent = NumberFormat(locale.percent_formats[None], locale)
        self._numbers: dict[int | None, NumberFormat] = {}
        self._currencies: dict[str, NumberFormat] = {}

    def number(self, places: int | None) -> NumberFormat:
        found = self._numbers.get(places)
        if found is None:
            pattern = self.locale.decimal_formats[None] if places is None else parse_pattern("#,##0." + "0" * places)
            found = self._numbers.setdefault(places, NumberFormat(pattern, self.locale))
        return found

    def currency(self, code: str) -> NumberFormat:
        found = self._currencies.get(code)
        if found is None:
            found = NumberFormat(self.locale.currency_formats["standard"], self.locale, code)
            if len(self._currencies) < CURRENCIES:  # codes come from requests: keep a bounded number
                self._currencies.setdefault(code, found)
        return found


@lru_cache(maxsize=NEGOTIATED_LOCALES)
def _formats(name: str) -> _Formats:
    return _Formats(Locale.parse(name))


LARGEST = 10**18  # formats work in 28 digits: a larger amount with its decimals would not fit


def as_number(value: Any) -> Decimal | int | float:
    """A number to format; text such as ``"12.5"`` too, but never NaN, infinity, or 10^18 and beyond."""
    if isinstance(value, bool):
        raise TypeError("a yes/no value is not a number")
    number: Decimal | int | float
    if isinstance(value, int | float | Decimal):
        number = value
    else:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValueError("the value is not a number") from None
    finite = number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)  # sNaN too
    if not finite or not -LARGEST < number < LARGEST:
        raise ValueError("the number cannot be printed: only finite numbers below 10^18 are")
    return number


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
        for name in self._tables:  # the bundle's own locales: their formats are made while compiling
            parsed = _parse(name)
            if parsed is not None:
                _formats(str(parsed))

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
