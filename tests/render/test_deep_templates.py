"""Templates nested past what a recursive parser or tree walk can take are bundle errors at their line.

Jinja parses, checks and compiles a template by recursion: 70 nested brackets, 300 nested
``{% for %}`` or a chain of 20,000 filters ended ``tailor validate`` and ``tailor serve`` with a
RecursionError traceback that named no file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.bundle.loader import load_bundle
from service.core.errors import BundleError
from tests.render.test_sandbox import _write_bundle


def _nested(open_: str, inner: str, close: str, times: int) -> str:
    return open_ * times + inner + close * times


DEEP = {
    "brackets 70": "{{ " + _nested("(", "1", ")", 70) + " }}",
    "brackets 20000": "{{ " + _nested("(", "1", ")", 20000) + " }}",
    "lists 5000": "{{ " + _nested("[", "1", "]", 5000) + " }}",
    "ifs 500": _nested("{% if x %}", "a", "{% endif %}", 500),
    "fors 300": _nested("{% for i in [1] %}", "a", "{% endfor %}", 300),
    "attributes 20000": "{{ visitor" + ".a" * 20000 + " }}",
    "filters 20000": "{{ 'a'" + " | upper" * 20000 + " }}",
    "pluses 50000": "{{ 1" + " + 1" * 50000 + " }}",
}
REFUSED = ("template: brackets or tags nest too deeply to be read", "template: expressions or tags nest too deeply")


@pytest.mark.parametrize("source", DEEP.values(), ids=DEEP.keys())
def test_a_template_nested_too_deeply_is_refused_at_its_line(source: str, tmp_path: Path) -> None:
    _write_bundle(tmp_path, {"x": {"template": "<p>\n\n" + source}})
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    [problem] = caught.value.problems
    assert problem.file == "content/templates/x.html"
    assert problem.message.startswith(REFUSED), problem.message
    assert problem.line == 3


def test_validate_says_so_without_a_traceback(tmp_path: Path) -> None:
    _write_bundle(tmp_path, {"x": {"template": DEEP["brackets 70"]}})
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "content/templates/x.html:1: template: brackets or tags nest too deeply" in done.stdout


def test_the_example_s_templates_are_far_from_the_limit() -> None:
    from service.render.blocks import MAX_TREE_DEPTH, _too_deep  # noqa: PLC0415
    from service.render.sandbox import TailorSandbox  # noqa: PLC0415

    env = TailorSandbox(None, autoescape=True)  # type: ignore[arg-type]
    root = Path(__file__).parents[2] / "content" / "templates"
    for path in root.rglob("*.*"):
        tree = env.parse(path.read_text(encoding="utf-8"))
        assert _too_deep(tree) is None, path
    assert MAX_TREE_DEPTH >= 10 * 5  # five times the deepest of them (10)
