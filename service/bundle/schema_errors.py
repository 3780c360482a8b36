"""Pydantic's validation errors, rewritten for the people who edit rule files.

Pydantic reports the location of an error inside its own model of the data,
which for unions adds the names of the members it tried (``eq.str``,
``eq.int``…). Here each error is moved back to a path the file really has,
the errors of one union are merged into one message, and an unknown key gets
a suggestion from the keys allowed at that very place.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from service.core.compile import suggest
from service.core.errors import Problem
from service.core.spec import Variant

Path = tuple[str | int, ...]

_TYPE_NAMES = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true/false",
    "Ref": "a reference such as {attr: other.value}",
    "datetime": "a time such as 2026-11-22T12:00:00Z",
}


def schema_problems(file: str, model: type[BaseModel], data: Any, exc: ValidationError) -> list[Problem]:
    """One problem per place in the file, in the order pydantic found them."""
    grouped: dict[Path, list[tuple[Any, tuple[int | str, ...]]]] = {}
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        path, rest = _split_loc(data, error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(Problem(file, path, _unknown_key(model, error["loc"])))
        elif error["type"] == "missing":
            problems.append(Problem(file, path, f"missing required key '{rest[0] if rest else error['loc'][-1]}'"))
        else:
            grouped.setdefault(path, []).append((error, rest))
    problems.extend(Problem(file, path, _message(errors)) for path, errors in grouped.items())
    return problems


def _split_loc(data: Any, loc: tuple[int | str, ...]) -> tuple[Path, tuple[int | str, ...]]:
    """The longest part of ``loc`` that exists in the data, and what pydantic added after it."""
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return tuple(loc[:i]), tuple(loc[i:])
    return tuple(loc), ()


def _message(errors: list[tuple[Any, tuple[int | str, ...]]]) -> str:
    error = errors[0][0]
    kind = error["type"]
    if kind == "literal_error" and error["loc"] == ("version",):
        return f"unsupported version {error['input']!r}: this Tailor reads version 1"
    union_members = [_member_name(r[0]) for _, r in errors if r and isinstance(r[0], str)]
    if len(union_members) > 1:
        wanted = [_TYPE_NAMES.get(m, m) for m in dict.fromkeys(union_members)]
        return f"expected {', '.join(wanted[:-1])} or {wanted[-1]}, got {_describe(error['input'])}"
    if kind == "string_pattern_mismatch":
        return _pattern_message(error)
    message = str(error["msg"])
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    return f"{message[:1].lower()}{message[1:]}, got {_describe(error['input'])}"


def _member_name(tag: str) -> str:
    """``function-after[_one_source(), Ref]`` → ``Ref``: the model behind a validator's tag."""
    return tag.rstrip("]").split(", ")[-1].split("[")[-1]


def _pattern_message(error: Any) -> str:
    pattern = str(error.get("ctx", {}).get("pattern", ""))
    value = error["input"]
    if pattern.startswith("^v?"):
        return f"'{value}' is not a semantic version such as 2.3.1 or 2.3.1-beta.1"
    if "\\." in pattern:
        return f"'{value}' is not an attribute path: names of letters, digits, _ and - joined by dots"
    return f"'{value}' is not a valid name: use letters, digits, _ and -, starting with a letter"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _unknown_key(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    owners = list(_models_at(model, loc[:-1]))
    allowed = {field.alias or name for owner in owners for name, field in owner.model_fields.items()}
    if Variant in owners:
        return f"unknown key '{key}': a variant's fields go under 'content'"
    return f"unknown key '{key}'{suggest(key, allowed)}"


def _models_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> Iterator[type[BaseModel]]:
    """The models that can stand at ``loc`` (union member tags in ``loc`` are skipped)."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for annotation in _flatten(current):
            following.extend(_step(annotation, part))
        if following:
            current = following
    return (m for m in _flatten(current) if isinstance(m, type) and issubclass(m, BaseModel))


def _flatten(annotations: list[Any]) -> Iterator[Any]:
    for annotation in annotations:
        origin = typing.get_origin(annotation)
        if origin is typing.Union or origin is types.UnionType:
            yield from _flatten(list(typing.get_args(annotation)))
        elif origin is typing.Annotated:
            yield from _flatten([typing.get_args(annotation)[0]])
        else:
            yield annotation


def _step(annotation: Any, part: int | str) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(part, str):
            return []
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return [field.annotation]
        return []
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple) and args:
        return [args[0]]
    if origin is dict and len(args) == 2:
        return [args[1]]
    return []
