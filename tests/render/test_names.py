"""A name no template knows is a warning at its line: `vistor` printed nothing, `recomend(3)` always fell back."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from service.bundle.loader import load_bundle
from service.render.blocks import TEMPLATE_NAMES
from service.render.names import unknown_names
from service.render.sandbox import TailorSandbox
from tests.render.test_sandbox import _write_bundle

ENV = TailorSandbox(jinja2.DictLoader({}), autoescape=lambda name: True)
KNOWN = TEMPLATE_NAMES | set(ENV.globals) | {"t", "recommend"}

CASES = {
    "{{ vistor.first_name }}": [("vistor", 1)],
    "<p>\n{{ recomend(3) }}": [("recomend", 2)],
    "{% for p in recommend(3) %}{{ p.name }}{{ loop.index }}{% endfor %}": [],
    "{% set n = 1 %}{{ n }}{% with m = 2 %}{{ m }}{% endwith %}": [],
    "{% macro b(label) %}{{ label }}{{ caller() }}{{ varargs }}{% endmacro %}{{ b('x') }}": [],
    "{% import 'p.html' as ui %}{% from 'p.html' import a as b, c %}{{ ui.x() }}{{ b() }}{{ c() }}": [],
    "{% if x %}{% set x = 1 %}{% endif %}": [],  # defined somewhere in the template: never flagged
    "{{ content.a }}{{ params.b }}{{ variant }}{{ locale }}{{ language }}{{ today }}{{ segments }}{{ context }}": [],
    "{{ range(2) | list }}{{ dict(a=1) }}{{ namespace() }}{{ cycler(1) }}{{ joiner() }}": [],
    "{{ a }}{{ b }}{{ a }}": [("a", 1), ("b", 1)],
}


@pytest.mark.parametrize("source", CASES)
def test_unknown_names_are_the_ones_nothing_defines(source: str) -> None:
    assert unknown_names(ENV.parse(source), KNOWN) == CASES[source]


def test_the_example_s_templates_name_nothing_unknown() -> None:
    bundle = load_bundle(Path(__file__).parents[2])
    assert [w for w in bundle.warnings if "no name a template knows" in w.message] == []


def test_the_warning_names_the_file_the_line_and_the_name_meant(tmp_path: Path) -> None:
    """An included template sees its includer's names, so only templates nothing includes are checked."""
    _write_bundle(tmp_path, {"x": {"template": "<p>\n{{ vistor.first_name }}{% include 'row.html' %}"}})
    (tmp_path / "content/templates/row.html").write_text("{{ item }}", encoding="utf-8")
    warnings = [w.render() for w in load_bundle(tmp_path).warnings if "no name" in w.message]
    assert warnings == [
        (
            "content/templates/x.html:2: warning: 'vistor' is no name a template knows (did you mean 'visitor'?):"
            " it is undefined when the block renders, so it prints nothing, and a call of it serves the fallback"
        )
    ]


def test_what_the_warning_says_an_unknown_name_does(tmp_path: Path) -> None:
    """Undefined, it prints nothing; called, it makes the block fall back."""
    from tests.render.test_sandbox import FALLBACK, _render  # noqa: PLC0415

    _write_bundle(
        tmp_path, {"read": {"template": "<p>{{ vistor.first_name }}</p>"}, "call": {"template": "{{ recomend(3) }}"}}
    )
    bundle = load_bundle(tmp_path)
    read, call = _render(bundle, "read", {}), _render(bundle, "call", {})
    assert (read.status, read.html) == ("rendered", "<p></p>")
    assert (call.status, call.html) == ("fallback", FALLBACK)
