"""A block tag that is never closed is named at the line that opens it, not at the end of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.bundle.loader import load_bundle
from service.core.errors import BundleError
from tests.render.test_sandbox import _write_bundle

CASES = [
    ("<p>\n\n{% if visitor.first_name %}\nHi\n\n</p>\n", "this {% if %} is never closed: add {% endif %}", 3),
    ("{% if a %}\n{% for x in [1] %}\n{{ x }}\n{% endif %}\n", "template syntax: Encountered unknown tag 'endif'", 4),
    ("{% for x in [1] %}\n{% if x %}\n{% endif %}\n", "this {% for %} is never closed: add {% endfor %}", 1),
    ("{% macro m() %}\n{% call m() %}\n{% endcall %}\n", "this {% macro %} is never closed: add {% endmacro %}", 1),
]


@pytest.mark.parametrize(("source", "message", "line"), CASES)
def test_a_tag_left_open_is_named_where_it_opens(source: str, message: str, line: int, tmp_path: Path) -> None:
    _write_bundle(tmp_path, {"x": {"template": source}})
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == ("content/templates/x.html", line)
    assert message in problem.message
