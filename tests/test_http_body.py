"""Request bodies are decoded strictly, once: huge integers, bad UTF-8 and duplicate keys are 400s saying where."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from service.core.errors import RequestError
from service.http import body as body_module
from service.http import wire
from service.http.app import create_app
from service.http.body import decode
from tests.test_http_fuzz import json_values, render_requests
from tests.test_http_fuzz import requests as fuzz_requests

FLOAT_MAX = int(sys.float_info.max)
huge_ints = st.integers(min_value=FLOAT_MAX + 1, max_value=10**4000) | st.integers(
    min_value=-(10**4000), max_value=-FLOAT_MAX - 1
)
keys = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
leaves = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=5)
# A path into a JSON tree: object keys and array positions.
steps = st.lists(st.one_of(keys, st.integers(min_value=0, max_value=3)), max_size=5)


def _planted(path: list[str | int], value: Any, filler: Any) -> tuple[Any, str]:
    """A tree holding ``value`` at ``path`` (with a sibling beside every step), and that path as text."""
    where = ""
    for step in reversed(path):
        value = _wrapped(step, value, filler)
    for step in path:
        where += f"[{step}]" if isinstance(step, int) else f".{step}"
    return value, where


def _wrapped(step: str | int, value: Any, filler: Any) -> Any:
    if isinstance(step, int):
        return [filler] * step + [value, filler]
    return {f"{step}_sibling": filler, step: value}


def _refused(body: bytes, kind: type[Any]) -> RequestError:
    with pytest.raises(RequestError) as caught:
        decode(body, kind)
    return caught.value


@settings(max_examples=150, deadline=None)
@given(keys, steps, huge_ints, leaves)
def test_an_integer_beyond_a_float_is_refused_at_its_path(
    root: str, path: list[str | int], big: int, filler: Any
) -> None:
    tree, where = _planted(path, big, filler)
    body = msgspec.json.encode({"visitor": {"id": "v", "attributes": {root: tree}}})
    error = _refused(body, wire.DecideRequest)
    assert error.where == f"$.visitor.attributes.{root}{where}"
    assert "digits" in error.message


beyond_floats = st.builds(
    lambda sign, mantissa, exponent: f"{sign}{mantissa}e{exponent}",
    st.sampled_from(["", "-"]), st.sampled_from(["1", "2.5", "9.99"]), st.integers(min_value=309, max_value=99999),
)  # fmt: skip
MARK = "PLANTED-NUMBER"


@settings(max_examples=100, deadline=None)
@given(keys, steps, beyond_floats | st.integers(4301, 6000).map(lambda n: "9" * n), leaves)
def test_a_number_beyond_a_float_is_refused_at_its_path(
    root: str, path: list[str | int], number: str, filler: Any
) -> None:
    """Numbers such as 1e999, or integers of more digits than Python reads, where msgspec names no key."""
    tree, where = _planted(path, MARK, filler)
    text = msgspec.json.encode({"visitor": {"id": "v", "attributes": {root: tree}}})
    error = _refused(text.replace(f'"{MARK}"'.encode(), number.encode()), wire.DecideRequest)
    assert (error.where, "beyond a number's range" in error.message) == (f"$.visitor.attributes.{root}{where}", True)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=4), keys, steps, huge_ints)
def test_a_huge_integer_in_a_batch_names_its_recipient(index: int, root: str, path: list[str | int], big: int) -> None:
    tree, where = _planted(path, big, 1)
    recipients: list[dict[str, Any]] = [{"id": f"r{i}"} for i in range(5)]
    recipients[index]["attributes"] = {root: tree}
    body = msgspec.json.encode({"recipients": recipients, "placements": ["cart_email"]})
    assert _refused(body, wire.RenderRequest).where == f"$.recipients[{index}].attributes.{root}{where}"


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ('"explain": {big}', "$.explain"),
        ('"placements": [{big}]', "$.placements[0]"),
        ('"context": {{"now": {big}}}', "$.context.now"),
        ('"visitor": {{"id": {big}}}', "$.visitor.id"),
        ('"visitor": {{"consent": {{"analytics": -{big}}}}}', "$.visitor.consent.analytics"),
    ],
)
def test_a_huge_integer_in_a_typed_field_is_refused_there(field: str, where: str) -> None:
    text = "{" + field.format(big="9" * 400) + (', "visitor": {}' if "visitor" not in field else "") + "}"
    assert _refused(text.encode(), wire.DecideRequest).where == where


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-FLOAT_MAX, max_value=FLOAT_MAX))
def test_every_accepted_integer_is_a_float(number: int) -> None:
    body = msgspec.json.encode({"visitor": {"attributes": {"n": number}}})
    accepted = decode(body, wire.DecideRequest).visitor.attributes["n"]
    assert float(accepted) == float(number)  # no OverflowError anywhere downstream


def test_the_largest_float_is_the_boundary() -> None:
    at, beyond = (msgspec.json.encode({"visitor": {"attributes": {"n": n}}}) for n in (FLOAT_MAX, FLOAT_MAX + 1))
    assert decode(at, wire.DecideRequest).visitor.attributes["n"] == FLOAT_MAX
    assert _refused(beyond, wire.DecideRequest).where == "$.visitor.attributes.n"


# Byte sequences RFC 3629 forbids: a lone continuation byte, bytes never used, overlong forms,
# UTF-16 surrogates, code points above U+10FFFF, sequences cut short.
INVALID_UTF8 = [
    b"\x80", b"\xbf", b"\xff", b"\xfe", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
    b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3\x28", b"\xe2\x28\xa1",
]  # fmt: skip
# Where in a body the bytes sit: a text value, an object key, a nested value, outside any string.
UTF8_PLACES = [b'{"id": "%s"}', b'{"attributes": {"%s": 1}}', b'{"attributes": {"cart": ["a%sb"]}}', b"{}}%s"]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app()) as http:
        yield http


@pytest.mark.parametrize("place", UTF8_PLACES)
def test_invalid_utf8_is_a_problem_on_both_endpoints(client: TestClient[Any], place: bytes) -> None:
    for sequence in INVALID_UTF8:
        decide = b'{"visitor": %s}' % (place % sequence)
        render = b'{"placements": ["cart_email"], "recipients": [%s]}' % (place % sequence)
        for path, body in (("/v1/decide", decide), ("/v1/render", render)):
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, (path, body, response.text)
            assert "not valid UTF-8" in response.json()["detail"], body


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud83dx", b"\\udc00\\ud800"])
def test_lone_surrogate_escapes_are_refused(client: TestClient[Any], escape: bytes) -> None:
    body = b'{"visitor": {"id": "a%sb"}}' % escape
    response = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=9), huge_ints)
def test_one_huge_integer_fails_the_batch_with_a_400_not_a_500(client: TestClient[Any], index: int, big: int) -> None:
    recipients: list[dict[str, Any]] = [{"id": f"r{i}", "attributes": {"orders_total": i}} for i in range(10)]
    recipients[index]["attributes"]["last_purchase_at"] = big  # read by the models as a time
    body = msgspec.json.encode({"recipients": recipients, "placements": ["cart_email", "home_hero"]})
    response = client.post("/v1/render", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["loc"] == f"$.recipients[{index}].attributes.last_purchase_at"


def _json_at(path: list[str | int], inner: str) -> str:
    """JSON text with ``inner`` at ``path``, a sibling beside every step."""
    for step in reversed(path):
        inner = (
            f"[{', '.join(['1'] * step + [inner, '1'])}]"
            if isinstance(step, int)
            else f'{{"{step}_s": 1, "{step}": {inner}}}'
        )
    return inner


@settings(max_examples=100, deadline=None)
@given(keys, steps, keys, leaves, leaves)
def test_a_duplicate_key_is_refused_at_its_path(
    root: str, path: list[str | int], key: str, first: Any, second: Any
) -> None:
    twice = f'{{"{key}": {msgspec.json.encode(first).decode()}, "{key}": {msgspec.json.encode(second).decode()}}}'
    text = '{"visitor": {"attributes": {"' + root + '": ' + _json_at(path, twice) + "}}}"
    _, where = _planted(path, 0, 0)
    error = _refused(text.encode(), wire.DecideRequest)
    assert (error.where, error.message) == (f"$.visitor.attributes.{root}{where}.{key}", f"duplicate key '{key}'")


# JSON texts written by hand, so that objects can repeat a key: keys from a small alphabet (so
# repeats are common), sometimes spelled with an escape, numbers sometimes of 309 digits or more.
_plain_keys = st.sampled_from(["a", "b", "id", "x_y", "t:0", ":"])
_escaped_keys = st.sampled_from(["\\u0061", "\\u0069d", 'q\\"', "t\\u003a0", "\\u003A", "\\u0022"])
_numbers = st.sampled_from(["1", "-0", "2.5e3", "9" * 308, "9" * 309, "-" + "1" * 320, "1" + "0" * 308 + ".5"])
_texts = st.sampled_from(['"s"', '"9999"', '"' + "7" * 330 + '"', '"a\\"b:"', "true", "null", '"a"', '"t:0"', '":"'])
_texts |= st.sampled_from(['"t\\u003a0"', '"\\u0022:"'])  # a colon, a quote as escapes
_json_texts = st.recursive(
    _numbers | _texts,
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(st.tuples(_plain_keys | _escaped_keys, inner), max_size=4).map(
            lambda pairs: "{" + ", ".join(f'"{key}": {value}' for key, value in pairs) + "}"
        )
    ),
    max_leaves=12,
)


def _outcome(text: bytes) -> Any:
    try:
        return decode(text, wire.DecideRequest).visitor.attributes
    except RequestError as error:
        return (error.where, error.message)


@settings(max_examples=300, deadline=None)
@given(_json_texts)
def test_skipping_the_key_and_number_pass_never_changes_an_answer(attribute: str) -> None:
    """The pre-check may skip the second pass only where the pass would have found nothing."""
    text = ('{"visitor": {"attributes": {"k": ' + attribute + "}}}").encode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(body_module, "_may_need_the_pass", lambda *_: True)
        always = _outcome(text)
    assert _outcome(text) == always


@pytest.mark.parametrize(
    ("text", "needed"),
    [
        ('{"visitor": {"id": "v-1", "attributes": {"country": "DE"}}, "placements": ["home_hero"]}', False),
        ('{"visitor": {"id": "a", "id": "b"}}', True),
        ('{"visitor": {"id": "id"}}', False),  # a value equal to a key: the counts find no key twice
        ('{"visitor": {"id": "a\\u0062"}}', False),  # an escape, but of no quote or colon: the counts decide
        ('{"visitor": {"attributes": {"n": ' + "1" * 309 + "}}}", True),
        ('{"visitor": {"attributes": {"n": ' + "1" * 308 + "}}}", False),
        ('{"visitor": {"attributes": {"n": ' + "[" * 200 + "]" * 200 + "}}}", False),  # deep: msgspec's limit
        ('{"recipients": [{"id": "a", "attributes": {"t": "1:2"}}, {"id": "b", "attributes": {"t": "3:4"}}]}', False),
        ('{"recipients": [{"id": "a"}, {"id": "b", "attributes": {"t": 1, "t": 2}}]}', True),
        ('{"recipients": [{"id": "a"}, {"id": "b", "attributes": {"t:": 1, "t:": 2}}]}', True),
        ('{"recipients": [{"id": "\\u00eb"}, {"id": "b"}]}', False),  # an escape that spells no quote or colon
        ('{"recipients": [{"id": "a"}, {"id": "b", "\\u0069d": "c"}]}', True),
        ('{"recipients": [{"id": "a\\u003a"}, {"id": "b"}]}', True),  # a colon spelled as an escape: the pass
        ('{"recipients": [{"id": "a\\u0022"}, {"id": "b"}]}', True),  # a quote spelled as an escape: the pass
        ('{"recipients": [{"id": "a\\""}, {"id": "b"}]}', True),
    ],
)
def test_the_pass_is_skipped_only_where_it_can_find_nothing(text: str, needed: bool) -> None:
    assert body_module._may_need_the_pass(text, text.encode()) is needed


def _repeats_a_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("repeated")
    return dict(pairs)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json_texts, min_size=1, max_size=6))
def test_the_key_counts_never_miss_a_repeated_key(items: list[str]) -> None:
    """Batch-shaped texts (sibling objects share their keys): an equal count means no object repeats one."""
    text = "[" + ", ".join(items) + "]"
    try:
        json.loads(text, object_pairs_hook=_repeats_a_key)
    except ValueError:
        assert body_module._keys_may_repeat(text.encode(), msgspec.json.decode(text))


_events = st.fixed_dictionaries(
    {"events": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "visitor_id": st.text(max_size=4) | json_values,
                "metric": st.sampled_from(["purchase", "click", "Bad"]) | json_values,
                "value": st.floats(allow_nan=False) | st.integers() | json_values,
                "time": st.sampled_from(["2026-06-01T12:00:00Z", "2026-06-01", "12:00"]) | json_values,
                "consent": st.fixed_dictionaries({}, optional={"analytics": st.booleans() | json_values}),
            },
        ),
        max_size=3,
    ) | json_values},
)  # fmt: skip


# Values a lax conversion would take for another type: a decoder must refuse them where the typed one does.
_tricky = (
    st.sampled_from(
        ["true", "1", "1.5", "2026-06-01T12:00:00Z", "2026-06-01", "EUR", "", "x" * 40, 1, 0, 1.0, 1.5, 10**20, -1]
    )
    | st.booleans()
    | st.none()
)
_consent = st.fixed_dictionaries({}, optional={"personalization": _tricky, "analytics": _tricky})
_context = st.fixed_dictionaries({}, optional=dict.fromkeys(("locale", "page", "now", "currency"), _tricky))
_person = st.fixed_dictionaries(
    {},
    optional={
        "id": _tricky,
        "attributes": st.dictionaries(st.text(max_size=2), _tricky),
        "consent": _consent,
        "context": _context,
    },
)
_tricky_bodies = st.one_of(
    st.fixed_dictionaries({"visitor": _person}, optional={"context": _context, "explain": _tricky, "render": _tricky}),
    st.fixed_dictionaries(
        {"recipients": st.lists(_person, max_size=3)},
        optional={
            "block": _tricky,
            "placements": st.lists(_tricky, max_size=2),
            "context": _context,
            "explain": _tricky,
        },
    ),
    st.fixed_dictionaries(
        {
            "events": st.lists(
                st.fixed_dictionaries(
                    {"visitor_id": _tricky, "metric": st.sampled_from(["purchase", 1, "true"])},
                    optional={
                        "value": _tricky,
                        "time": _tricky,
                        "consent": st.fixed_dictionaries({}, optional={"analytics": _tricky}),
                    },
                ),
                max_size=2,
            )
        }
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(fuzz_requests, render_requests, _events, json_values, _tricky_bodies, _tricky_bodies))
def test_the_converted_tree_is_what_the_typed_decoder_gives(body: Any) -> None:
    """A batch is parsed once and its tree converted: wherever that accepts, the typed decoder agrees."""
    text = msgspec.json.encode(body).decode()
    for kind in (wire.DecideRequest, wire.RenderRequest, wire.EventsRequest):
        converted = body_module._converted(msgspec.json.decode(text), kind)
        if converted is not None:
            assert converted == body_module._typed(text, kind)


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"content-type": "text/plain"}, "not 'text/plain'"),
        ({}, "not a missing or non-ASCII Content-Type"),  # granian's RSGI headers drop a non-ASCII value
        ({"content-type": "application/json", "content-encoding": "gzip"}, "without Content-Encoding (got 'gzip')"),
    ],
)
def test_a_body_that_is_not_plain_json_is_a_415_saying_what_was_sent(headers: dict[str, str], said: str) -> None:
    with pytest.raises(body_module.UnsupportedMediaError, match=re.escape(said)):
        body_module.check_headers(headers)
    body_module.check_headers({"content-type": "application/json; charset=utf-8"})  # plain JSON passes


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"visitor": {"id": "\\ud800"}}', "escape that is not a valid surrogate pair"),
        (b'{"visitor": {"id": "\\udc00\\ud800"}}', "invalid utf-16 surrogate pair"),  # msgspec says it itself
        (b'{"visitor": {"id": "\\ud83d\\ude00", "attributes": {"a": "x', "Input data was truncated"),  # really cut
    ],
)
def test_a_lone_surrogate_escape_is_named_not_called_a_truncated_body(raw: bytes, said: str) -> None:
    with pytest.raises(RequestError, match=said):
        body_module.decode(raw, wire.DecideRequest)


MISSPELT_KEYS = [
    (b'{"visiter": {}, "placements": ["hero"]}', "$", "`visiter` (did you mean 'visitor'?)"),
    (b'{"visitor": {"atributes": {}}, "placements": ["hero"]}', "$.visitor", "(did you mean 'attributes'?)"),
    (b'{"visitor": {"consent": {"personalisation": true}}}', "$.visitor.consent", "(did you mean 'personalization'?)"),
    (b'{"visitor": {}, "context": {"lokale": "de"}}', "$.context", "`lokale` (did you mean 'locale'?)"),
    (b'{"visitor": {"zzzz": 1}}', "$.visitor", "unknown field `zzzz`"),  # nothing near: no suggestion
]


@pytest.mark.parametrize(("body", "where", "said"), MISSPELT_KEYS)
def test_a_misspelt_key_is_named_with_the_nearest_field_at_its_path(body: bytes, where: str, said: str) -> None:
    with pytest.raises(RequestError) as caught:
        decode(body, wire.DecideRequest)
    assert (caught.value.where, said in caught.value.message) == (where, True)
    assert ("did you mean" in caught.value.message) == ("did you mean" in said)
