"""The check file written for "save as check" reads back, by the check files' own reader, as what was shown."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.yamlfile import parse_yaml
from service.checks.spec import ChecksFile
from service.checks.writer import Shown, check_yaml

# Text that YAML 1.1 or 1.2 would read as something else when written plain: numbers, booleans, null,
# times, sexagesimals, merge keys.
TRICKY = ["1e5", "-1E-3", "no", "yes", "on", "off", "y", "~", "null", "Null", "true", "False", "0o17", "0x1F",
          "1_000", "12:30", "2026-12-01", "2026-12-01T12:00:00Z", "<<", ".inf", "-.5e3", "+1", "007", "", " x",
          "#", "- a", "a: b", "'", '"', "%TAG", "@x", "`x"]  # fmt: skip
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), texts)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=12
)
visitors = st.fixed_dictionaries(
    {"id": texts, "attributes": st.dictionaries(texts, values, max_size=6)},
    optional={"consent": st.fixed_dictionaries({"personalization": st.booleans()})},
)
PLACEMENTS = {
    "home_hero": Shown("targeting_match", "hero_vip", "vip_offer", rendered=True),
    "cart_email": Shown("experiment", "email_cart_reminder", "cart_email_ab", ("cart_email_test", "reminder"), False),
    "promo_banner": Shown("no_consent"),
}


@settings(max_examples=150, deadline=None)
@given(visitor=visitors, locale=texts, name=st.text(min_size=1, max_size=40))
def test_any_visitor_reads_back_as_it_was_sent(visitor: dict[str, Any], locale: str, name: str) -> None:
    text = check_yaml(name, visitor, {"now": "2026-12-01T12:00:00Z", "locale": locale}, PLACEMENTS, ["vip"])
    test = parse_yaml(text).data["tests"][0]
    assert (test["name"], test["visitor"], test["context"]["locale"]) == (name, visitor, locale)
    ChecksFile.model_validate(parse_yaml(text).data)


def test_the_expectations_are_what_was_shown() -> None:
    text = check_yaml("t", {"id": "v"}, {}, PLACEMENTS, ["vip", "eu_visitor"], note="line one\nline two")
    assert text.splitlines()[:3] == [
        "# yaml-language-server: $schema=../schema/checks.v1.schema.json", "# line one", "# line two",
    ]  # fmt: skip
    test = parse_yaml(text).data["tests"][0]
    assert "context" not in test  # nothing to say: the test runs as the visitor was sent
    email = {"variant": "email_cart_reminder", "reason": "experiment", "rule": "cart_email_ab", "html": False}
    assert test["expect"] == {
        "home_hero": {"variant": "hero_vip", "reason": "targeting_match", "rule": "vip_offer", "html": True},
        "cart_email": email,
        "promo_banner": {"reason": "no_consent"},
        "experiments": {"cart_email_test": "reminder"},
        "segments": {"includes": ["eu_visitor", "vip"]},
    }
