"""Static params: a value the compiler accepts renders, and a value it refuses would have fallen back.

Each template feeds ``params.v`` to one formatting filter or to arithmetic; each value of
``VALUES`` is compiled with it. The compiler's verdict must match what rendering that value
without the check does: either the bundle is refused with the param's file and path, or
the block renders for every locale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2 import Environment

from service.core.errors import BundleError
from service.core.rendering import RenderInputs
from service.core.spec import ContentFile, LocaleFile
from service.render.blocks import TemplateFile, compile_blocks
from service.render.params import needs_of

USES = {
    "price": "{{ params.v | price }}",
    "number": "{{ params.v | number(2) }}",
    "percent": "{{ params.v | default(0) | percent }}",
    "date": '{{ params.v | date("full") }}',
    "datetime": '{{ params.v | date("longtime") }}',
    "divide": "{{ params.v / 100 }}",
    "negate": "{{ -params.v }}",
    "conditional": "{{ (params.v if visitor.x else params.v) | number }}",
    "by key": '{{ params["v"] | price }}',
    "weekday": "{{ today | next_weekday(params.v) | date }}",
}
VALUES: list[Any] = [
    0, 7, -3, 2.5, 1e300, "12.5", "1e3", "ten", "", "$5", True, False, None, [1], {"a": 1},
    "2027-12-24", "2027-12-24T18:30:00", "2027-02-30", "24 Dec", "20271224", 20271224, "NaN", "sunday", "Friday",
    "sun",
]  # fmt: skip
NOW = datetime(2026, 12, 1, tzinfo=UTC)
LOCALES = ["en", "de", "fr-FR"]


def _compile(source: str, value: Any) -> Any:
    content = ContentFile.model_validate(
        {"version": 1, "variants": {"v": {"render": {"template": "t.html", "params": {"v": value}, "fallback": "-"}}}}
    )
    locale = LocaleFile.model_validate({"version": 1, "messages": {"hi": "Hi"}})
    template = TemplateFile("t.html", "content/templates/t.html", source)
    return compile_blocks("r", [("content/x.yaml", content)], [("content/locales/en.yaml", locale)], [template])


def _without_the_check(source: str, value: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr("service.render.blocks.problems_of", lambda params, needs, locale: iter(()))
        return _compile(source, value)


@pytest.mark.parametrize("use", USES)
def test_a_param_the_compiler_accepts_renders_and_one_it_refuses_falls_back(
    use: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = USES[use]
    for value in VALUES:
        blocks = _without_the_check(source, value, monkeypatch)
        statuses = {
            blocks.render("v", RenderInputs({}, {"locale": locale}, [], NOW, True)).status for locale in LOCALES
        }
        try:
            _compile(source, value)
        except BundleError as exc:
            assert statuses == {"fallback"}, f"{use}: {value!r} is refused but renders"
            [problem] = exc.problems
            assert (problem.file, problem.path) == ("content/x.yaml", ("variants", "v", "render", "params", "v"))
        else:
            assert statuses == {"rendered"}, f"{use}: {value!r} compiles but falls back"


def test_every_use_of_the_example_templates_params_is_found() -> None:
    tree = Environment().parse(USES["conditional"] + USES["date"] + USES["divide"])
    assert {(need.name, need.use) for need in needs_of([tree])} == {
        ("v", "the 'number' filter"),
        ("v", "the 'date' filter"),
        ("v", "arithmetic"),
    }


@pytest.mark.parametrize(
    "source",
    [
        '{% set d = params.v %}{{ d | date("full") }}',
        '{% with d = params.v %}{{ d | date("full") }}{% endwith %}',
        '{% macro m(d) %}{{ d | date("full") }}{% endmacro %}{{ m(params.v) }}',
    ],
    ids=["set", "with", "macro"],
)
def test_a_param_passed_on_is_not_followed_and_falls_back_when_it_renders(source: str) -> None:
    """What docs/TEMPLATES.md says of the check's reach: only params.name read where it is used."""
    blocks = _compile(source, "24 Dec")
    assert blocks.render("v", RenderInputs({}, {}, [], NOW, True)).status == "fallback"


def test_a_block_without_a_fallback_that_fails_serves_empty_html() -> None:
    """What docs/TEMPLATES.md says of a variant without `fallback`."""
    content = ContentFile.model_validate({"version": 1, "variants": {"v": {"render": {"template": "t.html"}}}})
    locale = LocaleFile.model_validate({"version": 1, "messages": {"hi": "Hi"}})
    template = TemplateFile("t.html", "content/templates/t.html", "{{ 1 // (visitor | length) }}")
    blocks = compile_blocks("r", [("content/x.yaml", content)], [("content/locales/en.yaml", locale)], [template])
    rendered = blocks.render("v", RenderInputs({}, {}, [], NOW, True))
    assert (rendered.status, rendered.html) == ("fallback", "")
