"""Pydantic's validation errors, rewritten for the people who edit rule files.

Pydantic reports the location of an error inside its own model of the data,
which for unions adds the names of the members it tried (``eq.str``,
``eq.int``…). Here each error is moved back to a path the file really has,
the errors of one union are merged into one message, and an unknown key gets
a suggestion from the keys allowed at that very place.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from service.core.compile import suggest
from service.core.errors import Problem
from service.core.spec import OPERATORS, SUBJECTS, Condition, Ref, Variant

_TIME = "a time such as 2026-11-22T12:00:00Z"

Path = tuple[str | int, ...]

_TYPE_WORDS = {  # pydantic's error types → what the file should have held
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true/false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "datetime_type": _TIME,
    "datetime_parsing": _TIME,
    "datetime_from_date_parsing": _TIME,
    "date_from_datetime_parsing": _TIME,
}
_BOUNDS = {  # pydantic's limit errors → our wording, with the limit from the error's context
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be above {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be below {}"),
    "multiple_of": ("multiple_of", "must be a multiple of {}"),
    "string_too_long": ("max_length", "must be at most {} characters long"),
    "string_too_short": ("min_length", "must be at least {} characters long"),
    "too_long": ("max_length", "takes at most {} items"),
    "too_short": ("min_length", "needs at least {} item(s)"),
}
_REFERENCE = "a reference such as {attr: other.value}"
_OPERAND_WORDS = {  # operators whose operand has several shapes, for a value of none of them
    **dict.fromkeys(("gt", "gte", "lt", "lte"), f"a number, text or {_REFERENCE}"),
    **dict.fromkeys(("before", "after"), f"{_TIME} or {_REFERENCE}"),
}
_TYPE_ALIASES = {  # other systems' type names → ours, for `type:`
    "array": "list", "string": "text", "str": "text", "integer": "number", "int": "number", "float": "number",
    "bool": "boolean", "dict": "object", "map": "object", "mapping": "object",
}  # fmt: skip


def schema_problems(file: str, model: type[BaseModel], data: Any, exc: ValidationError) -> list[Problem]:
    """One problem per place in the file, in the order pydantic first found a problem there."""
    grouped: dict[Path, list[tuple[Any, tuple[int | str, ...]]]] = {}
    for error in exc.errors(include_url=False):
        path, rest = _split_loc(data, error["loc"])
        grouped.setdefault(path, []).append((error, rest))
    return [Problem(file, path, _spot_message(model, data, path, errors)) for path, errors in grouped.items()]


def _split_loc(data: Any, loc: tuple[int | str, ...]) -> tuple[Path, tuple[int | str, ...]]:
    """The parts of ``loc`` that exist in the data, and the rest: union member tags and missing keys.

    Pydantic's location runs through its own model of the data: ``eq.reference.attr``
    for the ``attr`` of a reference under ``eq``. A tag is skipped so the path is one the file has.
    """
    node = data
    path: list[int | str] = []
    rest: list[int | str] = []
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        else:
            rest.append(part)
    return tuple(path), tuple(rest)


def _spot_message(model: type[BaseModel], data: Any, path: Path, errors: list[Any]) -> str:
    """One message for one place, however many union members pydantic tried there."""
    if len(errors) > 1:  # a constant member ('.' for the item itself) is the lesser reading of a value
        errors = [e for e in errors if e[0]["type"] != "literal_error"] or errors
    kinds = [error["type"] for error, _ in errors]
    if "extra_forbidden" in kinds:
        return _unknown_key(model, data, errors[kinds.index("extra_forbidden")][0]["loc"])
    if "missing" in kinds:
        error, rest = errors[kinds.index("missing")]
        return _missing(error, rest, _node(data, path))
    if "union_tag_invalid" in kinds and path and path[-1] in _OPERAND_WORDS:
        return f"expected {_OPERAND_WORDS[str(path[-1])]}, got {_describe(errors[0][0]['input'])}"
    wanted = [_TYPE_WORDS[k] for k in kinds if k in _TYPE_WORDS]
    if len(errors) > 1 and len(wanted) == len(errors):
        return f"expected {_either(wanted)}, got {_describe(errors[0][0]['input'])}"
    return _message(errors[0][0])


def _either(words: list[str]) -> str:
    unique = list(dict.fromkeys(words))
    if "a whole number" in unique and ("a number" in unique or "a finite number" in unique):
        unique.remove("a whole number")  # every whole number is a number
    return unique[0] if len(unique) == 1 else f"{', '.join(unique[:-1])} or {unique[-1]}"


def _missing(error: Any, rest: tuple[int | str, ...], node: Any) -> str:
    if rest and isinstance(rest[-1], int):  # a fixed-length list, such as between: [low, high], is too short
        return f"expected a list of two values, [low, high], got {_describe(node)}"
    return f"missing required key '{rest[-1] if rest else error['loc'][-1]}'"


def _node(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]  # the path was found in the data
    return data


def _message(error: Any) -> str:
    kind = error["type"]
    got = _describe(error["input"])
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(error, got)
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    if kind in _BOUNDS:
        key, wording = _BOUNDS[kind]
        limit = error.get("ctx", {}).get(key)
        limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit  # 100, not 100.0
        wording = "needs at least one item" if kind == "too_short" and limit == 1 else wording.format(limit)
        return f"{wording}, got {got}"
    message = str(error["msg"]).replace(" after validation", "").removeprefix("Input should be ")
    return f"expected {message}, got {got}"


def _literal_message(error: Any, got: str) -> str:
    if error["loc"] == ("version",):
        return f"unsupported version {error['input']!r}: this Tailor reads version 1"
    expected = str(error.get("ctx", {}).get("expected", ""))
    alias = _TYPE_ALIASES.get(str(error["input"]).lower()) if error["loc"][-1:] == ("type",) else None
    hint = f" (did you mean '{alias}'?)" if alias else ""
    return f"expected {expected}, got {got}{hint}"


def _model_message(error: Any, got: str) -> str:
    owner = error.get("ctx", {}).get("class_name")
    if owner == "Condition":
        return f"expected a condition, a mapping such as {{attr: plan, eq: pro}}, got {got}"
    if owner == "LengthTest":
        return f"expected a test of the number of items, such as {{gte: 2}}, got {got}"
    return f"expected a mapping, got {got}"


_SPECIAL: dict[str, Callable[[Any, str], str]] = {
    "literal_error": _literal_message,
    "string_pattern_mismatch": lambda error, _: _pattern_message(error),
    "value_error": lambda error, _: str(error["msg"]).removeprefix("Value error, "),
    "model_type": _model_message,
}


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
        return "an empty mapping" if not value else "a mapping"
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {len(value)} item{'s' if len(value) > 1 else ''}"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _unknown_key(model: type[BaseModel], data: Any, loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    owners = list(_models_at(model, loc[:-1]))
    allowed = {field.alias or name for owner in owners for name, field in owner.model_fields.items()}
    if Variant in owners:
        return f"unknown key '{key}': a variant's fields go under 'content'"
    if owners == [Ref]:
        return f"unknown key '{key}': a reference names 'attr' or 'context'"
    if Condition in owners and _is_operator_spot(key, _node(data, _split_loc(data, loc[:-1])[0])):
        return f"unknown operator '{key}'{_operator_hint(key)}; the operators are {', '.join(OPERATORS)}"
    return f"unknown key '{key}'{suggest(key, allowed)}"


def _is_operator_spot(key: str, condition: Any) -> bool:
    """An unknown key beside a subject, or one that is another system's operator, was meant as an operator."""
    has_subject = isinstance(condition, dict) and any(s in condition for s in SUBJECTS)
    return has_subject or _normal(key) in OPERATOR_ALIASES


# Other rule languages' operators (MongoDB, JSON Logic, Unleash, GrowthBook ...) and ours.
OPERATOR_ALIASES = {
    "nin": "not_in", "notin": "not_in", "not_one_of": "not_in", "one_of": "in", "in_list": "in",
    "neq": "ne", "not_eq": "ne", "not_equal": "ne", "not_equals": "ne", "equals": "eq", "equal": "eq", "is": "eq",
    "ge": "gte", "le": "lte", "gteq": "gte", "lteq": "lte", "greater_than": "gt", "less_than": "lt",
    "contains_any": "any_of", "has_any": "any_of", "contains_all": "all_of", "has_all": "all_of", "all_in": "all_of",
    "contains_none": "none_of", "has_none": "none_of", "not_contains": "none_of",
    "elem_match": "some", "any_item": "some", "each": "every", "all_items": "every",
    "size": "length", "len": "length", "count": "length",
    "regex": "matches", "match": "matches", "startswith": "starts_with", "endswith": "ends_with",
    "type_of": "type", "typeof": "type", "is_type": "type",
    "semver_ge": "semver_gte", "semver_le": "semver_lte", "version_gte": "semver_gte", "version_lte": "semver_lte",
    "case_insensitive": "ignore_case", "ignorecase": "ignore_case", "insensitive": "ignore_case",
    ">=": "gte", ">": "gt", "<=": "lte", "<": "lt", "=>": "gte", "=<": "lte", "=": "eq", "==": "eq", "===": "eq",
    "!=": "ne", "<>": "ne", "!==": "ne", "~": "matches", "=~": "matches",
}  # fmt: skip


def _normal(key: str) -> str:
    """``$nin`` → ``nin``, ``startsWith`` → ``starts_with``, ``NOT-IN`` → ``not_in``."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key.lstrip("$"))
    return snake.lower().replace("-", "_")


def _operator_hint(key: str) -> str:
    normal = _normal(key)
    meant = OPERATOR_ALIASES.get(normal) or (normal if normal in OPERATORS else None)
    return f" (did you mean '{meant}'?)" if meant else suggest(key, OPERATORS)


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
