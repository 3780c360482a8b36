"""Why a condition is false: its first failed test, located in the rule file, for explanations.

An explainer is built per condition when the bundle compiles, next to the predicate, and
runs only when a request asks for an explanation: the plain request path never calls one
(docs/adr/0007). It walks the condition in the predicate's own order, so it reads only
what the predicate read and never runs a model the decision did not run:

* ``all``: the first condition that is false;
* ``any``: every alternative is false, so the first one names it;
* ``not``: the ``not`` itself (what it negates holds);
* a segment reference: the segment's own first failed condition, with the segment in ``via``;
* a test (``some`` and ``every`` included): the test, with the visitor's value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from service.core.conditions import Facts, compile_condition, make_getter, subject
from service.core.errors import format_path
from service.core.spec import Condition, LengthTest, Ref

__all__ = ["Explainer", "Locate", "WhyNot", "compile_why_not", "format_why_not"]

Path = tuple[str | int, ...]
Locate = Callable[[str, Path], int | None]
"""The line of a path in a rule file (the loader knows the text; the core does not)."""
Source = Literal["attr", "context", "model", "item"]


class WhyNot(msgspec.Struct, frozen=True, gc=False):
    """The first condition that failed, as plain data; ``format_why_not`` renders it as one line.

    ``expected`` is the operand as written in the file (a reference is ``{"attr": path}`` or
    ``{"context": path}``, and ``reference`` is the value it pointed to; for ``not`` it is the
    negated condition, which holds). ``actual`` is the visitor's value, a model's output for a
    model; ``missing`` says the value was absent or null. ``via`` names the segments followed to
    reach the condition, outermost first.
    """

    file: str
    line: int | None
    path: Path
    operator: str
    expected: Any
    source: Source | None = None  # None for 'not'
    name: str = ""  # the attribute or context path, or the model
    actual: Any = None
    missing: bool = False
    reference: Any = None
    ignore_case: bool = False
    via: tuple[str, ...] = ()


Explainer = Callable[[Facts], WhyNot | None]
"""None when the condition holds for these facts, else why it does not."""


def compile_why_not(
    cond: Condition, file: str, path: Path, locate: Locate, segments: Mapping[str, Explainer]
) -> Explainer:
    """The explainer of a validated condition; ``segments`` may be filled after this returns."""
    return _Site(file, locate, segments).build(cond, path)


@dataclass(frozen=True, slots=True)
class _Site:
    """Where the conditions being compiled are written, and the segments they may refer to."""

    file: str
    locate: Locate
    segments: Mapping[str, Explainer]

    def build(self, cond: Condition, path: Path) -> Explainer:
        if cond.all_ is not None:
            return _first_failed(tuple(self.build(c, (*path, "all", i)) for i, c in enumerate(cond.all_)))
        if cond.any_ is not None:
            return _all_failed(tuple(self.build(c, (*path, "any", i)) for i, c in enumerate(cond.any_)))
        if cond.not_ is not None:
            return _negation(cond.not_, self.failure(path, "not", _written(cond.not_), actual=True))
        if cond.segment is not None:
            return _segment(cond.segment, self.segments)
        return _test(cond, self.failure(path, cond.operators()[0], _written(cond.operand())))

    def failure(self, path: Path, operator: str, expected: Any, actual: Any = None) -> WhyNot:
        return WhyNot(self.file, self.locate(self.file, path), path, operator, expected, actual=actual)


def _first_failed(kids: tuple[Explainer, ...]) -> Explainer:
    def why(f: Facts) -> WhyNot | None:
        for kid in kids:
            failed = kid(f)
            if failed is not None:
                return failed
        return None

    return why


def _all_failed(kids: tuple[Explainer, ...]) -> Explainer:
    def why(f: Facts) -> WhyNot | None:
        first = None
        for kid in kids:
            failed = kid(f)
            if failed is None:
                return None
            first = first or failed
        return first

    return why


def _negation(inner: Condition, failure: WhyNot) -> Explainer:
    holds = compile_condition(inner)
    return lambda f: failure if holds(f) else None


def _segment(name: str, segments: Mapping[str, Explainer]) -> Explainer:
    def why(f: Facts) -> WhyNot | None:
        if f.segment(name):  # memoized: the decision has usually answered this already
            return None
        failed = segments[name](f)
        return None if failed is None else msgspec.structs.replace(failed, via=(name, *failed.via))

    return why


def _test(cond: Condition, base: WhyNot) -> Explainer:
    holds = compile_condition(cond)
    source, name = subject(cond)
    get = make_getter(source, name)
    operand = cond.operand()
    other = _ref_getter(operand) if isinstance(operand, Ref) else None
    base = msgspec.structs.replace(base, source=source, name=name, ignore_case=bool(cond.ignore_case))

    def why(f: Facts) -> WhyNot | None:
        if holds(f):
            return None
        value = get(f)
        reference = None if other is None else other(f)
        return msgspec.structs.replace(base, actual=value, missing=value is None, reference=reference)

    return why


def _ref_getter(ref: Ref) -> Callable[[Facts], Any]:
    return make_getter("attr", ref.attr) if ref.attr is not None else make_getter("context", ref.context or "")


def _written(operand: object) -> Any:
    """An operand as the file wrote it, as JSON-shaped data (the spec's own field names)."""
    if isinstance(operand, Ref | LengthTest | Condition):
        fields = type(operand).model_fields
        return {
            info.alias or name: _written(v)
            for name, info in fields.items()
            if (v := getattr(operand, name)) is not None
        }
    if isinstance(operand, datetime):
        text = operand.astimezone(UTC).isoformat() if operand.tzinfo else operand.isoformat()
        return text.replace("+00:00", "Z")
    if isinstance(operand, list | tuple):
        return [_written(v) for v in operand]
    return operand


# -- one line of text ----------------------------------------------------------------------

MAX_TEXT = 60  # characters of a text value shown in the line
MAX_ITEMS = 6  # items of a list shown in the line


def format_why_not(why: WhyNot) -> str:
    """``rules/home.yaml:14: placements.home_hero.rules[1].when.all[0]: country eq 'DE', got 'FR'``."""
    where = why.file if why.line is None else f"{why.file}:{why.line}"
    through = f" (through segments {' → '.join(why.via)})" if len(why.via) > 1 else ""
    return f"{where}: {format_path(why.path)}: {_what(why)}{through}"


def _what(why: WhyNot) -> str:
    if why.operator == "not":
        return f"not {show(why.expected)}, which holds"
    subject = {"attr": why.name, "context": f"context.{why.name}", "model": f"model {why.name}"}.get(
        why.source or "", why.name
    )
    test = f"{subject} {why.operator} {_expected(why)}" + (" ignoring case" if why.ignore_case else "")
    return f"{test}, missing" if why.missing else f"{test}, got {_actual(why)}"


def _expected(why: WhyNot) -> str:
    expected = why.expected
    if why.operator in ("within", "older_than"):
        return str(expected)  # a duration, as written: 30d
    if _is_ref(expected):
        ((root, path),) = expected.items()
        shown = "missing" if why.reference is None else show(why.reference)
        return f"{'' if root == 'attr' else 'context.'}{path} ({shown})"
    return show(expected)


def _actual(why: WhyNot) -> str:
    value = why.actual
    if why.operator == "length" and type(value) is list:
        return f"{len(value)} item{'' if len(value) == 1 else 's'}"
    wanted = _kinds(why)
    kind = kind_of(value)
    return show(value) if not wanted or kind in wanted else f"{show(value)} ({kind})"


def _kinds(why: WhyNot) -> set[str]:
    """The kinds of value the test takes, when a value of another kind is worth naming."""
    op, expected = why.operator, why.expected
    if op in _TAKES:
        return _TAKES[op]
    if op == "type":
        return {str(expected)}
    if op in ("in", "not_in"):
        return {kind_of(v) for v in expected}
    if op in ("eq", "ne", "gt", "gte", "lt", "lte") and not _is_ref(expected):
        return {kind_of(expected)}
    return set()  # times are text or numbers, exists takes anything


_TAKES: dict[str, set[str]] = {
    "between": {"number"},
    "contains": {"text", "list"},
    **{op: {"list"} for op in ("any_of", "all_of", "none_of", "some", "every", "length")},
    **{op: {"text"} for op in ("starts_with", "ends_with", "matches")},
    **{f"semver_{op}": {"text"} for op in ("eq", "gt", "gte", "lt", "lte")},
}


def _is_ref(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and ("attr" in value or "context" in value)


def kind_of(value: Any) -> str:
    """The rule files' name of a value's type: text, number, boolean, list, object or null."""
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    return _KINDS.get(type(value), "null")


_KINDS: dict[type, str] = {str: "text", list: "list", dict: "object"}


def show(value: Any) -> str:
    """A value written as in a rule file's flow style: 'text', 5, true, [a, b], {k: v}; long ones cut."""
    if type(value) is str:
        return f"'{value}'" if len(value) <= MAX_TEXT else f"'{value[:MAX_TEXT]}…'"
    if type(value) is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if type(value) is list:
        shown = [show(v) for v in value[:MAX_ITEMS]]
        more = [f"… {len(value)} values"] if len(value) > MAX_ITEMS else []
        return f"[{', '.join([*shown, *more])}]"
    if type(value) is dict:
        return "{" + ", ".join(f"{key}: {show(v)}" for key, v in value.items()) + "}"
    return str(value)
