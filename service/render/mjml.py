"""MJML email blocks, compiled to email-safe HTML once per bundle with their Jinja tags kept.

MJML only keeps text where its components expect text: inside ``mj-text``,
``mj-button``, ``mj-raw`` and attribute values. A Jinja tag written between
components would be moved or dropped, so every tag of the source must come out of
the compiler unchanged, or the bundle is refused with the tag's line.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from mjml import mjml_to_html

from service.core.compile import suggest
from service.render.minify import minify

_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MjmlProblem:
    message: str
    line: int | None


@lru_cache(maxsize=64)
def compile_mjml(source: str) -> tuple[str, tuple[MjmlProblem, ...]]:
    """Email HTML for an MJML template, without its indentation, and what went wrong (empty when nothing did).

    Remembered by source: compiling takes about 30 ms, and a reload recompiles every worker's
    bundle although the email templates rarely change.
    """
    html, problems = _compile(source)
    return minify(html), tuple(problems)


_ROOT = re.compile(r"\A\s*(?:(?:<!--.*?-->|\{#.*?#\})\s*)*<mjml[\s>]", re.DOTALL)  # comments, then <mjml


def _compile(source: str) -> tuple[str, list[MjmlProblem]]:
    if not _ROOT.match(source):  # the compiler would fail inside itself, with a message about its own code
        return "", [MjmlProblem("an email template is an MJML document: it starts with <mjml>", 1)]
    try:
        result = mjml_to_html(source)
    except KeyError as exc:  # the compiler looks each element up in its registry
        name = str(exc.args[0]) if exc.args else ""
        if name.startswith("mj-"):
            return "", [_unknown_element(source, name)]
        return "", [MjmlProblem(f"MJML could not be compiled: KeyError: {exc}", None)]
    except Exception as exc:  # noqa: BLE001 - the compiler raises whatever its parser raises on broken markup
        return "", [MjmlProblem(f"MJML could not be compiled: {type(exc).__name__}: {exc}", None)]
    problems = [MjmlProblem(f"MJML: {error}", None) for error in result.errors]
    html: str = result.html
    kept = Counter(_normal(tag) for tag in _JINJA_TAG.findall(html))
    for match in _JINJA_TAG.finditer(source):
        tag = _normal(match.group())
        if kept[tag] > 0:
            kept[tag] -= 1
            continue
        problems.append(
            MjmlProblem(
                f"MJML dropped or changed the Jinja tag {match.group()!r}: put Jinja inside mj-text, mj-button, "
                "mj-raw or an attribute value",
                source.count("\n", 0, match.start()) + 1,
            )
        )
    return html, problems


def _unknown_element(source: str, name: str) -> MjmlProblem:
    """An element MJML has no component for, at its first use, with the nearest one it has."""
    from mjml.core.registry import components  # noqa: PLC0415 - filled once the compiler has run

    found = re.search(rf"<{re.escape(name)}[\s/>]", source)
    line = source.count("\n", 0, found.start()) + 1 if found else None
    return MjmlProblem(f"MJML has no element <{name}>{suggest(name, components)}", line)


def source_lines(source: str, html: str) -> tuple[int, ...]:
    """For each line of the HTML that MJML made of ``source``, the line of ``source`` it came from.

    Jinja numbers the lines of what it runs, the HTML, which looks nothing like the MJML a
    marketer wrote, and a render error must name the line they wrote. MJML keeps every Jinja tag
    (``_compile`` refuses the template otherwise) and mostly their order, so an HTML line takes
    the line of its first tag, looked for from the last tag matched on; a line without a tag
    takes the line before it.
    """
    written = [(_normal(m.group()), source.count("\n", 0, m.start()) + 1) for m in _JINJA_TAG.finditer(source)]
    lines: list[int] = []
    at, line = 0, 1
    for text in html.split("\n"):
        tag = _JINJA_TAG.search(text)
        found = None if tag is None else _find(written, _normal(tag.group()), at)
        if found is not None:
            at, line = found, written[found][1]
        lines.append(line)
    return tuple(lines)


def _find(written: list[tuple[str, int]], tag: str, start: int) -> int | None:
    """The index of ``tag`` among the source's tags, from ``start`` on, then from the top (the head moves)."""
    for index in itertools.chain(range(start, len(written)), range(start)):
        if written[index][0] == tag:
            return index
    return None


def _normal(tag: str) -> str:
    return " ".join(tag.replace("&quot;", '"').replace("&amp;", "&").replace("&#39;", "'").split())
