"""Minified email HTML renders what the HTML it came from renders.

"The same" is checked on the rendered text, not the template: both outputs split into the same
words and whitespace runs, where a run holds a newline in one exactly when it does in the other
(a run of whitespace renders as one space, whatever it holds), and the content of ``<pre>``,
``<textarea>``, elements styled with ``white-space`` and every attribute value is identical.
Templates are generated (hypothesis) from HTML pieces, Jinja tags with and without whitespace
control, loops and conditions, then rendered with the sandbox's whitespace settings; the real
cart email is checked for a thousand recipients.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import ChainableUndefined, Environment, TemplateSyntaxError

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.decide import decide
from service.render import mjml
from service.render.minify import minify
from service.render.mjml import compile_mjml
from service.render.page import Tally, inputs_for, render_variant
from tests.bench import emails

ROOT = Path(__file__).parents[2]
_VERBATIM = re.compile(r"<(pre|textarea|div style=\"white-space:pre\")>.*?</(pre|textarea|div)>", re.DOTALL)
_ATTRIBUTE = re.compile(r"=\"[^\"]*\"")


def assert_renders_the_same(original: str, minified: str) -> None:
    assert [m.group() for m in _VERBATIM.finditer(original)] == [m.group() for m in _VERBATIM.finditer(minified)]
    assert _ATTRIBUTE.findall(original) == _ATTRIBUTE.findall(minified)
    ours, theirs = re.split(r"(\s+)", minified), re.split(r"(\s+)", original)
    assert len(ours) == len(theirs), (original, minified)
    for index, (mine, before) in enumerate(zip(ours, theirs, strict=True)):
        if index % 2 == 0:
            assert mine == before, (original, minified)
        else:
            assert ("\n" in mine) == ("\n" in before), (before, mine)


def _environment() -> Environment:
    # The sandbox's whitespace settings: they decide which newlines Jinja itself removes.
    return Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=ChainableUndefined)


# --- generated templates ---

space = st.text(alphabet=" \t\n", min_size=1, max_size=5)
word = st.sampled_from(["Hi", "there", "a", "b", "x&y", "—", "{{ name }}", "{{ name }}!"])
inline = st.sampled_from(
    [
        '<a href="/x">', "</a>", "<b>", "</b>", "<br>", '<img alt="one\n   two" src="/i.png">',
        '<span\n    title="a  b\n  c"\n    class="k">', "</span>", "<p>", "</p>", "<table>", "<tr>", "<td>", "</td>",
        "<!-- a comment\n   over lines -->",
        "<!--[if mso | IE]><table\n   role=\"presentation\"><tr><td>\n<![endif]-->",
    ]
)  # fmt: skip


@st.composite
def verbatim_block(draw: st.DrawFn) -> str:
    tag, close = draw(
        st.sampled_from([("pre", "pre"), ("textarea", "textarea"), ('div style="white-space:pre"', "div")])
    )
    body = draw(st.lists(st.one_of(space, word), max_size=6))
    return f"<{tag}>{''.join(body)}</{close}>"


def _jinja(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    opening = st.sampled_from(["{% if flag %}", "{%- if flag %}", "{% if flag -%}", "{%+ if flag %}"])
    loop = st.sampled_from(["{% for item in items %}", "{% for item in items -%}"])
    closing = st.sampled_from(["{% endif %}", "{%- endif %}", "{% endif -%}"])
    return st.one_of(
        st.builds(lambda o, a, b, c: f"{o}{a}{{% else %}}{b}{c}", opening, children, children, closing),
        st.builds(lambda o, a, sep: f"{o}{a}{{{{ item }}}}{sep}{{% endfor %}}", loop, children, space),
        st.builds(lambda a: f"{{# note #}}{a}", children),
        st.builds(lambda a: f"{{#- note -#}}{a}", children),
    )


leaf = st.one_of(space, word, inline, verbatim_block())
template = st.recursive(
    st.lists(leaf, max_size=8).map("".join),
    lambda children: st.lists(st.one_of(leaf, _jinja(children)), max_size=6).map("".join),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(source=template, name=st.sampled_from(["Zoë", "", "A\n  B"]), flag=st.booleans(), count=st.integers(0, 2))
def test_generated_templates_render_the_same_minified(source: str, name: str, flag: bool, count: int) -> None:
    env = _environment()
    variables: dict[str, Any] = {"name": name, "flag": flag, "items": list(range(count))}
    original = env.from_string(source).render(variables)
    minified = env.from_string(minify(source)).render(variables)
    assert_renders_the_same(original, minified)


def test_errors_keep_their_line() -> None:
    source = "<div>\n    <p>\n\n      {{ broken( }}\n"
    lines = []
    for text in (source, minify(source)):
        with pytest.raises(TemplateSyntaxError) as raised:
            _environment().from_string(text)
        lines.append(raised.value.lineno)
    assert lines == [4, 4]


def test_what_is_kept_as_it_is() -> None:
    kept = [
        "<pre>\n    code\n</pre>",
        "<textarea>\n  a\n</textarea>",
        '<div style="white-space: pre-wrap">\n  <div>\n   x\n  </div>\n  y\n</div>',
        '<a title="two\n     lines">',
        "</a> <a>",
        "{{ 'a\n    b' }}",
        "x{% if a %}\n   y{% endif %}",  # trim_blocks removes the newline: the spaces are the only space left
    ]
    for html in kept:
        assert minify(html) in {html, html.replace("\n   y", "\n y")}, html
    assert minify("<td>\n      <b>hi</b>\n    </td>") == "<td>\n<b>hi</b>\n</td>"


# --- the real email ---

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RECIPIENTS = 300


def _bundle(monkeypatch: pytest.MonkeyPatch, *, minified: bool) -> Bundle:
    compile_mjml.cache_clear()
    if not minified:
        monkeypatch.setattr(mjml, "minify", lambda html: html)
    try:
        return load_bundle(ROOT)
    finally:
        monkeypatch.undo()
        compile_mjml.cache_clear()


def test_the_cart_email_renders_the_same_minified_for_every_recipient(monkeypatch: pytest.MonkeyPatch) -> None:
    minified, full = _bundle(monkeypatch, minified=True), _bundle(monkeypatch, minified=False)
    for variant in emails.VARIANTS:
        for recipient in emails.recipients(RECIPIENTS, 2026, NOW):
            request = emails.to_request(recipient, NOW)
            inputs = inputs_for(request, decide(full, request).segments)
            before = render_variant(full, variant, inputs, cache=None, tally=Tally())
            after = render_variant(minified, variant, inputs, cache=None, tally=Tally())
            assert (before.status, after.status) == ("rendered", "rendered"), (before.error, after.error)
            assert_renders_the_same(before.html, after.html)
            assert len(after.html) < 0.85 * len(before.html)
