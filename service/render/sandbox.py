"""The Jinja environment templates run in: Jinja's immutable sandbox, tightened for marketer-written templates.

Jinja's sandbox stops attribute escapes (``__class__``, ``__globals__``) and writes to
lists and dicts. It does not stop a template from asking for a gigabyte: ``"x" * 10**9``,
``"x"|center(10**9)`` (folded at compile time, so even compiling it hangs), nested
``range`` loops, or a macro that doubles a string thirty times. So on top of it:

* plain data only: strings, lists and dicts expose a short allowlist of methods
  (no ``format``, ``ljust``, ``join``, ``replace``, ``expandtabs``);
* every operator, filter and join that can grow a value checks the size it would
  produce *before* producing it (``MAX_VALUE_CHARS``, ``MAX_ITEMS``, ``MAX_WIDTH``);
* a value is weighed before anything prints, compares, hashes or passes it on: a list
  that holds one list twice, thirty times over, is cheap to build and prints as billions
  of characters (see ``_weight``);
* every ``for`` loop, ``range`` and call draws from one per-render iteration budget, so a
  macro calling itself twice per level is a loop like any other;
* everything a render weighs, builds and prints draws from one per-render work budget
  (``DEFAULT_WORK_BUDGET`` characters), so ten thousand cheap steps over a large value
  still end;
* ``random`` and ``lipsum`` are gone: a render depends only on its inputs, which the
  render cache relies on.

The renderer caps the size of the whole output and turns every exception into the
variant's fallback content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView, MutableMapping, Sequence, Set, Sized
from contextvars import ContextVar
from datetime import date
from itertools import chain
from types import CodeType, FunctionType, MappingProxyType
from typing import Any

from jinja2 import ChainableUndefined, nodes, pass_environment, pass_eval_context
from jinja2.environment import Environment, Template
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Macro, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, escape

from service.core.errors import TailorError

MAX_VALUE_CHARS = 100_000  # any one string a template builds
MAX_ITEMS = 10_000  # any one list a template builds
MAX_WIDTH = 1_000  # widths and counts given to center, indent, batch, %-formats
MAX_INT_BITS = 4_096  # integers beyond this are arithmetic bombs, not prices
MAX_EXPONENT = 256
DEFAULT_LOOP_BUDGET = 10_000  # loop iterations, range items and calls per render, all together
DEFAULT_WORK_BUDGET = 1_000_000  # characters weighed, built and printed per render, all together

HOOK_PREFIX = "_tailor_"  # names of this module's checks among the globals
LOOP_HOOK = f"{HOOK_PREFIX}loop"
CONCAT_HOOK = f"{HOOK_PREFIX}concat"
WEIGH_HOOK = f"{HOOK_PREFIX}weigh"
MEMBERS_HOOK = f"{HOOK_PREFIX}members"
SLICE_HOOK = f"{HOOK_PREFIX}slice"


class RenderLimitError(TailorError):
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

# Values whose parts _weight can see. Attributes of anything else (loop, cycler, joiner,
# imported templates) can hold whatever the template put there, so they are weighed when read.
_DATA = (str, int, float, date, Mapping, Sequence, Set, MappingView, Namespace, Undefined)
_PLAIN = frozenset({str, int, float, bool, dict, list, tuple, MappingProxyType})  # no generators among them
_SCALARS = frozenset({float, bool, type(None)})
_PLAIN_OR_NONE = _PLAIN | {type(None), Markup}  # never a generator: _listed leaves them alone
_OWNERLESS = frozenset({FunctionType, Macro})


class Budget:
    """What the current render may still do: loop iterations and calls, and characters of work."""

    __slots__ = ("left", "work")

    def __init__(self, left: int, work: int = DEFAULT_WORK_BUDGET) -> None:
        self.left = left
        self.work = work

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise RenderLimitError("the template loops too much: over the per-render iteration budget")

    def charge(self, n: int) -> None:
        self.work -= n
        if self.work < 0:
            raise RenderLimitError("the template does too much work: over the per-render budget of characters")


# The renderer sets a fresh budget around each render; outside a render (a template
# folded while compiling) nothing may loop or work at all, so nothing large is folded.
BUDGET: ContextVar[Budget] = ContextVar("tailor_render_budget", default=Budget(0, 0))  # noqa: B039


class _Template(Template):
    """A template whose every render, include and import draws from the loop budget."""

    def new_context(
        self,
        vars: dict[str, Any] | None = None,  # noqa: A002 - Jinja's name
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,  # noqa: A002 - as above
    ) -> Context:
        # A template that includes itself twice, with a counter to stop at depth 30, is a
        # billion renders without a single loop or call.
        BUDGET.get().spend(1)
        return super().new_context(vars, shared, locals)

    @classmethod
    def from_code(
        cls,
        environment: Environment,
        code: CodeType,
        globals: MutableMapping[str, Any],  # noqa: A002 - Jinja's name
        uptodate: Callable[[], bool] | None = None,
    ) -> Template:
        template = super().from_code(environment, code, globals, uptodate)
        # The template's functions look ``escape`` up in its module's namespace at every print.
        template.root_render_func.__globals__["escape"] = _escape
        return template


ESCAPED_ENTRIES = 4096
ESCAPED_CHARS = 256
_remembered_escape = functools.lru_cache(maxsize=ESCAPED_ENTRIES)(escape)


def _escape(value: Any) -> Markup:
    """markupsafe's ``escape``, remembered for short texts.

    An email batch prints the same labels, links, product names and prices for every recipient:
    a cache lookup instead of escaping and making a Markup (a Python ``__new__``) each time.
    """
    if value.__class__ is str and len(value) <= ESCAPED_CHARS:
        return _remembered_escape(value)
    return escape(value)


# Attribute names of the plain mappings: any other name a template reads from one is an item
# (content.image), exactly as Jinja's getattr would find it after its attribute lookup failed.
# Neither type has instance attributes or a __getattr__, so dir() is everything getattr can find.
_MAPPING_NAMES: dict[type, frozenset[str]] = {kind: frozenset(dir(kind)) for kind in (dict, MappingProxyType)}
_INDEXED = frozenset({dict, MappingProxyType, list, tuple, str})
_KEYS = frozenset({str, int})
SAFETY_ENTRIES = 4096  # (type, attribute) decisions remembered; attribute names are template constants

# Whether an attribute may be read depends only on the type of the object and the name (see
# TailorSandbox.is_safe_attribute), so each pair is decided once per process.
_SAFE_ATTRIBUTES: dict[tuple[type, str], bool] = {}


class TailorSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox, plain data only, sizes checked before anything large is built."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    template_class = _Template

    def __init__(self, loader: Any, autoescape: Callable[[str | None], bool]) -> None:
        super().__init__(
            loader=loader,
            autoescape=autoescape,
            undefined=ChainableUndefined,  # visitor.address.city | default("...") when there is no address
            finalize=_checked_output,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,  # templates live as long as their bundle
        )
        self.concat = _checked_concat  # type: ignore[method-assign]
        self.globals.pop("lipsum", None)
        self.globals["range"] = _budget_range
        self.globals.update(_HOOK_FUNCTIONS)
        # Filters and tests added later (the renderer's price, date, ...) are metered too.
        self.filters = _Metered(self.filters)
        self.tests = _Metered(self.tests)
        self.filters.update(_SAFE_FILTERS)
        self.filters.pop("random", None)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Hooks().visit(super()._parse(source, name, filename))  # type: ignore[no-any-return]

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # Jinja chains a template's globals to the environment's so that later changes show;
        # every render copies them into its context, and copying a ChainMap is a Python loop.
        # This environment's globals are complete before its first template loads.
        return {**self.globals, **(d or {})}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        safe = _SAFE_ATTRIBUTES.get(key)
        if safe is None:
            safe = self._attribute_allowed(obj, attr)
            if len(_SAFE_ATTRIBUTES) < SAFETY_ENTRIES:
                _SAFE_ATTRIBUTES[key] = safe
        return safe

    def _attribute_allowed(self, obj: Any, attr: str) -> bool:
        """The decision itself: by isinstance checks of ``obj`` and the name, never by the value read."""
        for types, allowed in _ALLOWED:
            if isinstance(obj, types):
                return attr in allowed
        return super().is_safe_attribute(obj, attr, None)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Fail the render (and serve the fallback) rather than print an empty string for an escape attempt.
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} value is not allowed")

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not on the allowlist: no format-string tricks at all

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        _charge(_size(result))
        return result

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        kind = type(obj)
        if id(obj) in _HOOK_IDS:
            return context.call(obj, *args, **kwargs)  # this module's checks, not the template's calls
        # Every call draws from the loop budget: a macro that calls itself twice per level
        # runs 2**depth times without a single for loop.
        budget = BUDGET.get()
        budget.spend(1)
        args = _listed_all(args)
        work = (1 if kind in _OWNERLESS else _owner_weight(obj)) + _weights(args)
        if kwargs:
            kwargs = {key: _listed(value) for key, value in kwargs.items()}
            # Jinja passes a loop's or block's variables along with every call made inside one; they
            # are the context's, not arguments, and only a callable that takes the context sees them.
            work += _weights_of_arguments(kwargs)
        budget.charge(work)
        if (kind is FunctionType and not obj.__dict__) or (  # a bare function: no Jinja or safety marks on it
            _plainly_callable(obj) and self.is_safe_callable(obj)
        ):
            result = self._call_plain(obj, args, kwargs)  # what Context.call does for these, without its lookups
        else:
            if isinstance(obj, LoopContext) and args:
                args = (_budget_loop(args[0]), *args[1:])  # loop(children) in a recursive for: loop items like any
            result = super().call(context, obj, *args, **kwargs)
        budget.charge(len(result) if type(result) is str else _size(result))
        return result

    def _call_plain(self, obj: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A macro or a function that takes no context, called as ``Context.call`` would call it."""
        if kwargs:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
        try:
            return obj(*args, **kwargs)
        except StopIteration:
            return self.undefined("value was undefined because a callable raised a StopIteration exception")

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) in _INDEXED and type(argument) in _KEYS:
            try:
                return obj[argument]  # plain data, read as Jinja would read it first; nothing to weigh
            except (TypeError, LookupError):
                pass
        elif not isinstance(argument, str | int | float):
            _weighed(argument)  # a tuple key is hashed and compared all the way down
        return _read_from(obj, super().getitem(obj, argument))

    def getattr(self, obj: Any, attribute: str) -> Any:
        names = _MAPPING_NAMES.get(type(obj))
        if names is not None and attribute not in names:
            try:
                return obj[attribute]  # a dict's item, and plain data: nothing to weigh
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        return _read_from(obj, super().getattr(obj, attribute))


class _Hooks(NodeTransformer):
    """Route loops through the loop budget, ``~`` through the size check, comparisons and keys through weighing."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - the visitor dispatches on node class names
        self.generic_visit(node)
        node.iter = _hook(LOOP_HOOK, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802 - as above
        self.generic_visit(node)
        return _hook(CONCAT_HOOK, *node.nodes)

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:  # noqa: N802 - as above
        # Jinja compiles s[1:] to a plain subscript, past the environment: charge the copy here.
        self.generic_visit(node)
        return _hook(SLICE_HOOK, node) if isinstance(node.arg, nodes.Slice) and node.ctx == "load" else node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:  # noqa: N802 - as above
        # ==, < and `in` walk both sides all the way down: weigh them first.
        self.generic_visit(node)
        node.expr = _hook(WEIGH_HOOK, node.expr)
        for operand in node.ops:
            operand.expr = _hook(MEMBERS_HOOK if operand.op in ("in", "notin") else WEIGH_HOOK, operand.expr)
        return node

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:  # noqa: N802 - as above
        self.generic_visit(node)
        for pair in node.items:
            if not isinstance(pair.key, nodes.Const):
                pair.key = _hook(WEIGH_HOOK, pair.key)  # keys are hashed all the way down
        return node


def _hook(name: str, *args: nodes.Node) -> nodes.Call:
    call = nodes.Call(nodes.Name(name, "load"), list(args), [], None, None)
    call.set_lineno(args[0].lineno if args else 1)
    return call


# --- budgets ---


def _charge(n: int) -> None:
    BUDGET.get().charge(n)


def _size(value: Any) -> int:
    """What building ``value`` cost, roughly: its length, without looking inside."""
    return len(value) if isinstance(value, str | list | tuple | dict) else 1


def _owner_weight(method: Any) -> int:
    """What a method works through: all of a string (split, count), every item of a list to the bottom (index)."""
    if type(method) in _OWNERLESS:
        return 1  # as _size(None): a macro or a function belongs to nothing
    owner = getattr(method, "__self__", None)
    return _weight_of(owner) if isinstance(owner, list | tuple) else _size(owner)


def _sliced(value: Any) -> Any:
    _charge(_size(value))
    return value


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


# --- weighing ---


def _weight(value: Any, indent: int = 0) -> int:
    """About how many characters ``value`` prints as (str, repr or JSON), following lists, dicts and namespaces.

    Printing, comparing and hashing go all the way down a value, and a value can hold one
    list many times over: thirty steps of ``[a, a]`` build a list that prints as billions of
    characters. So this walks the way printing would, counting as it goes, and stops as soon
    as the count passes ``MAX_VALUE_CHARS``; it counts every item before stepping into it, so
    it never takes more than that many steps either. ``indent``: characters a pretty-printer
    adds per item and level of nesting.
    """
    total = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        parts = _children(item)
        if parts is None:
            total += _leaf_weight(item) + indent * depth
            continue
        count, children = parts
        # brackets, and quotes and a separator for each item, counted before stepping in
        total += 2 + 2 * count + indent * depth
        if total > MAX_VALUE_CHARS:
            break
        step = indent * (depth + 1)
        for child in children:  # text and numbers right away: most items are, and this is the hot loop
            kind = type(child)
            if kind is str:
                total += len(child) + step
            elif kind is int:
                total += child.bit_length() // 3 + 1 + step
            else:
                todo.append((child, depth + 1))
        if total > MAX_VALUE_CHARS:
            break
    if total > MAX_VALUE_CHARS:
        raise RenderLimitError(f"a value of the template is larger than {MAX_VALUE_CHARS} characters")
    return total


def _leaf_weight(item: Any) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, int):
        return item.bit_length() // 3 + 1
    return _LEAF_WEIGHT


_LEAF_WEIGHT = 24  # floats, dates, and objects that print as their type's name


def _children(item: Any) -> tuple[int, Iterable[Any]] | None:
    """How many parts ``item`` prints, and the parts: items of a list, keys and values of a dict."""
    kind = type(item)  # the common types first, without the slower isinstance checks of abstract classes
    if kind is list or kind is tuple:
        return len(item), item
    if kind is dict:
        return 2 * len(item), chain.from_iterable(item.items())
    if isinstance(item, str | int | float):
        return None
    if isinstance(item, Namespace):
        item = object.__getattribute__(item, "_Namespace__attrs")
    if isinstance(item, Mapping):
        return 2 * len(item), chain.from_iterable(item.items())
    if isinstance(item, Sequence | Set | MappingView):
        return len(item), item  # type: ignore[return-value]  # every MappingView that exists is iterable
    return None


def _weight_of(value: Any) -> int:
    """``_weight``, with the common cases first and without a walk."""
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise RenderLimitError(f"a value of the template is larger than {MAX_VALUE_CHARS} characters")
        return len(value) + 1
    if type(value) is int:
        return value.bit_length() // 3 + 1
    if type(value) in _SCALARS:
        return 1
    if isinstance(value, float | date):  # a price (a float that knows its currency), today: leaves, as _weight finds
        return _LEAF_WEIGHT
    return _weight(value)


def _weights(values: Iterable[Any]) -> int:
    """``_weight_of`` summed, with text and small integers (most arguments) counted on the spot."""
    total = 0
    for value in values:
        kind = type(value)
        if kind is str and len(value) <= MAX_VALUE_CHARS:
            total += len(value) + 1
        elif kind is int:
            total += value.bit_length() // 3 + 1
        else:
            total += _weight_of(value)
    return total


_CONTEXT_ARGUMENTS = frozenset({"_loop_vars", "_block_vars"})


def _weights_of_arguments(kwargs: Mapping[str, Any]) -> int:
    """The keyword arguments' weights, without the loop's and block's variables Jinja passes along."""
    if not kwargs:
        return 0
    return _weights(value for key, value in kwargs.items() if key not in _CONTEXT_ARGUMENTS)


def _listed(value: Any) -> Any:
    """A generator as a list, so that its items can be weighed before anything goes through them."""
    kind = type(value)
    if kind not in _PLAIN and _iterates(kind) and not isinstance(value, LoopContext):
        return list(value)
    return value


_ITERATOR_TYPES: dict[type, bool] = {}  # by type: isinstance against the Iterator ABC goes through Python


def _iterates(kind: type) -> bool:
    found = _ITERATOR_TYPES.get(kind)
    if found is None:
        found = issubclass(kind, Iterator)
        if len(_ITERATOR_TYPES) < SAFETY_ENTRIES:  # types are the code's, not the data's; bounded all the same
            _ITERATOR_TYPES[kind] = found
    return found


def _plainly_callable(obj: Any) -> bool:
    """A macro, or a function that takes neither the context nor the environment: called as it is."""
    kind = type(obj)
    return kind is Macro or (kind is FunctionType and not hasattr(obj, "jinja_pass_arg"))


def _listed_all(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """``_listed`` of each value; the same tuple when all are plain data (the common case)."""
    for value in values:
        if type(value) not in _PLAIN_OR_NONE:
            return tuple(map(_listed, values))
    return values


def _weighed(value: Any) -> Any:
    """``value`` unchanged, once it is known to print small; what it weighs is charged to the render."""
    _charge(_weight_of(value))
    return value


def _members(value: Any) -> Any:
    """What ``in`` looks through, weighed: a generator made a list first."""
    return _weighed(_listed(value))


def _read_from(obj: Any, value: Any) -> Any:
    return value if type(obj) in _PLAIN or isinstance(obj, _DATA) else _weighed(value)


# --- what templates build and print ---

# Unpaired surrogates ("\ud800" in a template, "%c" % 55296) cannot be encoded as UTF-8:
# the whole response would fail, and with it every other placement.
_SURROGATES = re.compile("[\ud800-\udfff]")


def _sendable(value: Any) -> Any:
    if isinstance(value, str) and not value.isascii() and _SURROGATES.search(value):
        raise ValueError("the template printed an unpaired surrogate, which is not text UTF-8 can carry")
    return value


def _checked_output(value: Any) -> Any:
    """Every ``{{ }}`` passes here before it is escaped and printed."""
    kind = type(value)
    if kind is str or kind is Markup:  # most of what prints: _weighed and _sendable, inline
        if len(value) > MAX_VALUE_CHARS:
            raise RenderLimitError(f"a value of the template is larger than {MAX_VALUE_CHARS} characters")
        BUDGET.get().charge(len(value) + 1)
        if not value.isascii() and _SURROGATES.search(value):
            raise ValueError("the template printed an unpaired surrogate, which is not text UTF-8 can carry")
        return value
    if kind in _PRINTED_AS_IS:
        return _sendable(_weighed(value))
    return _sendable(_printable(_weighed(_listed(value)), top=True))


class NotDataError(TailorError):
    """A template printed something that is not data: a function, a macro, a class, a loop."""


# What prints as it is: text (Markup too), numbers, yes/no and nothing.
_PRINTED_AS_IS = frozenset({str, Markup, int, float, bool, type(None)})


def _printable(value: Any, *, top: bool = False) -> Any:
    """``value`` as data: mappings as dicts, other collections as lists, and nothing else that has a repr.

    A printed function, macro, class or template reference would show Python internals
    and a memory address; that is a mistake in the template (a forgotten call), so the
    block fails and serves its fallback. An undefined value prints nothing on its own,
    like in Jinja, and ``None`` inside a list or dict.
    """
    if isinstance(value, Undefined):  # before __html__, which ChainableUndefined has
        return value if top else None
    if isinstance(value, str | int | float | date) or hasattr(type(value), "__html__"):
        return value
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, Mapping):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_printable(item) for item in value)  # a named tuple too: its class name is no data
    if isinstance(value, list | range | Set | MappingView) or (
        isinstance(value, Iterator) and not isinstance(value, LoopContext)
    ):
        return [_printable(item) for item in value]  # type: ignore[union-attr]  # every MappingView is iterable
    if value is None:
        return None
    raise NotDataError(f"the template printed {_what(value)}; only text, numbers, dates, lists and dicts print")


def _what(value: Any) -> str:
    if isinstance(value, type):
        return "a class (call it, or print one of its values)"
    if isinstance(value, Macro):
        return "a macro (call it: name(...))"
    if isinstance(value, LoopContext):  # callable too, for recursive loops
        return "a loop (print loop.index, loop.first, ...)"
    if callable(value):
        return "a function (call it: name(...))"
    return f"a {type(value).__name__} object"


@pass_eval_context
def _checked_tilde(eval_ctx: EvalContext, *parts: Any) -> str:
    total = sum(_weight(part) for part in parts)
    if total > MAX_VALUE_CHARS:
        raise RenderLimitError(f"a value of the template grows beyond {MAX_VALUE_CHARS} characters")
    _charge(total)
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
    _charge(total)
    return "".join(collected)


def _check_size(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"a value of the template grows beyond {MAX_VALUE_CHARS} characters")
    # "1" * 100000 | int(base=2) is a 100,000-bit integer: base 2, 8 and 16 have no digit limit,
    # and dividing such numbers in a loop takes minutes.
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"integers are limited to {MAX_INT_BITS} bits")
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
        _check_percent_format(left, right)


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


# %% or a conversion: an optional (key), flags, a width and a precision that may be '*'
# (taken from the arguments), a length modifier and the conversion letter.
_PERCENT_SPEC = re.compile(r"%(?:%|(\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z]?))")
_FLOAT_CONVERSIONS = frozenset("eEfFgG")
_FLOAT_DIGITS = 330  # %f of the largest float prints 309 digits before the point


def _check_percent_format(text: str, args: Any) -> None:
    """Refuse a %-format whose output could pass ``MAX_VALUE_CHARS``, before formatting it.

    Each conversion adds its width, precision and float digits, and prints its argument;
    with ``%(name)s`` one argument may print any number of times, so ``"%(a)s" * 10000 %
    {"a": text}`` is ten thousand copies of ``text``.
    """
    size = len(text)
    conversions = 0
    keyed = False
    for match in _PERCENT_SPEC.finditer(text):
        if match.group() == "%%":
            continue
        key, width, precision, kind = match.groups()
        conversions += 1
        keyed = keyed or key is not None
        for number in (width, precision):
            if number == "*" or (number and (len(number) > 4 or int(number) > MAX_WIDTH)):
                raise RenderLimitError(f"%-format widths are limited to {MAX_WIDTH} and cannot be '*'")
        size += int(width or 0) + int(precision or 0) + (_FLOAT_DIGITS if kind in _FLOAT_CONVERSIONS else 0)
    size += _weight(args) * (conversions if keyed else 1)
    if size > MAX_VALUE_CHARS:
        raise RenderLimitError(f"the %-format could build {size} characters; the limit is {MAX_VALUE_CHARS}")
    _charge(size)


# --- filters and tests ---

_CALL_COST = 32  # what one filter or test call costs at least, in characters of work
# Filters that work item by item or character by character in Python, several times slower than the rest.
_FILTER_COST = {
    "wordwrap": 6,
    "urlize": 6,
    "groupby": 4,
    "sort": 3,
    "unique": 3,
    "pprint": 2,
    "title": 2,
    "min": 2,
    "max": 2,
}


class _Metered(dict[str, Any]):
    """Filters (or tests), each wrapped on the way in by ``_metered``."""

    def __init__(self, functions: Mapping[str, Any]) -> None:
        super().__init__()
        self.update(functions)

    def __setitem__(self, name: str, function: Callable[..., Any]) -> None:
        super().__setitem__(name, _metered(name, function))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, function in dict(*args, **kwargs).items():
            self[name] = function


def _metered(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, weighing its arguments first (generators made lists, to weigh their items) and its result after.

    Filters stringify (``string``, ``join``, ``tojson``), compare (``sort``, ``unique``) and
    hash what they are given; weighing first keeps that work in proportion to the budget.
    """
    if getattr(function, "tailor_metered", False):
        return function
    skip = 1 if hasattr(function, "jinja_pass_arg") else 0  # the environment or context comes first
    cost = _FILTER_COST.get(name, 1)

    @functools.wraps(function)
    def metered(*args: Any, **kwargs: Any) -> Any:
        values = _listed_all(args[skip:] if skip else args)
        args = (*args[:skip], *values) if skip else values
        work = _weights(values)
        if kwargs:
            kwargs = {key: _listed(value) for key, value in kwargs.items()}
            work += _weights(kwargs.values())
        budget = BUDGET.get()
        # map and select call a filter or test per item: the calls themselves add up too.
        budget.charge(_CALL_COST + cost * work)
        result = function(*args, **kwargs)
        if type(result) is str:  # _size, _check_size and _sendable, inline for the usual result
            budget.charge(len(result))
            if len(result) > MAX_VALUE_CHARS:
                raise RenderLimitError(f"a value of the template grows beyond {MAX_VALUE_CHARS} characters")
            if not result.isascii() and _SURROGATES.search(result):
                raise ValueError("the template printed an unpaired surrogate, which is not text UTF-8 can carry")
            return result
        budget.charge(_size(result))
        return _sendable(_check_size(result))

    metered.tailor_metered = True  # type: ignore[attr-defined]
    return metered


def _wrap_widths(name: str, *positions: int) -> Callable[..., Any]:
    """The built-in filter ``name`` with its size arguments (by position after the value) capped."""
    original = FILTERS[name]
    # The environment or context comes before the value: slice takes one only to tell async
    # templates apart, so counting from the first argument missed its count.
    skip = 1 if hasattr(original, "jinja_pass_arg") else 0

    def checked(*args: Any, **kwargs: Any) -> Any:
        values = [args[skip + p] for p in positions if skip + p < len(args)] + [
            v for v in kwargs.values() if isinstance(v, int) and not isinstance(v, bool)
        ]
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
                raise RenderLimitError(f"the '{name}' filter takes sizes up to {MAX_WIDTH}")
        return _check_size(original(*args, **kwargs))

    checked.__name__ = original.__name__
    if skip:  # keep the pass_environment / pass_eval_context marker
        checked.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return checked


_wordwrap_widths = _wrap_widths("wordwrap", 1)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    _check_percent_format(text, kwargs or args)
    return _check_size(FILTERS["format"](text, *args, **kwargs))  # type: ignore[no-any-return]


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    # The items themselves were weighed on the way in; the separator repeats between each two.
    count = len(value) if isinstance(value, Sized) else 0
    if len(str(d)) * max(count - 1, 0) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"join would repeat its separator past {MAX_VALUE_CHARS} characters")
    return _check_size(FILTERS["join"](eval_ctx, value, d, attribute))  # type: ignore[no-any-return]


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    hits = text.count(str(old)) if old else len(text) + 1
    if count is not None:
        hits = min(hits, max(count, 0))
    if len(text) + hits * len(str(new)) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"replace would build more than {MAX_VALUE_CHARS} characters")
    return FILTERS["replace"](eval_ctx, s, old, new, count)  # type: ignore[no-any-return]


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    # The indentation repeats on every line: a thousand spaces on 100,000 lines is 100 MB.
    pad = len(width) if isinstance(width, str) else width
    if pad > MAX_WIDTH:
        raise RenderLimitError(f"the 'indent' filter takes sizes up to {MAX_WIDTH}")
    text = str(s)
    if len(text) + (len(text.splitlines()) + 1) * max(pad, 0) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"indent would build more than {MAX_VALUE_CHARS} characters")
    return FILTERS["indent"](s, width, first, blank)  # type: ignore[no-any-return]


@pass_environment
def _wordwrap(  # noqa: PLR0917 - Jinja's signature: templates pass these by position
    environment: Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    # wrapstring goes between every two lines, and with width 1 every character is a line.
    text = str(s)
    if wrapstring is not None and len(text) + (len(text) + 1) * len(str(wrapstring)) > MAX_VALUE_CHARS:
        raise RenderLimitError(f"wordwrap would build more than {MAX_VALUE_CHARS} characters")
    return _wordwrap_widths(environment, s, width, break_long_words, wrapstring, break_on_hyphens)  # type: ignore[no-any-return]


@pass_eval_context
def _urlize(  # noqa: PLR0917 - Jinja's signature: templates pass these by position
    eval_ctx: EvalContext,
    value: str,
    trim_url_limit: int | None = None,
    nofollow: bool = False,
    target: str | None = None,
    rel: str | None = None,
    extra_schemes: Iterable[str] | None = None,
) -> str:
    # target and rel are copied into every link; a link needs a '.', ':' or '@'.
    text = str(value)
    links = text.count(".") + text.count(":") + text.count("@")
    per_link = len(str(target or "")) + len(str(rel or "")) + 64
    if 2 * len(text) + links * per_link > MAX_VALUE_CHARS:
        raise RenderLimitError(f"urlize could build more than {MAX_VALUE_CHARS} characters")
    urlize = FILTERS["urlize"]
    return urlize(eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes)  # type: ignore[no-any-return]


@pass_eval_context
def _tojson(eval_ctx: EvalContext, value: Any, indent: int | str | None = None) -> str:
    # With indent, every item gets a line of its own, indented once per level it is nested.
    if indent is not None:
        step = len(indent) if isinstance(indent, str) else indent
        if step > MAX_WIDTH:
            raise RenderLimitError(f"the 'tojson' filter takes sizes up to {MAX_WIDTH}")
        _charge(_weight(value, indent=max(step, 0) + 1))
    return FILTERS["tojson"](eval_ctx, value, indent)  # type: ignore[no-any-return]


def _pprint(value: Any) -> str:
    _charge(_weight(value, indent=2))  # pformat indents nested items one column per level
    return FILTERS["pprint"](value)  # type: ignore[no-any-return]


@pass_environment
def _sum(environment: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    # sum(start=[]) concatenates lists one at a time: quadratic, and unbounded in size.
    if not isinstance(start, int | float):
        raise RenderLimitError("sum adds numbers; use + to add lists and join for text")
    return FILTERS["sum"](environment, iterable, attribute, start)


_HOOK_FUNCTIONS: dict[str, Callable[..., Any]] = {
    LOOP_HOOK: _budget_loop,
    CONCAT_HOOK: _checked_tilde,
    WEIGH_HOOK: _weighed,
    MEMBERS_HOOK: _members,
    SLICE_HOOK: _sliced,
}
_HOOK_IDS = frozenset(id(function) for function in _HOOK_FUNCTIONS.values())  # they live as long as the module

_SAFE_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _wrap_widths("center", 1),
    "indent": _indent,
    "wordwrap": _wordwrap,
    "batch": _wrap_widths("batch", 1),
    "slice": _wrap_widths("slice", 1),
    "format": _format,
    "join": _join,
    "replace": _replace,
    "urlize": _urlize,
    "tojson": _tojson,
    "pprint": _pprint,
    "sum": _sum,
}
