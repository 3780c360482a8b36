"""Number and date formats made once per locale print exactly what Babel prints on every call.

``service.render.locales.NumberFormat`` looks a locale's symbols and a currency's digits up
once and then formats values itself; these tests hold it to Babel's own functions, called the
ordinary way, over every locale Babel knows, every kind of value a template can pass (ints,
floats, decimals, negative, huge, tiny, infinite, not a number) and currencies with 0, 2 and 3
digits, and then through ``LocaleChoice`` with its caches, asked twice.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from babel import Locale, localedata
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from hypothesis import given, settings
from hypothesis import strategies as st

from service.render.locales import LARGEST, Locales, NumberFormat

ALL_LOCALES = sorted(localedata.locale_identifiers())
# Separators and groupings that differ: Indian grouping, apostrophes, narrow spaces, Arabic marks.
TRICKY = ["en", "en_IN", "de_CH", "fr", "ar_EG", "hi", "ja", "sv", "nl", "pt_BR", "fa", "he", "de_AT", "es_419"]
CURRENCIES = ["USD", "EUR", "JPY", "BHD", "CHF", "INR", "XXX", "ZZZ"]  # 2, 2, 0, 3 digits; no symbol; unknown
STYLES = ["short", "medium", "long", "full"]

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
values = st.one_of(
    finite,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9),
    st.sampled_from([0, 0.5, 1.005, 2.675, 0.125, -0.0, 79.9, 999.995, 1e-7, 123456789.125, Decimal("-0.005")]),
)
locales = st.one_of(st.sampled_from(TRICKY), st.sampled_from(ALL_LOCALES))


def _same(ours: object, theirs: object) -> None:
    assert ours == theirs, f"{ours!r} != Babel's {theirs!r}"


def _babel(call: object, *args: object, **kwargs: object) -> str:
    try:
        return call(*args, **kwargs)  # type: ignore[operator, no-any-return]
    except Exception as exc:  # noqa: BLE001 - the error itself is what is compared
        return f"raised {type(exc).__name__}"


def _printable(value: float | int | Decimal, theirs: str) -> str:
    """What a template's filter gives: Babel's text, but an error for NaN, infinity and 10^18 or more."""
    return theirs if value == value and -LARGEST < value < LARGEST else "raised ValueError"


def _ours(call: object, *args: object) -> str:
    try:
        return call(*args)  # type: ignore[operator, no-any-return]
    except Exception as exc:  # noqa: BLE001 - as above
        return f"raised {type(exc).__name__}"


@settings(max_examples=400, deadline=None)
@given(name=locales, value=values, currency=st.sampled_from(CURRENCIES))
def test_prices_are_babels(name: str, value: float | int | Decimal, currency: str) -> None:
    locale = Locale.parse(name)
    made = NumberFormat(locale.currency_formats["standard"], locale, currency)
    _same(_ours(made, value), _babel(format_currency, value, currency, locale=locale))


@settings(max_examples=200, deadline=None)
@given(name=locales, value=values, currency=st.sampled_from(CURRENCIES))
def test_prices_through_the_cache_are_babels_whatever_came_before(
    name: str, value: float | int | Decimal, currency: str
) -> None:
    """The cache of formatted prices keys equal amounts alike: 0.0 and -0.0, 2 and 2.0 and Decimal("2")."""
    choice = Locales("en", "EUR", {}).choose(name.replace("_", "-"), None)
    kin = [value, -value, float(value), int(value) if math.isfinite(value) else value, Decimal(str(value))]
    for amount in kin + kin[::-1]:
        theirs = _babel(format_currency, amount, currency, locale=choice.babel)
        _same(_ours(choice.price, amount, currency), _printable(amount, theirs))


@settings(max_examples=300, deadline=None)
@given(name=locales, value=values)
def test_percentages_and_numbers_are_babels(name: str, value: float | int | Decimal) -> None:
    locale = Locale.parse(name)
    _same(
        _ours(NumberFormat(locale.percent_formats[None], locale), value), _babel(format_percent, value, locale=locale)
    )
    _same(
        _ours(NumberFormat(locale.decimal_formats[None], locale), value), _babel(format_decimal, value, locale=locale)
    )


@settings(max_examples=200, deadline=None)
@given(name=locales, value=values, digits=st.integers(min_value=0, max_value=6))
def test_numbers_with_digits_are_babels(name: str, value: float | int | Decimal, digits: int) -> None:
    pattern = "#,##0." + "0" * digits
    theirs = _babel(format_decimal, value, format=pattern, locale=name)
    choice = Locales("en", "USD", {}).choose(name, None)
    _same(_ours(choice.number, value, digits), _printable(value, theirs))


@pytest.mark.parametrize("name", ALL_LOCALES)
def test_every_locale_formats_a_price_a_percentage_and_a_date_like_babel(name: str) -> None:
    """Every locale, through the request's ``LocaleChoice`` and its caches, asked twice."""
    choice = Locales("en", "EUR", {}).choose(name.replace("_", "-"), None)
    locale = choice.babel
    day = date(2026, 11, 29)
    for _ in range(2):  # the second time from the caches
        _same(choice.price(1234567.891), format_currency(1234567.891, "EUR", locale=locale))
        _same(choice.price(-0.5, "JPY"), format_currency(-0.5, "JPY", locale=locale))
        _same(choice.percent(0.125), format_percent(0.125, locale=locale))
        _same(choice.number(-98765.4321), format_decimal(-98765.4321, locale=locale))
        for style in STYLES:
            _same(choice.date(day, style), format_date(day, format=style, locale=locale))


@pytest.mark.parametrize("style", [*STYLES, *(f"{style}time" for style in STYLES)])
def test_every_date_style_the_filter_names_renders(style: str, tmp_path: Path) -> None:
    """The error for an unknown style says "add 'time'": each of the eight it names renders."""
    from service.bundle.loader import load_bundle  # noqa: PLC0415
    from tests.render.test_sandbox import _render, _write_bundle  # noqa: PLC0415

    _write_bundle(tmp_path, {"x": {"template": f"{{{{ '2026-11-29T10:30:00+00:00' | date('{style}') }}}}"}})
    rendered = _render(load_bundle(tmp_path), "x", {})
    assert rendered.status == "rendered", rendered.error
    assert "2026" in rendered.html or "26" in rendered.html
