"""Compile conditions into predicates: closures over one request's ``Facts``.

Everything that can be prepared once is prepared here, when the bundle compiles:
paths are split, regular expressions and semantic versions parsed, sets built and
times turned into epoch seconds. A predicate does only lookups and comparisons.

Semantics, in one place:
* a value that is absent or null fails every test except ``exists: false``;
* types are kept: numbers compare with numbers, text with text, and ``true`` is
  not the number 1;
* a value of the wrong type fails every test, the negated ones too: ``ne`` and
  ``not_in`` are true only for a value of the operands' type (docs/adr/0004);
* times are ISO 8601 text (no zone means UTC) or epoch seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from service.core import patterns
from service.core.spec import SUBJECTS, Condition, LengthTest, Ref
from service.core.values import parse_duration, parse_semver, to_epoch

__all__ = ["Facts", "Getter", "Predicate", "compile_condition", "make_getter", "subject", "to_epoch", "walk"]

Getter = Callable[["Facts"], Any]
Predicate = Callable[["Facts"], bool]
Test = Callable[[Any], bool]
Test2 = Callable[[Any, Any], bool]

_NUMBER = (int, float)
_NO_MODELS: Mapping[str, Callable[[Facts], str | float]] = {}


class Facts:
    """What one decision knows: attributes, context, the time and the segments found so far."""

    __slots__ = ("_memo", "_models", "_segments", "attrs", "context", "item", "now", "scores")

    def __init__(
        self,
        attrs: Mapping[str, Any],
        context: Mapping[str, Any],
        now: float,
        segments: Mapping[str, Predicate],
        models: Mapping[str, Callable[[Facts], str | float]] | None = None,
    ) -> None:
        self.attrs = attrs
        self.context = context
        self.now = now
        self._segments = segments
        self._models = models or _NO_MODELS
        self._memo: dict[str, bool] = {}
        self.scores: dict[str, str | float] = {}  # model outputs computed so far, for explanations
        self.item: Any = None  # the list item a 'some' or 'every' condition is looking at

    def model(self, name: str) -> str | float:
        """A model's output for this visitor; each model runs at most once per request, and only when asked."""
        scores = self.scores
        if name in scores:
            return scores[name]
        value = scores[name] = self._models[name](self)
        return value

    def evaluated(self, name: str) -> bool | None:
        """A segment's value if this request has evaluated it, else None (never evaluates)."""
        return self._memo.get(name)

    def segment(self, name: str) -> bool:
        """Whether the visitor is in segment ``name``; each segment is evaluated once per request."""
        hit = self._memo.get(name)
        if hit is None:
            hit = self._memo[name] = self._segments[name](self)
        return hit


def make_getter(root: str, path: str) -> Getter:
    """A function reading ``path`` (dotted) from the attributes or the context, or a model's output."""
    if root == "model":
        return lambda f: f.model(path)
    if root == "item":
        return _item_getter(path)
    keys = tuple(path.split("."))
    if root == "attr":
        if len(keys) == 1:
            (key,) = keys
            return lambda f: f.attrs.get(key)
        return lambda f: _dig(f.attrs, keys)
    if len(keys) == 1:
        (key,) = keys
        return lambda f: f.context.get(key)
    return lambda f: _dig(f.context, keys)


def _item_getter(path: str) -> Getter:
    if path == ".":
        return lambda f: f.item
    keys = tuple(path.split("."))
    return lambda f: _dig(f.item, keys)


def _dig(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


def compile_condition(cond: Condition) -> Predicate:
    """The predicate of a validated condition (segment references must already be checked)."""
    if cond.all_ is not None:
        return _all([compile_condition(c) for c in cond.all_])
    if cond.any_ is not None:
        return _any([compile_condition(c) for c in cond.any_])
    if cond.not_ is not None:
        inner = compile_condition(cond.not_)
        return lambda f: not inner(f)
    if cond.segment is not None:
        name = cond.segment
        return lambda f: f.segment(name)
    return _compile_test(cond)


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:  # the most common shape gets a closure without a loop
        a, b = preds
        return lambda f: a(f) and b(f)
    group = tuple(preds)
    return lambda f: all(p(f) for p in group)


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    group = tuple(preds)
    return lambda f: any(p(f) for p in group)


def _compile_test(cond: Condition) -> Predicate:
    root, path = subject(cond)
    get = make_getter(root, path)
    op = cond.operators()[0]
    operand = cond.operand()
    if isinstance(operand, Ref):
        other = make_getter("attr" if operand.attr is not None else "context", operand.attr or operand.context or "")
        test2 = _REF_TESTS[op]
        return lambda f: test2(get(f), other(f))
    if op in ("within", "older_than"):
        return _relative_time(op, get, parse_duration(str(operand)).total_seconds())
    if op in ("some", "every"):
        assert isinstance(operand, Condition)  # the spec's type for both
        return _each(op, get, compile_condition(operand))
    if cond.ignore_case:
        return _ignoring_case(op, operand, get)
    test = _TESTS[op](operand.operator() if isinstance(operand, LengthTest) else operand)
    if "." in path or root in ("model", "item"):
        return lambda f: test(get(f))
    return _one_key(root, path, op, operand, test)


def subject(cond: Condition) -> tuple[str, str]:
    """``("attr" | "context" | "model" | "item", path)`` of a test."""
    for root in SUBJECTS:
        path = getattr(cond, root)
        if path is not None:
            return root, path
    raise ValueError("not a test")  # the spec guarantees a subject for every test


def _one_key(root: str, key: str, op: str, operand: Any, test: Test) -> Predicate:
    """A test of one top-level key reads the key itself: one call per test instead of two or three."""
    if root == "attr" and op in _INLINE and _is_scalar(operand):  # the commonest tests, inlined: as _eq, _ordered
        return _INLINE[op](key, _same_kind(operand), operand)
    if root == "attr":
        return lambda f: test(f.attrs.get(key))
    return lambda f: test(f.context.get(key))


def _inline_eq(key: str, kinds: tuple[type, ...], const: Any) -> Predicate:
    return lambda f: type(v := f.attrs.get(key)) in kinds and v == const


def _inline_gt(key: str, kinds: tuple[type, ...], const: Any) -> Predicate:
    return lambda f: type(v := f.attrs.get(key)) in kinds and v > const


def _inline_gte(key: str, kinds: tuple[type, ...], const: Any) -> Predicate:
    return lambda f: type(v := f.attrs.get(key)) in kinds and v >= const


def _inline_lt(key: str, kinds: tuple[type, ...], const: Any) -> Predicate:
    return lambda f: type(v := f.attrs.get(key)) in kinds and v < const


def _inline_lte(key: str, kinds: tuple[type, ...], const: Any) -> Predicate:
    return lambda f: type(v := f.attrs.get(key)) in kinds and v <= const


_INLINE: dict[str, Callable[[str, tuple[type, ...], Any], Predicate]] = {
    "eq": _inline_eq,
    "gt": _inline_gt,
    "gte": _inline_gte,
    "lt": _inline_lt,
    "lte": _inline_lte,
}


# -- tests against a constant ------------------------------------------------------------


def _same_kind(const: Any) -> tuple[type, ...]:
    return _NUMBER if type(const) in _NUMBER else (type(const),)


def _is_scalar(value: Any) -> bool:
    return type(value) is not list and type(value) is not dict


def same(a: Any, b: Any) -> bool:
    """Equal with types kept, item by item: [1, true] is not [1, 1], {a: 1} is {a: 1.0}."""
    kind = type(a)
    if kind in _NUMBER and type(b) in _NUMBER:
        return bool(a == b)
    if kind is not type(b):
        return False
    if kind is list:
        return len(a) == len(b) and all(map(same, a, b))
    if kind is dict:
        return a.keys() == b.keys() and all(same(value, b[key]) for key, value in a.items())
    return bool(a == b)


def _eq(const: Any) -> Test:
    if not _is_scalar(const):
        return lambda v: same(v, const)
    kinds = _same_kind(const)
    return lambda v: type(v) in kinds and v == const


def _ne(const: Any) -> Test:
    """A value of the operand's type that differs: ``ne: pro`` is false for 5 or [pro] (docs/adr/0004)."""
    kinds = _same_kind(const)
    if not _is_scalar(const):
        return lambda v: type(v) in kinds and not same(v, const)
    # NaN (from a YAML check's .nan or a population file) equals nothing, so eq is false for it; ne
    # is false too, as for a value no test can compare.
    return lambda v: type(v) in kinds and v == v and v != const  # noqa: PLR0124


def _typed_sets(values: list[Any]) -> dict[type, frozenset[Any]]:
    """One set per type so that 1 and true, or 1 and '1', never match each other."""
    by_kind: dict[type, set[Any]] = {}
    for value in values:
        for kind in _same_kind(value):
            by_kind.setdefault(kind, set()).add(value)
    return {kind: frozenset(vals) for kind, vals in by_kind.items()}


def _in(values: list[Any]) -> Test:
    sets = _typed_sets(values)

    def test(v: Any) -> bool:
        same_kind = sets.get(type(v))  # only scalar kinds have a set, so v is hashable here
        return same_kind is not None and v in same_kind

    return test


def _not_in(values: list[Any]) -> Test:
    """A value of one of the operands' types that is none of them; a list is no such value (docs/adr/0004)."""
    sets = _typed_sets(values)

    def test(v: Any) -> bool:
        same_kind = sets.get(type(v))
        return same_kind is not None and v not in same_kind

    return test


def _member(sets: dict[type, frozenset[Any]], value: Any) -> bool:
    same_kind = sets.get(type(value))  # only scalar kinds have a set, so value is hashable here
    return same_kind is not None and value in same_kind


def _any_of(values: list[Any]) -> Test:
    sets = _typed_sets(values)
    return lambda v: type(v) is list and any(_member(sets, x) for x in v)


def _all_of(values: list[Any]) -> Test:
    wanted = tuple(dict.fromkeys(values))

    def test(v: Any) -> bool:
        if type(v) is not list:
            return False
        held = _typed_sets([x for x in v if _is_scalar(x) and x is not None])
        return all(_member(held, w) for w in wanted)

    return test


def _none_of(values: list[Any]) -> Test:
    sets = _typed_sets(values)
    return lambda v: type(v) is list and not any(_member(sets, x) for x in v)


def _length(test: tuple[str, Any]) -> Test:
    op, operand = test
    count = _TESTS[op](operand)
    return lambda v: type(v) is list and count(len(v))


_TYPE_KINDS: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "number": _NUMBER,
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}


def _type(name: str) -> Test:
    kinds = _TYPE_KINDS[name]
    return lambda v: type(v) in kinds


def _each(op: str, get: Getter, inner: Predicate) -> Predicate:
    """``some``: one item of the list passes; ``every``: a list with items, each of which passes."""
    wants_all = op == "every"

    def each(f: Facts) -> bool:
        items = get(f)
        if type(items) is not list or not items:
            return False
        outer = f.item  # a condition inside another one's items comes back to the outer item
        try:
            for item in items:
                f.item = item
                if bool(inner(f)) is not wants_all:
                    return not wants_all
            return wants_all
        finally:
            f.item = outer

    return each


def fold(value: Any) -> Any:
    """Text in lower case for comparing without case (casefold: 'Straße' is 'STRASSE'), in lists and objects too."""
    kind = type(value)
    if kind is str:
        return value.casefold()
    if kind is list:
        return [fold(x) for x in value]
    if kind is dict:
        return {key: fold(x) for key, x in value.items()}
    return value


def _ignoring_case(op: str, operand: Any, get: Getter) -> Predicate:
    if op == "matches":
        search = patterns.searcher(operand, ignore_case=True)
        return lambda f: type(v := get(f)) is str and search(v) is not None
    test = _TESTS[op](fold(operand))
    return lambda f: test(fold(get(f)))


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Test]:
    def build(const: Any) -> Test:
        kinds = _same_kind(const)
        return lambda v: type(v) in kinds and compare(v, const)

    return build


def _between(bounds: tuple[float, float]) -> Test:
    low, high = bounds
    return lambda v: type(v) in _NUMBER and low <= v <= high


def _contains(const: Any) -> Test:
    eq = _eq(const)
    if type(const) is str:
        return lambda v: (type(v) is str and const in v) or (type(v) is list and any(eq(x) for x in v))
    return lambda v: type(v) is list and any(eq(x) for x in v)


def _starts_with(const: str) -> Test:
    return lambda v: type(v) is str and v.startswith(const)


def _ends_with(const: str) -> Test:
    return lambda v: type(v) is str and v.endswith(const)


def _matches(pattern: str) -> Test:
    search = patterns.searcher(pattern)
    return lambda v: type(v) is str and search(v) is not None


def _exists(flag: bool) -> Test:
    return (lambda v: v is not None) if flag else (lambda v: v is None)


def _semver(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Test]:
    def build(const: Any) -> Test:
        wanted = parse_semver(str(const))
        if wanted is None:  # the spec checks operands with this parser; a bundle built otherwise is refused here
            raise ValueError(f"'{const}' is not a semantic version")

        def test(v: Any) -> bool:
            have = parse_semver(v) if type(v) is str else None
            return have is not None and compare(have, wanted)

        return test

    return build


def _time(compare: Callable[[float, float], bool]) -> Callable[[Any], Test]:
    def build(const: Any) -> Test:
        limit = to_epoch(const)
        if limit is None:  # the spec parsed it as a datetime
            raise ValueError(f"'{const}' is not a time")

        def test(v: Any) -> bool:
            t = to_epoch(v)
            return t is not None and compare(t, limit)

        return test

    return build


def _relative_time(op: str, get: Getter, seconds: float) -> Predicate:
    if op == "within":

        def within(f: Facts) -> bool:
            t = to_epoch(get(f))
            return t is not None and f.now - seconds <= t <= f.now

        return within

    def older_than(f: Facts) -> bool:
        t = to_epoch(get(f))
        return t is not None and t < f.now - seconds

    return older_than


def _lt(a: Any, b: Any) -> bool:
    return bool(a < b)


def _lte(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    return bool(a > b)


def _gte(a: Any, b: Any) -> bool:
    return bool(a >= b)


def _equal(a: Any, b: Any) -> bool:
    return bool(a == b)


_TESTS: dict[str, Callable[[Any], Test]] = {
    "eq": _eq,
    "ne": _ne,
    "in": _in,
    "not_in": _not_in,
    "gt": _ordered(_gt),
    "gte": _ordered(_gte),
    "lt": _ordered(_lt),
    "lte": _ordered(_lte),
    "between": _between,
    "contains": _contains,
    "starts_with": _starts_with,
    "ends_with": _ends_with,
    "matches": _matches,
    "exists": _exists,
    "type": _type,
    "any_of": _any_of,
    "all_of": _all_of,
    "none_of": _none_of,
    "length": _length,
    "semver_eq": _semver(_equal),
    "semver_gt": _semver(_gt),
    "semver_gte": _semver(_gte),
    "semver_lt": _semver(_lt),
    "semver_lte": _semver(_lte),
    "before": _time(_lt),
    "after": _time(_gt),
}


# -- tests against another value of the request ------------------------------------------


def _ref_compare(compare: Callable[[Any, Any], bool]) -> Test2:
    def test(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        if type(a) in _NUMBER and type(b) in _NUMBER:
            return compare(a, b)
        return type(a) is str and type(b) is str and compare(a, b)

    return test


def _ref_time(compare: Callable[[float, float], bool]) -> Test2:
    def test(a: Any, b: Any) -> bool:
        ta, tb = to_epoch(a), to_epoch(b)
        return ta is not None and tb is not None and compare(ta, tb)

    return test


def _ref_eq(a: Any, b: Any) -> bool:
    return a is not None and same(a, b)


def _ref_ne(a: Any, b: Any) -> bool:
    of_one_type = type(a) is type(b) or (type(a) in _NUMBER and type(b) in _NUMBER)
    return a is not None and of_one_type and not same(a, b)


_REF_TESTS: dict[str, Test2] = {
    "eq": _ref_eq,
    "ne": _ref_ne,
    "gt": _ref_compare(_gt),
    "gte": _ref_compare(_gte),
    "lt": _ref_compare(_lt),
    "lte": _ref_compare(_lte),
    "before": _ref_time(_lt),
    "after": _ref_time(_gt),
}
REF_OPERATORS = frozenset(_REF_TESTS)


def walk(cond: Condition, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Condition]]:
    """Every condition inside ``cond`` (itself included) with its path, for checks at compile time."""
    yield path, cond
    for key, children in (("all", cond.all_), ("any", cond.any_)):
        for i, child in enumerate(children or ()):
            yield from walk(child, (*path, key, i))
    for key, single in (("not", cond.not_), ("some", cond.some), ("every", cond.every)):
        if single is not None:
            yield from walk(single, (*path, key))
