"""A render error in an MJML template names the line of the MJML, not of the HTML it was compiled to."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.bundle.loader import load_bundle
from service.core.rendering import RenderInputs
from service.render.mjml import _JINJA_TAG, _normal, compile_mjml, source_lines

ROOT = Path(__file__).parents[2]
EMAIL = "content/templates/email/cart.mjml"
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
BREAK = "{{ (content | length) // 0 }}"  # not folded at compile: a ZeroDivisionError when it runs


def _tag_lines(source: str) -> dict[str, set[int]]:
    lines: dict[str, set[int]] = {}
    for match in _JINJA_TAG.finditer(source):
        lines.setdefault(_normal(match.group()), set()).add(source.count("\n", 0, match.start()) + 1)
    return lines


def test_every_html_line_with_a_tag_maps_to_a_line_that_has_it() -> None:
    """The example's email, line by line: the mapped line holds the HTML line's first tag."""
    source = (ROOT / EMAIL).read_text(encoding="utf-8")
    html, problems = compile_mjml(source)
    assert problems == ()
    written = _tag_lines(source)
    lines = source_lines(source, html)
    checked = 0
    for number, text in enumerate(html.split("\n"), start=1):
        tag = _JINJA_TAG.search(text)
        if tag is not None:
            assert lines[number - 1] in written[_normal(tag.group())], (number, text)
            checked += 1
    assert checked >= 10
    assert len(lines) == html.count("\n") + 1


def _bundle_with(tmp_path: Path, line: int) -> Path:
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    path = tmp_path / EMAIL
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = re.sub(r"\{[{%]", lambda tag: BREAK + tag.group(), lines[line - 1], count=1)  # runs first
    path.write_text("\n".join(lines), encoding="utf-8")
    return tmp_path


EXPRESSION_LINES = [
    number
    for number, text in enumerate((ROOT / EMAIL).read_text(encoding="utf-8").split("\n"), start=1)
    if "{{" in text and "<mj-title" not in text  # the title is text of the head: Jinja runs it, MJML moved it
]


@pytest.mark.parametrize("line", EXPRESSION_LINES)
def test_a_render_error_names_the_mjml_line(line: int, tmp_path: Path) -> None:
    bundle = load_bundle(_bundle_with(tmp_path, line))
    rendered = bundle.blocks.render("email_cart_reminder", RenderInputs({}, {}, [], NOW, personalization=True))
    assert (rendered.status, rendered.error) == ("fallback", f"ZeroDivisionError at {EMAIL}:{line}")
