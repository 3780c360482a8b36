"""The Jinja environment templates run in: Jinja's immutable sandbox, tightened for marketer-written templates.

Jinja's sandbox stops attribute escapes (``__class__``, ``__globals__``) and writes to
lists and dicts. It does not stop a template from asking for a gigabyte: ``"x" * 10**9``,
``"x"|center(10**9)`` (folded at compile time, so even compiling it hangs), nested
``range`` loops, or a macro that doubles a string thirty times. So on top of it:

* plain data only: strings, lists and dicts expose a short allowlist of methods
  (no ``format``, ``ljust``, ``join``, ``replace``, ``expandtabs``);
* every operator, filter and join that can grow a value checks the size it would
  produce *before* producing it (``MAX_VALUE_CHARS``, ``MAX_ITEMS``, ``MAX_WIDTH``);
* every ``for`` loop and ``range`` draws from one per-render iteration budget;
* ``random`` and ``lipsum`` are gone: a render depends only on its inputs, which the
  render cache relies on.

The renderer caps the size of the whole output and turns every exception into the
variant's fallback content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from datetime import date
from typing import Any

from jinja2 import ChainableUndefined, nodes, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_VALUE_CHARS = 100_000  # any one string a template builds
MAX_ITEMS = 10_000  # any one list a template builds
MAX_WIDTH = 1_000  # widths and counts given to center, indent, batch, %-formats
MAX_INT_BITS = 4_096  # integers beyond this are arithmetic bombs, not prices
MAX_EXPONENT = 256
DEFAULT_LOOP_BUDGET = 10_000  # loop iterations and range items per render, all loops together

LOOP_HOOK = "_tailor_loop"
CONCAT_HOOK = "_tailor_concat"


class RenderLimitError(Exception):
    """A template asked for more than a block may use."""


# Methods that only read, and whose output is no larger than their input.
_STR_METHODS = frozenset(
    {"upper", "lower", "title", "capitalize", "strip", "lstrip", "rstrip", "startswith", "endswith"}
    | {"split", "count", "find", "isdigit", "isalpha", "isspace", "islower", "isupper"}
)
_ALLOWED: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"keys", "values", "items", "get"})),
    ((list, tuple), frozenset({"count", "index"})),
    (date, frozenset({"year", "month", "day", "weekday", "isoweekday", "isoformat"})),
    ((int, float, bool), frozenset()),
)


class Budget:
    """Loop iterations left in the current render."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise RenderLimitError("the template loops too much: over the per-render iteration budget")


# The renderer sets a fresh budget around each render; outside a render (a template
# folded while compiling) nothing may loop at all.
BUDGET: ContextVar[Budget] = ContextVar("tailor_render_budget", default=Budget(0))  # noqa: B039


class TailorSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox, plain data only, sizes checked before anything large is built."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, loader: Any, autoescape: Callable[[str | None], bool]) -> None:
        super().__init__(
            loader=loader,
            autoescape=autoescape,
            undefined=ChainableUndefined,  # visitor.address.city | default("...") when there is no address
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,  # templates live as long as their bundle
        )
        self.concat = _checked_concat  # type: ignore[method-assign]
        self.globals.pop("lipsum", None)
        self.globals["range"] = _budget_range
        self.globals[LOOP_HOOK] = _budget_loop
        self.globals[CONCAT_HOOK] = _checked_tilde
        self.filters.update(_SAFE_FILTERS)
        self.filters.pop("random", None)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Hooks().visit(super()._parse(source, name, filename))  # type: ignore[no-any-return]

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        for types, allowed in _ALLOWED:
            if isinstance(obj, types):
                return attr in allowed
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Fail the render (and serve the fallback) rather than print an empty string for an escape attempt.
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} value is not allowed")

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not on the allowlist: no format-string tricks at all

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)


class _Hooks(NodeTransformer):
    """Route every ``for`` through the loop budget and every ``~`` through the size check."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - the visitor dispatches on node class names
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name(LOOP_HOOK, "load"), [node.iter], [], None, None).set_lineno(node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802 - as above
        self.generic_visit(node)
        return nodes.Call(nodes.Name(CONCAT_HOOK, "load"), list(node.nodes), [], None, None).set_lineno(node.lineno)


def _budget_loop(iterable: Iterable[Any]) -> Iterable[Any]:
    if isinstance(iterable, range):
        return iterable  # paid for when it was made
    return _spending(iterable, BUDGET.get())


def _spending(iterable: Iterable[Any], budget: Budget) -> Iterator[Any]:
    for item in iterable:
        budget.spend(1)
        yield item


def _budget_range(*args: int) -> range:
    numbers = range(*args)
    BUDGET.get().spend(len(numbers))
    return numbers


@pass_eval_context
def _checked_tilde(eval_ctx: EvalContext, *parts: Any) -> str:
    joined: str = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
    return _check_size(joined)  # type: ignore[no-any-return]


def _checked_concat(parts: Iterable[str]) -> str:
    """Jinja joins macro output, ``{% set %}`` blocks and ``caller()`` with this; check before joining."""
    collected = []
    total = 0
    for part in parts:
        total += len(part)
        if total > MAX_VALUE_CHARS:
            raise RenderLimitError(f"a block of the template grows beyond {MAX_VALUE_CHARS} characters")
        collected.append(part)
    return "".join(collected)


def _check_size(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"a value of the template grows beyond {MAX_VALUE_CHARS} characters")
    return value


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_product(left, right)
        _check_product(right, left)
    elif operator == "**":
        if isinstance(right, int) and isinstance(left, int) and (right > MAX_EXPONENT or right < -MAX_EXPONENT):
            raise RenderLimitError(f"exponents are limited to {MAX_EXPONENT}")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() * max(right, 0) > MAX_INT_BITS:
            raise RenderLimitError(f"integers are limited to {MAX_INT_BITS} bits")
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _check_length(len(left) + len(right), left)
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left)


def _check_product(sequence: Any, times: Any) -> None:
    if isinstance(times, bool) or not isinstance(times, int):
        return
    if isinstance(sequence, str | list | tuple):
        _check_length(len(sequence) * times, sequence)
    elif isinstance(sequence, int) and sequence.bit_length() + times.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"integers are limited to {MAX_INT_BITS} bits")


def _check_length(length: int, kind: Any) -> None:
    limit = MAX_VALUE_CHARS if isinstance(kind, str) else MAX_ITEMS
    if length > limit:
        unit = "characters" if isinstance(kind, str) else "items"
        raise RenderLimitError(f"a value of the template grows beyond {limit} {unit}")


# %-conversions: flags, then a width and a precision that may be '*' (taken from the arguments).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(text: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise RenderLimitError(f"%-format widths are limited to {MAX_WIDTH} and cannot be '*'")


def _wrap_widths(name: str, *positions: int) -> Callable[..., Any]:
    """The built-in filter ``name`` with its size arguments (by position after the value) capped."""
    original = FILTERS[name]

    def checked(*args: Any, **kwargs: Any) -> Any:
        values = [args[p] for p in positions if p < len(args)] + [
            v for v in kwargs.values() if isinstance(v, int) and not isinstance(v, bool)
        ]
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
                raise RenderLimitError(f"the '{name}' filter takes sizes up to {MAX_WIDTH}")
        return _check_size(original(*args, **kwargs))

    checked.__name__ = original.__name__
    for attr in ("jinja_pass_arg",):  # keep pass_environment / pass_eval_context markers
        if hasattr(original, attr):
            setattr(checked, attr, getattr(original, attr))
    return checked


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    _check_percent_format(text)
    return _check_size(FILTERS["format"](text, *args, **kwargs))  # type: ignore[no-any-return]


def _join_size(value: Any, separator: str = "", attribute: Any = None) -> None:
    if isinstance(value, list | tuple) and attribute is None:
        size = sum(len(str(v)) for v in value) + len(separator) * max(len(value) - 1, 0)
        if size > MAX_VALUE_CHARS:
            raise RenderLimitError(f"join would build {size} characters; the limit is {MAX_VALUE_CHARS}")


def _join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    _join_size(value, d, attribute)
    return _check_size(FILTERS["join"](eval_ctx, value, d, attribute))  # type: ignore[no-any-return]


def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    hits = text.count(str(old)) if old else len(text) + 1
    if count is not None:
        hits = min(hits, max(count, 0))
    if len(text) + hits * len(str(new)) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"replace would build more than {MAX_VALUE_CHARS} characters")
    return FILTERS["replace"](eval_ctx, s, old, new, count)  # type: ignore[no-any-return]


_join.jinja_pass_arg = FILTERS["join"].jinja_pass_arg  # type: ignore[attr-defined]
_replace.jinja_pass_arg = FILTERS["replace"].jinja_pass_arg  # type: ignore[attr-defined]

_SAFE_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _wrap_widths("center", 1),
    "indent": _wrap_widths("indent", 1),
    "wordwrap": _wrap_widths("wordwrap", 2),
    "batch": _wrap_widths("batch", 1),
    "slice": _wrap_widths("slice", 1),
    "format": _format,
    "join": _join,
    "replace": _replace,
}
