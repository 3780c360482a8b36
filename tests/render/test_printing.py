"""``{{ }}`` prints data only: ``printing_corpus.yaml``, and every global and method a template can reach.

The corpus says what each template prints or that it fails with ``NotDataError``. The
generated part prints every global of the environment, every method the sandbox lets a
template read, and the objects those globals make, alone and inside a list and a dict; no
output may hold a Python repr (a memory address, ``<function``, ``<bound method`` ...).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import markupsafe
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.render import sandbox
from service.render.blocks import CompiledBlocks
from service.render.sandbox import _ALLOWED, BUDGET, HOOK_PREFIX, Budget, TailorSandbox
from tests.render.test_sandbox import _check, _render, _write_bundle

CORPUS = Path(__file__).with_name("printing_corpus.yaml")
ENTRIES: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
PARTIAL = "{% macro hello() %}hi{% endmacro %}"
# What Python prints for objects that are not data.
REPR = re.compile(
    r"0x[0-9a-fA-F]{4,}|object at|<function|<bound method|<built-in|<method|<class |<Macro|<Template|<Loop"
    r"|<generator|<jinja2|<markupsafe|Undefined|mappingproxy|dict_(items|keys|values)\(|range\(|<lambda>"
)

# Values of each type whose methods the sandbox allows, as a template writes them.
SAMPLES = {"str": "'x'", "dict": "visitor", "list": "[1]", "tuple": "(1,)", "date": "today"}
# Objects the globals make, and the names a template sees inside a macro, a loop or a call block.
MADE = [
    "cycler(1, 2)", "cycler(1, 2).next", "cycler(1, 2).reset", "joiner()", "namespace(a=1)", "dict(a=1)",
    "range(2)", "self", "t('hi')", "recommend(1)", "recommend", "visitor", "context", "segments", "today",
    "content", "params", "variant", "locale", "language",
]  # fmt: skip
IN_A_LOOP = ["loop", "loop.cycle", "loop.changed", "loop.index", "loop.revindex", "loop.previtem"]
IN_A_MACRO = ["varargs", "kwargs", "m"]


def _bundle(tmp_path: Path, entries: dict[str, dict[str, Any]]) -> Bundle:
    tmp_path.mkdir(exist_ok=True)
    _write_bundle(tmp_path, entries)
    (tmp_path / "content/templates/partials").mkdir()
    (tmp_path / "content/templates/partials/p.html").write_text(PARTIAL, encoding="utf-8")
    return load_bundle(tmp_path)


def _reachable(env: Any) -> list[str]:
    """Every global and allowed method a template can print, and what the globals make, as expressions."""
    names = [name for name in env.globals if not name.startswith(HOOK_PREFIX)]
    methods = []
    for kinds, allowed in _ALLOWED:
        for kind in kinds if isinstance(kinds, tuple) else (kinds,):
            sample = SAMPLES.get(kind.__name__)
            methods += [f"{sample}.{method}" for method in sorted(allowed)] if sample else []
    return sorted({*names, *methods, *MADE})


def _templates(expression: str) -> list[str]:
    shapes = ["{{ %s }}", "{{ [%s] }}", "{{ {'k': %s} }}", "{{ (%s,) }}"]
    return [shape.replace("%s", expression) for shape in shapes]


def _generated(env: Any) -> dict[str, dict[str, Any]]:
    templates = [t for expression in _reachable(env) for t in _templates(expression)]
    templates += [f"{{% for x in [1, 2] %}}{t}{{% endfor %}}" for e in IN_A_LOOP for t in _templates(e)]
    templates += [f"{{% macro m() %}}{t}{{% endmacro %}}{{{{ m() }}}}" for e in IN_A_MACRO for t in _templates(e)]
    templates += [f"{{% macro m() %}}{t}{{% endmacro %}}{{% call m() %}}x{{% endcall %}}" for t in _templates("caller")]
    templates.append("{% import 'partials/p.html' as p %}{{ p }}{{ [p.hello] }}")
    return {f"g{i}": {"template": template} for i, template in enumerate(templates)}


def test_the_corpus_is_well_formed() -> None:
    ids = [entry["id"] for entry in ENTRIES]
    assert len(ids) == len(set(ids))
    assert {entry["expect"] for entry in ENTRIES} == {"renders", "fallback"}


def test_every_corpus_entry_prints_what_it_says(tmp_path: Path) -> None:
    entries = {f"e{i}": entry for i, entry in enumerate(ENTRIES)}
    bundle = _bundle(tmp_path, entries)
    for name, entry in entries.items():
        rendered = _render(bundle, name, entry)
        _check(entry, rendered.status, rendered.error, rendered.html)
        assert not REPR.search(html.unescape(rendered.html)), f"{entry['id']}: {rendered.html!r}"


def test_nothing_a_template_can_reach_prints_a_repr(tmp_path: Path) -> None:
    probe = _bundle(tmp_path / "probe", {"x": {"template": ""}})
    assert isinstance(probe.blocks, CompiledBlocks)  # the loader's; Bundle.blocks is typed as a protocol
    entries = _generated(probe.blocks.blocks["x"].template.environment)
    assert len(entries) > 200
    bundle = _bundle(tmp_path / "all", entries)
    outcomes = set()
    for name, entry in entries.items():
        rendered = _render(bundle, name, {"attributes": {"a": 1}})
        text = html.unescape(rendered.html)
        assert not REPR.search(text), f"{entry['template']} printed {text!r}"
        if rendered.status == "fallback":
            assert (rendered.error or "").startswith("NotDataError at "), f"{entry['template']}: {rendered.error}"
        outcomes.add(rendered.status)
    assert outcomes == {"rendered", "fallback"}  # both kinds are in the generated corpus


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ range }}", "the template printed a function (call it: name(...))"),
        ("{% macro m() %}{% endmacro %}{{ m }}", "the template printed a macro (call it: name(...))"),
        ("{{ cycler }}", "the template printed a class (call it, or print one of its values)"),
        ("{% for x in [1] %}{{ loop }}{% endfor %}", "the template printed a loop (print loop.index, loop.first, ...)"),
        ("{{ self }}", "the template printed a TemplateReference object"),
    ],
)
def test_the_render_error_says_what_was_printed(template: str, message: str, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, {"x": {"template": template}})
    rendered = _render(bundle, "x", {})
    assert rendered.error == "NotDataError at content/templates/x.html:1"
    assert rendered.detail is not None
    assert rendered.detail.startswith(f"NotDataError: {message}; only text, numbers, dates, lists and dicts print")


@given(st.lists(st.text(alphabet=st.sampled_from("ab<>&\"' é"), max_size=300), min_size=1, max_size=30))
def test_remembered_escapes_are_markupsafes(texts: list[str]) -> None:
    for text in texts * 2:  # the second time from the memo, for the short ones
        escaped = sandbox._escape(text)
        assert type(escaped) is Markup
        assert escaped == markupsafe.escape(text)
    assert sandbox._escape(Markup("<b>")) == Markup("<b>")  # safe text stays as it is


def test_templates_print_through_the_remembered_escape() -> None:
    template = TailorSandbox(None, lambda _: True).from_string("{{ a }}|{{ b }}")
    assert template.root_render_func.__globals__["escape"] is sandbox._escape
    token = BUDGET.set(Budget(10_000))
    try:
        assert template.render(a="<i>&", b=Markup("<i>")) == "&lt;i&gt;&amp;|<i>"
    finally:
        BUDGET.reset(token)


@pytest.mark.parametrize("template", ["{{ t | string }}", "{{ 'x' ~ t }}", "{{ [t] | join }}"])
def test_a_function_made_text_first_prints_its_python_name(template: str, tmp_path: Path) -> None:
    """What docs/TEMPLATES.md says of the check's reach: only what {{ }} prints itself is checked."""
    bundle = _bundle(tmp_path, {"x": {"template": template}})
    rendered = _render(bundle, "x", {})
    assert rendered.status == "rendered"
    assert "&lt;function _t at 0x" in rendered.html


@pytest.mark.parametrize(
    "template", ["{{ visitor.note | safe }}", "{% autoescape false %}{{ visitor.note }}{% endautoescape %}"]
)
def test_a_template_that_says_safe_prints_a_visitor_s_markup(template: str, tmp_path: Path) -> None:
    """What docs/TEMPLATES.md says: escaped unless the template itself says not to."""
    bundle = _bundle(tmp_path, {"x": {"template": template}})
    assert _render(bundle, "x", {"attributes": {"note": "<b>hi</b>"}}).html == "<b>hi</b>"
    plain = _bundle(tmp_path / "plain", {"y": {"template": "{{ visitor.note }}"}})
    assert _render(plain, "y", {"attributes": {"note": "<b>hi</b>"}}).html == "&lt;b&gt;hi&lt;/b&gt;"
