"""YAML with line numbers, read the way marketers expect.

PyYAML follows YAML 1.1, where ``no`` is false, ``01234`` is an octal number and
``12:30`` is 750. Rule files are written by people, so this reader resolves plain
scalars by the YAML 1.2 core schema instead: only true/false are booleans, numbers
are decimal, and dates stay text for the schema to parse. It also rejects duplicate
keys (YAML keeps the last one silently) and records the line of every key and item,
so that any later problem can point at its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from service.core.errors import TailorError

Path = tuple[str | int, ...]

_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_YAML_1_1_ONLY = {_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp"}


class _Loader(_BASE):  # type: ignore[misc, valid-type]
    """SafeLoader with the YAML 1.2 core schema for booleans and numbers."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML_1_1_ONLY]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


class YamlError(TailorError):
    """A file that is not the YAML we accept, with the line of the problem."""

    def __init__(self, message: str, line: int | None, path: Path = ()) -> None:
        self.message = message
        self.line = line
        self.path = path
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    data: Any
    lines: dict[Path, int]  # the line (1-based) of every key and item, by its path

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that the file has."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raise YamlError for syntax errors, duplicate keys or several documents."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(f"YAML syntax: {exc.problem or exc.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML: {exc}", None) from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlError("the file is empty", 1)
    lines: dict[Path, int] = {}
    return YamlDocument(_build(loader, node, (), lines), lines)


def _build(loader: _Loader, node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves << merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("a key must be plain text", key_node.start_mark.line + 1, path)
            key = loader.construct_object(key_node)
            if key in out:
                raise YamlError(f"key '{key}' appears twice", key_node.start_mark.line + 1, (*path, key))
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node)
