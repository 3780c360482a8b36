"""Which line of a YAML file is indented out of step, when PyYAML's error does not say.

A key moved by one space is the commonest slip in a hand-edited rule file, and PyYAML reports
it as "did not find expected key" or "mapping values are not allowed", often at the line after.
Those words name no indentation, so the reader looks at the error's line and the one before it
and says which of them lines up with nothing above it, and where it could line up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK_SCALAR = re.compile(r"(?:^|[:\s-])[|>][-+0-9]*$")  # ``key: |`` or ``- >-``: text follows
_COMMENT = re.compile(r"\s+#.*$")
_KEY = re.compile(r"""(?:"[^"]*"|'[^']*'|[^\s\[{#"'-][^:]*):(?:\s|$)""")


@dataclass(frozen=True, slots=True)
class Misaligned:
    line: int  # 1-based
    hint: str


def misaligned(text: str, error_line: int | None) -> Misaligned | None:
    """The line at or just before ``error_line`` whose indentation fits no line above it."""
    if error_line is None:
        return None
    rows = _structural(text.split("\n"))
    for number in (error_line, error_line - 1):
        found = _check(rows, number)
        if found is not None:
            return found
    return None


Row = tuple[int, int, str]  # line number, indentation, the content without a trailing comment


def _structural(lines: list[str]) -> list[Row]:
    """The lines that carry structure: no blank or comment lines, nothing inside a scalar's text."""
    rows: list[Row] = []
    scalar_indent: int | None = None  # the indentation of the key that opened a block scalar
    quote: str | None = None  # the quote of a quoted scalar that runs on over lines
    for number, raw in enumerate(lines, start=1):
        content = raw.strip()
        indent = len(raw) - len(raw.lstrip(" "))
        if quote is not None:
            quote = quote if _closing(content, quote, 0) is None else None
            continue  # the scalar's next line: its indentation is folded away
        if scalar_indent is not None and (not content or indent > scalar_indent):
            continue  # the block scalar's text: its indentation is the author's own
        scalar_indent = None
        if not content or content.startswith("#"):
            continue
        quote = _open_quote(content)  # before the comment goes: a quoted "#" is text
        content = _COMMENT.sub("", content)
        rows.append((number, indent, content))
        if _BLOCK_SCALAR.search(content):
            scalar_indent = indent
    return rows


def _open_quote(content: str) -> str | None:
    """The quote of a ``key: 'text`` or ``- "text`` whose scalar goes on after this line."""
    value = content[2:] if content.startswith("- ") else content.partition(": ")[2] if _KEY.match(content) else ""
    value = value.strip()
    if not value or value[0] not in "'\"":
        return None
    return value[0] if _closing(value, value[0], 1) is None else None


def _closing(text: str, quote: str, start: int) -> int | None:
    """Where the quote that ends a quoted scalar is in ``text``; ``''`` and ``\\"`` are text."""
    i = start
    while i < len(text):
        char = text[i]
        if quote == '"' and char == "\\":
            i += 2
            continue
        if char == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def _check(rows: list[Row], number: int) -> Misaligned | None:
    """Whether the row at ``number`` is out of step with the rows before it."""
    at = next((i for i, row in enumerate(rows) if row[0] == number), None)
    if at is None or at == 0:
        return None
    _, indent, content = rows[at]
    previous = rows[at - 1]
    if indent > previous[1] and (_opens_block(previous[2]) or not _is_entry(content)):
        return None  # a block's first line, or a plain text's next line: any depth will do
    chain = _chain(rows[:at])
    if indent in {column for _, column in chain}:
        return _mixed(rows, at, chain)
    below = max((p for p in chain if p[1] < indent), key=lambda p: p[1], default=None)
    above = min((p for p in chain if p[1] > indent), key=lambda p: p[1], default=None)
    near = ", ".join(f"line {line} is at {column}" for line, column in filter(None, (below, above)))
    unit = "space" if indent == 1 else "spaces"
    return Misaligned(number, f"line {number} is indented {indent} {unit} and lines up with no line above it ({near})")


def _mixed(rows: list[Row], at: int, chain: list[tuple[int, int]]) -> Misaligned | None:
    """A key among list items, or an item among keys, in the column it lines up with."""
    number, indent, content = rows[at]
    line = next(line for line, column in chain if column == indent)
    beside = next(row for row in rows[:at] if row[0] == line)
    if beside[1] != indent:  # it lines up with an item's first key, which is a key
        beside = (beside[0], indent, beside[2][beside[2].index("-") + 1 :].lstrip(" "))
    item, other = content.startswith("- "), beside[2].startswith("- ")
    if item == other or not _is_entry(content) or _compact(rows[:at], indent):
        return None
    what, them = ("a list item", "keys") if item else ("a key", "list items ('- ')")
    return Misaligned(number, f"line {number} is {what} in the column where line {line} above it has {them}")


def _compact(rows: list[Row], column: int) -> bool:
    """Whether ``key:`` holds a list of items in its own column (``key:`` then ``- a``), which YAML allows."""
    for _, indent, content in reversed(rows):
        if indent > column or (indent == column and content.startswith("- ")):
            continue  # the list's items and what they hold
        return indent == column and content.endswith(":")
    return False


def _chain(rows: list[Row]) -> list[tuple[int, int]]:
    """(line, column) of the places a next line may line up with: the previous line and its blocks.

    Walking up, each line less indented than all after it holds the ones below: it and, for a
    list item, its first key's column are places to line up with.
    """
    chain: list[tuple[int, int]] = []
    lowest: int | None = None
    for row in reversed(rows):
        if lowest is not None and row[1] >= lowest:
            continue
        lowest = row[1]
        item = _item_column(row)
        if item is not None:
            chain.append((row[0], item))
        chain.append((row[0], lowest))
        if lowest == 0:
            break
    return chain


def _item_column(row: Row) -> int | None:
    """For ``- key: value``, the column of ``key``, where the item's next keys line up."""
    _, indent, content = row
    if not content.startswith("- "):
        return None
    rest = content[2:].lstrip(" ")
    return indent + len(content) - len(rest) if rest and not rest.startswith(("-", "{", "[")) else None


def _opens_block(content: str) -> bool:
    """``key:`` or ``-`` with nothing after it: the next line may be deeper."""
    return content == "-" or content.endswith((":", "[", "{", ","))


def _is_entry(content: str) -> bool:
    """A key or a list item: what a line of structure, not of text, starts with."""
    return content.startswith("- ") or content == "-" or _KEY.match(content) is not None
