"""Locales: which strings and formats a request's locale gets, and the fallbacks."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from service.render.locales import Locales, Message

LOCALES = Locales(
    "en",
    "USD",
    {
        "en": {"hello": "Hi {name}", "bye": "Bye", "only_en": "English"},
        "de": {"hello": "Hallo {name}", "bye": "Tschüss"},
        "de_CH": {"bye": "Ade"},
    },
)


@pytest.mark.parametrize(
    ("requested", "language", "formats"),
    [
        ("de", "de", "de"),
        ("de-DE", "de", "de_DE"),
        ("de_AT", "de", "de_AT"),
        ("DE-ch", "de_CH", "de_CH"),
        ("en-GB", "en", "en_GB"),
        ("fr", "en", "fr"),  # no French strings: English text, French formats
        ("xx-YY", "en", "en"),  # not a locale: the default
        ("", "en", "en"),
        (None, "en", "en"),
        ("de" * 40, "en", "en"),  # too long to be a locale
    ],
)
def test_negotiation(requested: str | None, language: str, formats: str) -> None:
    choice = LOCALES.choose(requested, None)
    assert (choice.language, str(choice.babel)) == (language, formats)


def test_a_missing_translation_falls_back_to_the_default_language() -> None:
    swiss = LOCALES.choose("de-CH", None)
    assert swiss.translate("bye", {}) == "Ade"
    assert swiss.translate("hello", {"name": "Anna"}) == "Hallo Anna"  # from de
    assert swiss.translate("only_en", {}) == "English"  # from en
    assert swiss.translate("nowhere", {}) == "nowhere"  # a dynamic key no file has: shown as the key


def test_message_parameters_are_plain_substitution() -> None:
    message = Message("{name} has {count} items; {missing} and {0} and {a.b} stay literal-ish")
    assert message.format({"name": "Anna", "count": 3}) == "Anna has 3 items;  and {0} and {a.b} stay literal-ish"
    # A parameter value is never formatted again: no format-string tricks through values.
    assert Message("{x}").format({"x": "{x.__class__}"}) == "{x.__class__}"


def test_currency_from_the_request_or_the_default() -> None:
    assert LOCALES.choose("de-DE", "EUR").price(1234.5) == "1.234,50\u00a0€"
    assert LOCALES.choose("en-US", None).price(1234.5) == "$1,234.50"
    assert LOCALES.choose("en-US", "eur").currency == "USD"  # not an ISO code: the default
    assert LOCALES.choose("ja-JP", "JPY").price(1234) == "￥1,234"


def test_numbers_percents_and_dates_by_locale() -> None:
    de = LOCALES.choose("de", None)
    en = LOCALES.choose("en", None)
    assert (de.number(1234.567, 2), en.number(1234.567, 2)) == ("1.234,57", "1,234.57")
    assert (de.percent(0.15), en.percent(0.15)) == ("15\u00a0%", "15%")
    assert de.date("2026-11-29", "full") == "Sonntag, 29. November 2026"
    assert en.date(date(2026, 11, 29), "short") == "11/29/26"
    assert en.date(datetime(2026, 11, 29, 14, 5), "shorttime").startswith("11/29/26")


@pytest.mark.parametrize("bad", [True, "lots", None, [1]])
def test_a_price_that_is_not_a_number_is_an_error(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        LOCALES.choose("en", None).price(bad)


def test_negotiation_is_remembered_in_a_bounded_cache() -> None:
    for i in range(1000):
        LOCALES.choose(f"en-{i}", None)
    assert LOCALES.choose.cache_info().currsize <= 256
