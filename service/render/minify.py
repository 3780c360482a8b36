"""Drop the indentation of compiled email HTML, once per bundle, without changing what it renders.

MJML's output is about a quarter indentation, and every byte of it is built, JSON-escaped and
sent again for every recipient. In HTML outside ``<pre>`` and its kin, a run of whitespace renders
as one space whatever it holds, and a newline renders as a space: so a run that holds a newline
can become just its newlines (kept so that line numbers of the template stay the same). Left
exactly as they are:

* runs without a newline (``</a> <a>``: the space between two links);
* ``<pre>``, ``<textarea>``, ``<script>`` and any element styled with ``white-space``, to their end;
* quoted attribute values (``alt``, ``title`` and the like are text);
* Jinja tags, and the newlines Jinja removes itself (``trim_blocks`` after a ``%}`` or ``#}``, and
  the template's last one), so that ``text{% if x %}⏎   more`` still prints a space between
  ``text`` and ``more``.
"""

from __future__ import annotations

import re

# Jinja tags first, then an element's start or end (its name), a quote inside a tag, a run of whitespace.
_TOKEN = re.compile(
    r"(?P<jinja>\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})"
    r"|<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9:-]*)"
    r"|(?P<quote>[\"'])"
    r"|(?P<space>\s+)"
    r"|(?P<end>>)",
    re.DOTALL,
)
_VERBATIM = frozenset({"pre", "textarea", "script", "xmp", "plaintext", "listing"})
_WHITE_SPACE_STYLE = re.compile(r"white-space", re.IGNORECASE)
_TRIMMED_AFTER = ("%}", "#}")  # trim_blocks: Jinja drops the newline right after these, unless "-%}" already did


def minify(html: str) -> str:
    """``html`` with every whitespace run that holds a newline reduced to its newlines, where that renders the same."""
    out: list[str] = []
    position = 0
    in_tag: str | None = None  # the name of the element whose start tag is being read
    tag_start = 0
    quote: str | None = None
    verbatim: tuple[str, int] | None = None  # (element, depth) whose content is kept as it is
    jinja, jinja_end = "", -1  # the last Jinja tag and where it ended
    for match in _TOKEN.finditer(html):
        kind = match.lastgroup
        text = match.group()
        out.append(html[position : match.start()])
        position = match.end()
        if kind == "jinja":
            out.append(text)
            jinja, jinja_end = text, match.end()
            continue
        after_jinja = jinja if match.start() == jinja_end else ""
        if quote is not None:  # inside an attribute value: only its closing quote matters
            out.append(text)
            if text == quote:
                quote = None
            continue
        if kind == "space":
            keep = verbatim is not None or "\n" not in text
            out.append(text if keep else _newlines(text, after_jinja, match.end() == len(html)))
        elif kind == "quote":
            out.append(text)
            if in_tag is not None:
                quote = text
        elif kind == "end":
            out.append(text)
            if in_tag is not None:
                verbatim = _entered(verbatim, in_tag, html[tag_start : match.end()])
                in_tag = None
        else:
            out.append(text)
            name = match.group("name").lower()
            verbatim = _left(verbatim, name) if match.group("close") else _nested(verbatim, name)
            if not match.group("close"):
                in_tag, tag_start = name, match.start()
    out.append(html[position:])
    return "".join(out)


def _newlines(run: str, after_jinja: str, at_end: bool) -> str:
    """``run``'s newlines, and a space where Jinja's own whitespace rules would otherwise change what prints.

    Jinja drops the template's last newline, and (``trim_blocks``) a newline right after a block
    tag or comment. Those stay, what is between them keeps its newlines (or one space if it had
    none), and a run that did not start with a newline after such a tag does not start with one now.
    """
    trimmed = after_jinja.endswith(_TRIMMED_AFTER) and not after_jinja.endswith(("-%}", "-#}"))
    if at_end and not run.endswith("\n"):
        return run  # a newline last would be dropped
    if run == "\n":
        return run
    head = "\n" if trimmed and run.startswith("\n") else ""
    tail = "\n" if at_end else ""
    body = run[len(head) : len(run) - len(tail)]
    newlines = body.count("\n")
    middle = "\n" * newlines if newlines else (" " if body else "")
    if trimmed and not head and middle.startswith("\n"):
        middle = " " + middle  # else trim_blocks would now remove it
    return head + middle + tail


def _entered(verbatim: tuple[str, int] | None, name: str, start_tag: str) -> tuple[str, int] | None:
    """After a start tag: whether its content is kept as it is (and how deep in such an element we are)."""
    if verbatim is not None:
        return verbatim
    if name in _VERBATIM or _WHITE_SPACE_STYLE.search(start_tag):
        return (name, 1)
    return None


def _nested(verbatim: tuple[str, int] | None, name: str) -> tuple[str, int] | None:
    if verbatim is not None and verbatim[0] == name:
        return (name, verbatim[1] + 1)
    return verbatim


def _left(verbatim: tuple[str, int] | None, name: str) -> tuple[str, int] | None:
    if verbatim is None or verbatim[0] != name:
        return verbatim
    return None if verbatim[1] <= 1 else (name, verbatim[1] - 1)
