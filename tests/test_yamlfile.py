"""Rule files are read as YAML 1.2 (no Norway problem), with lines, and without duplicate keys."""

from __future__ import annotations

import pytest

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
    ],
)
def test_unreadable_yaml_says_where(text: str, message: str, line: int) -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml(text)
    assert message in caught.value.message
    assert caught.value.line == line


TAB_MESSAGE = "YAML syntax: a tab indents this line; YAML indents with spaces only"


def _tabbed_copies() -> list[tuple[str, int, str]]:
    """Every indented line of the example bundle's and the checks' YAML, its first space made a tab."""
    from pathlib import Path  # noqa: PLC0415

    root = Path(__file__).parents[1]
    globs = ("rules/*.yaml", "content/*.yaml", "tests/checks/bundle/**/*.yaml")
    copies = []
    for path in sorted(p for pattern in globs for p in root.glob(pattern)):
        lines = path.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(lines):
            if line.startswith(" "):
                copies.append((path.name, i + 1, "\n".join([*lines[:i], "\t" + line[1:], *lines[i + 1 :]])))
    return copies


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
