"""What README.md says about the API and the bundle, checked against the code and the files."""

from __future__ import annotations

import re
from pathlib import Path

from service.http.decisions import decision_ids
from service.http.problems import PROBLEM_TYPES

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEADINGS = {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}
COUNTER_DIGITS = 16  # decision_ids: a per-worker prefix, then a counter in hex


def _paragraph_after(start: str) -> str:
    at = README.index(start)
    return README[at : README.index("\n\n", at)]


def test_the_error_types_are_every_problem_type() -> None:
    listed = re.findall(r"`([a-z-]+)` \(\d{3}", _paragraph_after("`type` is one of"))
    assert sorted(listed) == sorted(PROBLEM_TYPES)
    for code in listed:
        status = PROBLEM_TYPES[code][0]
        assert f"`{code}` ({status}" in README


def test_every_pointer_into_the_readme_names_a_section() -> None:
    files = sorted([*ROOT.glob("rules/*.yaml"), *ROOT.glob("content/**/*.yaml"), *ROOT.glob("docs/**/*.md")])
    pointers = [
        (path.relative_to(ROOT).as_posix(), section)
        for path in files
        for section in re.findall(r'README(?:\.md)? \("([^"]+)"\)', path.read_text(encoding="utf-8"))
    ]
    assert pointers, "the example bundle points into the README"
    assert [p for p in pointers if p[1] not in HEADINGS] == []


def test_the_decision_id_example_has_the_shape_of_real_ones() -> None:
    example = re.search(r'"decision_id": "([^"]+)"', README)
    assert example is not None
    real = decision_ids()()
    for value in (example.group(1), real):
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        # the counter of a worker that has served a handful of decisions, not random digits
        assert int(value[-COUNTER_DIGITS:], 16) < 2**20


def test_make_run_takes_the_port_and_host_the_readme_shows() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "make run PORT=9000 HOST=0.0.0.0" in README
    assert "PORT ?= 8080" in makefile
    assert "HOST ?= 127.0.0.1" in makefile
    assert "--host $(HOST) --port $(PORT)" in makefile
