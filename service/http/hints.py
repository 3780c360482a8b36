"""A suggestion for a misspelt key of a request, from the wire struct at the error's path.

msgspec refuses an unknown key by name only (``Object contains unknown field `atributes```); the
API, ``tailor decide`` and check files add the nearest field the struct at that path has.
"""

from __future__ import annotations

import re

import msgspec

from service.core.compile import suggest

_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def unknown_field_hint(kind: object, path: str, text: str) -> str:
    """`` (did you mean 'attributes'?)`` for msgspec's ``text`` at ``path`` (``$.visitor``), else empty."""
    match = _UNKNOWN.match(text)
    if match is None:
        return ""
    at = _walk(msgspec.inspect.type_info(kind), path)
    if not isinstance(at, msgspec.inspect.StructType):
        return ""
    return suggest(match["name"], [f.encode_name for f in at.fields])


def path_steps(text: str) -> tuple[str | int, ...]:
    """``.cart.items[0]`` → ``("cart", "items", 0)``: msgspec's path, as a YAML or JSON path's steps."""
    return tuple(key if key else int(number) for key, number in _STEP.findall(text))


def _walk(info: msgspec.inspect.Type | None, path: str) -> msgspec.inspect.Type | None:
    for step in path_steps(path.removeprefix("$")):
        if isinstance(step, str):  # a list's index needs no step: _struct_of looks inside lists
            info = _inside(_struct_of(info), step)
    return _struct_of(info)


def _struct_of(info: msgspec.inspect.Type | None) -> msgspec.inspect.Type | None:
    """The struct an optional or list type holds (a list's step needs nothing more)."""
    if isinstance(info, msgspec.inspect.UnionType):
        return next((t for t in info.types if isinstance(t, msgspec.inspect.StructType)), None)
    if isinstance(info, msgspec.inspect.ListType):
        return _struct_of(info.item_type)
    return info


def _inside(info: msgspec.inspect.Type | None, key: str) -> msgspec.inspect.Type | None:
    if isinstance(info, msgspec.inspect.StructType):
        return next((f.type for f in info.fields if f.encode_name == key), None)
    return None
