"""What a template needs of a variant's static ``params``, checked when the bundle compiles.

A variant's params never change between requests, so a value the template cannot use
(``ends: "24 Dec"`` fed to ``date``) would make every render of that variant fall back.
The template's syntax tree says which params feed which filter, or take part in
arithmetic; each value is then checked by the same code that formats it at render time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from jinja2 import nodes

from service.render.locales import WEEKDAYS, LocaleChoice, weekday_number

PARAMS = "params"
_JSON = msgspec.json.Encoder()
_DEFAULTS = frozenset({"default", "d"})  # pass the value through when it is there
# Operators that need numbers on both sides; + and * also join and repeat text.
_ARITHMETIC = (nodes.Sub, nodes.Div, nodes.FloorDiv, nodes.Pow, nodes.Neg)


def _arithmetic_operand(_: LocaleChoice, value: Any) -> None:
    if not isinstance(value, int | float):  # True counts as 1, as in Python
        raise TypeError("arithmetic takes numbers, not text")


Check = Callable[[LocaleChoice, Any], object]  # raises when the value cannot be used


@dataclass(frozen=True, slots=True)
class Need:
    """``params.<name>`` is used by ``use`` and must be ``what``; ``check`` raises when it is not."""

    name: str
    use: str
    what: str
    check: Check


_NUMBER = "a number"
_FORMATS: Mapping[str, tuple[str, Check]] = {
    "price": (_NUMBER, LocaleChoice.price),
    "number": (_NUMBER, LocaleChoice.number),
    "percent": (_NUMBER, LocaleChoice.percent),
    "date": ("a date or date and time in ISO 8601 (2027-12-24)", LocaleChoice.date),
}


# Filters whose argument must be of a kind: (position after the value, what it must be, the check).
_ARGUMENTS: Mapping[str, tuple[int, str, Check]] = {
    "next_weekday": (0, f"a weekday ({', '.join(WEEKDAYS)})", lambda _, value: weekday_number(value)),
}


def needs_of(trees: Iterable[nodes.Template]) -> tuple[Need, ...]:
    """Every use of a param by a formatting filter or by arithmetic, in the given templates."""
    found: dict[tuple[str, str], Need] = {}
    for tree in trees:
        for node in tree.find_all((nodes.Filter, *_ARITHMETIC)):
            for need in _needs_at(node):
                found.setdefault((need.name, need.use), need)
    return tuple(found.values())


def _needs_at(node: nodes.Node) -> Iterator[Need]:
    if isinstance(node, nodes.Filter):
        if node.name in _FORMATS and node.node is not None:
            what, check = _FORMATS[node.name]
            yield from (Need(name, f"the '{node.name}' filter", what, check) for name in _fed(node.node))
        if node.name in _ARGUMENTS and len(node.args) > _ARGUMENTS[node.name][0]:
            position, what, check = _ARGUMENTS[node.name]
            use = f"the '{node.name}' filter"
            yield from (Need(name, use, what, check) for name in _fed(node.args[position]))
        return
    operands = [node.node] if isinstance(node, nodes.Neg) else [node.left, node.right]  # type: ignore[attr-defined]
    for operand in operands:
        yield from (Need(name, "arithmetic", _NUMBER, _arithmetic_operand) for name in _fed(operand))


def _fed(expr: nodes.Node) -> Iterator[str]:
    """The params ``expr`` passes on: ``params.ends``, ``params["ends"] | default(x)``, ``x if c else params.b``."""
    if isinstance(expr, nodes.Getattr) and _is_params(expr.node):
        yield expr.attr
    elif isinstance(expr, nodes.Getitem) and _is_params(expr.node) and isinstance(expr.arg, nodes.Const):
        yield str(expr.arg.value)
    elif isinstance(expr, nodes.Filter) and expr.name in _DEFAULTS and expr.node is not None:
        yield from _fed(expr.node)
    elif isinstance(expr, nodes.CondExpr):
        yield from _fed(expr.expr1)
        if expr.expr2 is not None:
            yield from _fed(expr.expr2)


def _is_params(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == PARAMS


def problems_of(params: Mapping[str, Any], needs: Iterable[Need], locale: LocaleChoice) -> Iterator[tuple[str, str]]:
    """(param, message) for each static param value its template cannot use; one message per param.

    Each value is formatted as the default locale would format it; formats differ between
    locales in their patterns, not in which values they accept.
    """
    told: set[str] = set()
    for need in needs:
        if need.name in told or need.name not in params:
            continue  # a missing param is the template's business: it may test for it or give a default
        value = params[need.name]
        try:
            need.check(locale, value)
        except (TypeError, ValueError, ArithmeticError):
            told.add(need.name)
            shown = _JSON.encode(value).decode()
            message = f"the template gives params.{need.name} to {need.use}, which needs {need.what}"
            yield need.name, f"{message}: {shown} is not one"
