"""The sandbox's shortcuts answer exactly what its full checks answer.

``TailorSandbox`` decides an attribute's safety once per (type, name), reads the items of plain
dicts without Jinja's attribute lookup first, and calls macros and plain functions without
``Context.call``. Each shortcut is held here to the path it replaces, taken the long way:
Jinja's own ``SandboxedEnvironment`` methods with the decision made afresh every time, over
generated objects (dicts whose keys shadow dict methods, mapping proxies, lists, text, dates,
namespaces, undefined values, functions, classes) and names (dunders, private names, methods,
keys). The attack corpus (``test_sandbox.py``) runs through the shortcuts as well.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace

from service.render import sandbox
from service.render.sandbox import BUDGET, Budget, TailorSandbox

NAMES = [
    "items", "keys", "values", "get", "pop", "update", "copy", "clear", "setdefault", "fromkeys", "__class__",
    "__init__", "__dict__", "__globals__", "_private", "mro", "format", "upper", "split", "join", "index", "count",
    "year", "isoformat", "replace", "real", "name", "price", "url", "0", "__len__", "func_globals", "gi_frame",
]  # fmt: skip


def _function() -> str:
    return "called"


scalars = st.one_of(st.text(max_size=5), st.integers(-5, 5), st.floats(allow_nan=False), st.booleans(), st.none())
keyed = st.dictionaries(st.sampled_from(NAMES), scalars, max_size=6)
objects = st.one_of(
    keyed,
    keyed.map(MappingProxyType),
    st.lists(scalars, max_size=4),
    st.lists(scalars, max_size=4).map(tuple),
    st.text(max_size=6),
    st.integers(),
    st.just(date(2026, 11, 29)),
    keyed.map(lambda d: Namespace(**d)),
    st.just(_function),
    st.just(dict),
    st.just(str.upper),
    st.just("text".upper),
    st.just(iter([1, 2])),
)
keys = st.one_of(st.sampled_from(NAMES), st.integers(-3, 5), st.booleans())


class LongWay(TailorSandbox):
    """Every read decided afresh through Jinja's own methods, as before the shortcuts."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return self._attribute_allowed(obj, attr)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return sandbox._read_from(obj, SandboxedEnvironment.getattr(self, obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        if not isinstance(argument, str | int | float):
            sandbox._weighed(argument)
        return sandbox._read_from(obj, SandboxedEnvironment.getitem(self, obj, argument))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        return SandboxedEnvironment.call(self, context, obj, *args, **kwargs)  # is_safe_callable, Context.call


SHORT = TailorSandbox(DictLoader({}), autoescape=lambda _: True)
LONG = LongWay(DictLoader({}), autoescape=lambda _: True)


def _outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    token = BUDGET.set(Budget(10_000))
    try:
        value = read()
    except SecurityError as exc:
        return "refused", str(exc)
    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is compared
        return "raised", type(exc).__name__
    finally:
        BUDGET.reset(token)
    if isinstance(value, Undefined):
        return "undefined", (type(value), value._undefined_name)
    return "value", value


@settings(max_examples=600, deadline=None)
@given(obj=objects, name=st.sampled_from(NAMES))
def test_attributes_read_the_same(obj: Any, name: str) -> None:
    for _ in range(2):  # the second time, from the remembered decision
        assert _outcome(lambda: SHORT.getattr(obj, name)) == _outcome(lambda: LONG.getattr(obj, name))


@settings(max_examples=400, deadline=None)
@given(obj=objects, key=keys)
def test_items_read_the_same(obj: Any, key: Any) -> None:
    assert _outcome(lambda: SHORT.getitem(obj, key)) == _outcome(lambda: LONG.getitem(obj, key))


@settings(max_examples=300, deadline=None)
@given(obj=objects, name=st.sampled_from(NAMES))
def test_safety_is_decided_by_type_and_name(obj: Any, name: str) -> None:
    assert SHORT.is_safe_attribute(obj, name, None) == LONG._attribute_allowed(obj, name)


def test_the_remembered_decisions_are_bounded() -> None:
    for index in range(sandbox.SAFETY_ENTRIES + 10):
        SHORT.is_safe_attribute({}, f"name{index}", None)
    assert len(sandbox._SAFE_ATTRIBUTES) <= sandbox.SAFETY_ENTRIES


CALLS = {
    "macro": "{% macro m(a, b=2) %}{{ a }}-{{ b }}-{{ varargs | length }}{% endmacro %}{{ m(1) }}{{ m(1, 3, 4) }}",
    "macro in a loop": "{% macro m(x) %}[{{ x }}]{% endmacro %}{% for i in [1, 2] %}{{ m(i) }}{% endfor %}",
    "caller": "{% macro m() %}<{{ caller() }}>{% endmacro %}{% call m() %}inner{% endcall %}",
    "function": "{{ f() }}",
    "stop iteration": "{{ stop() }}|",
    "method": "{{ 'a,b'.split(',') }}",
    "class": "{{ dict(a=1) }}",
}


def _stop() -> None:
    raise StopIteration


def test_calls_give_what_context_call_gives() -> None:
    for name, source in CALLS.items():
        outputs = []
        for env in (SHORT, LONG):
            template = env.from_string(source, globals={"f": _function, "stop": _stop})
            token = BUDGET.set(Budget(10_000))
            try:
                outputs.append(template.render())
            finally:
                BUDGET.reset(token)
        assert outputs[0] == outputs[1], name
