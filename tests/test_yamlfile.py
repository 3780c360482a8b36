"""Rule files are read as YAML 1.2 (no Norway problem), with lines, and without duplicate keys."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.indentation import misaligned
from service.bundle.yamlfile import YamlError, parse_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no", "no"),
        ("off", "off"),
        ("yes", "yes"),
        ("true", True),
        ("False", False),
        ("01234", "01234"),
        ("12:30", "12:30"),
        ("2026-11-22", "2026-11-22"),
        ("0x1F", "0x1F"),
        ("42", 42),
        ("-7", -7),
        ("3.5", 3.5),
        ("1e3", 1000.0),
        ("null", None),
        ("~", None),
        ("4.0.0", "4.0.0"),
        ('"5"', "5"),
    ],
)
def test_scalars_follow_yaml_1_2(text: str, value: object) -> None:
    parsed = parse_yaml(f"key: {text}\n").data["key"]
    assert parsed == value
    assert type(parsed) is type(value)


def test_every_key_and_item_has_its_line() -> None:
    doc = parse_yaml("a:\n  b:\n    - x\n    - c: 1\n")
    assert doc.lines[("a",)] == 1
    assert doc.lines[("a", "b")] == 2
    assert doc.lines[("a", "b", 1, "c")] == 4
    assert doc.line_of(("a", "b", 1, "c", "missing", 3)) == 4


def test_duplicate_keys_are_errors_at_the_second_one() -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert (caught.value.message, caught.value.line) == ("key 'c' appears twice", 4)


def test_merge_keys_still_work() -> None:
    doc = parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert doc.data["other"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "the file is empty", 1),
        ("a: [1\n", "YAML syntax", 2),
        ("a: 1\n---\nb: 2\n", "YAML syntax", 2),
        ("[1]: x\n", "a key must be plain text", 1),
        # text with ": " in it, unquoted
        ("a:\n  description: Rule: spent 500\n", "text with ': ' in it goes in quotes", 2),
        ("v: { headline: Sale: 20% off, x: 1 }\n", "text with ': ' in it goes in quotes", 1),
        ("a:\n  - name: Sale: now\n", "text with ': ' in it goes in quotes", 2),
        # a line out of step, named with the lines it could line up with
        (
            "a:\n  b: 1\n c: 2\n",
            "line 3 is indented 1 space and lines up with no line above it (line 1 is at 0, line 2 is at 2)",
            3,
        ),
        ("a:\n b: 1\n  c: 2\n", "line 3 is indented 2 spaces and lines up with no line above it (line 2 is at 1)", 3),
        (
            "a:\n  - b: 1\n   c: 2\n",
            "line 3 is indented 3 spaces and lines up with no line above it (line 2 is at 2, line 2 is at 4)",
            3,
        ),
        ("a:\n  - {b: 1}\n   - {c: 2}\n", "line 3 is indented 3 spaces", 3),
        ("a:\n  - x\n  y: 1\n", "line 3 is a key in the column where line 2 above it has list items ('- ')", 3),
        ("a:\n  b: 1\n  - c\n", "line 3 is a list item in the column where line 2 above it has keys", 3),
        ("rules:\n  - name: x\n    when: 1\n  serve: y\n", "line 4 is a key in the column where line 2 above", 4),
        ("a: { attr: x, >=: 5 }\n", "YAML syntax: '>=' cannot start a key; write the operator as gte", 1),
        ("a:\n  attr: x\n  >: 5\n", "YAML syntax: '>' cannot start a key; write the operator as gt", 3),
        ("a:\n  - { attr: x, >=: 5 }\n", "write the operator as gte", 2),
        ("a: |\n  text\n    more: 1\nb:\n   c: 1\n  d: 2\n", "line 6 is indented 2 spaces", 6),
    ],
)
def test_unreadable_yaml_says_where(text: str, message: str, line: int) -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml(text)
    assert message in caught.value.message
    assert caught.value.line == line


TAB_MESSAGE = "YAML syntax: a tab indents this line; YAML indents with spaces only"


def _copies(edit: Callable[[str], str | None]) -> list[tuple[str, int, str]]:
    """The example bundle's and the checks' YAML, once per line ``edit`` changes: (file, line, text)."""
    root = Path(__file__).parents[1]
    globs = ("rules/*.yaml", "content/*.yaml", "tests/checks/bundle/**/*.yaml")
    copies = []
    for path in sorted(p for pattern in globs for p in root.glob(pattern)):
        lines = path.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(lines):
            edited = edit(line)
            if edited is not None:
                copies.append((path.name, i + 1, "\n".join([*lines[:i], edited, *lines[i + 1 :]])))
    return copies


def _tabbed_copies() -> list[tuple[str, int, str]]:
    """Every indented line, its first space made a tab."""
    return _copies(lambda line: "\t" + line[1:] if line.startswith(" ") else None)


def _refusal(text: str) -> tuple[str, int | None] | None:
    try:
        parse_yaml(text)
    except YamlError as exc:
        return str(exc), exc.line
    return None


def test_a_tab_in_any_indentation_is_named_at_its_line() -> None:
    """A corpus, not an example: PyYAML's words for a tab differ with where it sits."""
    copies = _tabbed_copies()
    refused = [(name, line, _refusal(text)) for name, line, text in copies]
    wrong = [(name, line, got) for name, line, got in refused if got is not None and got != (TAB_MESSAGE, line)]
    assert wrong == []
    named = sum(got is not None for _, _, got in refused)
    assert named >= 0.95 * len(copies) > 300  # a tab inside a multi-line scalar is text, not indentation


def _shifted_copies(shift: int) -> list[tuple[str, int, str]]:
    """Every indented line that is not blank or a comment, moved ``shift`` spaces."""

    def moved(line: str) -> str | None:
        if not line.startswith(" ") or not line.strip() or line.lstrip().startswith("#"):
            return None
        return line[-shift:] if shift < 0 else " " * shift + line

    return _copies(moved)


@pytest.mark.parametrize("shift", [-1, 1])
def test_a_line_moved_by_one_space_is_named(shift: int) -> None:
    """A corpus: PyYAML says "did not find expected key", often a line later; the message names the line moved."""
    copies = _shifted_copies(shift)
    refused = [(name, number, _refusal(text)) for name, number, text in copies]
    named = [got is not None and (got[1] == number or f"line {number} " in got[0]) for _, number, got in refused]
    unnamed = [(name, number, got) for (name, number, got), ok in zip(refused, named, strict=True) if got and not ok]
    assert unnamed == []
    assert sum(named) >= 0.9 * len(copies) > 300  # the rest still parse: a move that nests a key is valid YAML


def test_well_indented_files_name_no_line() -> None:
    root = Path(__file__).parents[1]
    globs = ("rules/*.yaml", "content/*.yaml", "tests/checks/bundle/**/*.yaml", "models/*.yaml")
    for path in sorted(p for pattern in globs for p in root.glob(pattern)):
        text = path.read_text(encoding="utf-8")
        assert [n for n in range(1, text.count("\n") + 2) if misaligned(text, n)] == [], path


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" \n:-#'\"|>{}[],ab\\", max_size=120))
def test_any_text_is_parsed_or_refused_with_a_line(text: str) -> None:
    """The indentation hint runs on the error path: it must never turn a refusal into a crash."""
    refused = _refusal(text)
    assert refused is None or refused[1] is None or 1 <= refused[1] <= text.count("\n") + 2


# Where a plain value starts: after ``key: `` in a block line, or after ``{ key: `` in a flow mapping.
_VALUE_AT = re.compile(
    r"""^\s*(?:- )?[A-Za-z_][\w.-]*: (?=[^\s'"\[{|>&*!#])|[{,]\s*[A-Za-z_][\w.-]*: (?=[^\s'"\[{,}])"""
)


def _sale(line: str) -> str | None:
    """The line with "Sale: " put in front of its first plain value, as a marketer writes a headline."""
    found = _VALUE_AT.search(line)
    return None if found is None else line[: found.end()] + "Sale: " + line[found.end() :]


def test_unquoted_text_with_a_colon_is_named_at_its_line_with_the_quotes_to_add() -> None:
    """A corpus: every plain value of the example's YAML given a "Sale: " in front; flow and block alike."""
    copies = _copies(_sale)
    refused = [(name, number, _refusal(text)) for name, number, text in copies]
    hinted = [(n, number, got) for n, number, got in refused if got is not None]
    wrong = [(n, number, got) for n, number, got in hinted if got[1] != number or "goes in quotes" not in got[0]]
    assert wrong == []
    assert len(hinted) >= 0.95 * len(copies) > 200
