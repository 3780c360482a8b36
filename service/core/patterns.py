"""The regular expressions of ``matches``, run by RE2: time linear in the text, whatever the pattern.

A visitor's attributes come from outside, and Python's backtracking engine can take exponential
time on a pattern with nested quantifiers (``^(a+)+$`` against 30 letters and a ``!`` stalls a
worker for seconds). RE2 never backtracks, so a rule a marketer writes cannot become a door for
anyone who sends attributes (ADR 0016). The price is its syntax: no lookaround and no
backreferences, and ``\\d``, ``\\w``, ``\\b`` are ASCII (``\\pN``, ``\\pL`` are the Unicode classes).
A pattern outside that syntax is a validation error, never a silent fallback to another engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

SYNTAX = "RE2 syntax: no lookaround or backreferences"


def _options(ignore_case: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason comes back in the exception; RE2's own log would print to stderr
    options.case_sensitive = not ignore_case
    return options


def searcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], Any]:
    """The pattern's ``search``: a match object somewhere in the text, or None."""
    return re2.compile(pattern, _options(ignore_case)).search  # type: ignore[no-any-return]


def check(pattern: str) -> str:
    """``pattern`` if RE2 compiles it; else ValueError with RE2's reason."""
    try:
        searcher(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if isinstance(exc.args[0], bytes) else str(exc.args[0])
        raise ValueError(f"invalid regular expression ({SYNTAX}): {reason}") from None
    return pattern
