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

from service.bundle.indentation import misaligned
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


MAX_DEPTH = 64  # nesting levels: a rule file needs about ten; deeper is a mistake or an attack on the reader
SHOWN_DEPTH = 6  # of a path too deep, the start says where
SPARE_VALUES = 10_000  # values aliases may add beyond one a character of the file
# The tags a rule file's values may carry (implicit or spelled out); !!binary, !!set, custom tags are refused.
_TAGS = {_BOOL, _INT, _FLOAT, _NULL, "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raise YamlError for syntax errors, duplicate keys or several documents."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: the reader knows where, not the line
        shown = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise YamlError(f"YAML: the character {shown} is not allowed", text.count("\n", 0, exc.position) + 1) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML: {exc}", None) from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlError("the file is empty", 1)
    builder = _Builder(loader, budget=len(text) + SPARE_VALUES)
    return YamlDocument(builder.build(node, ()), builder.lines)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> YamlError:
    """PyYAML's refusal, with what a person most likely did there when its words do not say."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = f"YAML syntax: {exc.problem or exc.context}"
    tabbed = _tab_indented(text, line)
    if tabbed is not None:  # PyYAML's words for a tab rarely say "tab"
        return YamlError("YAML syntax: a tab indents this line; YAML indents with spaces only", tabbed)
    symbol = _symbol_key(text, line)
    if symbol is not None:  # ">=: 5" is no key to YAML: ">" opens a folded text
        return YamlError(f"YAML syntax: '{symbol}' cannot start a key; write the operator as {_SYMBOLS[symbol]}", line)
    off = misaligned(text, line)
    if off is not None:  # "did not find expected key" names no indentation: say which line is out of step
        return YamlError(f"{problem}; {off.hint}", off.line)
    if _colon_in_text(text, line):  # "Sale: 20% off" unquoted reads as a second key
        return YamlError(f"{problem}; text with ': ' in it goes in quotes (headline: \"Sale: 20% off\")", line)
    return YamlError(problem, line)


_COLON_IN_TEXT = re.compile(
    r"""^\s*(?:-\s+)?[^\s:#'"{\[\-][^:#{},\[\]]*:\s+[^\s'"{\[|>&*!][^#]*?:(?:\s|$)"""  # key: text: more
    r"""|[{,]\s*[^\s:,{}'"][^:,{}]*:\s+[^\s'"{\[][^,{}]*?:\s"""  # { key: text: more }
)


def _colon_in_text(text: str, line: int | None) -> bool:
    return _COLON_IN_TEXT.search(_line_at(text, line)) is not None


def _line_at(text: str, line: int | None) -> str:
    """Line ``line`` (1-based) of ``text``, or "" when there is none."""
    lines = text.splitlines()
    return lines[line - 1] if line is not None and 0 < line <= len(lines) else ""


_SYMBOLS = {">=": "gte", ">": "gt"}
_SYMBOL_KEY = re.compile(r"(?:^|[{,]|-\s)\s*(>=?)\s*:")


def _symbol_key(text: str, line: int | None) -> str | None:
    """``>=`` or ``>`` written as a condition's key on ``line``, which YAML cannot read."""
    found = _SYMBOL_KEY.search(_line_at(text, line))
    return found.group(1) if found else None


def _tab_indented(text: str, line: int | None) -> int | None:
    """The line at or just before an error's ``line`` whose indentation holds a tab, if one does."""
    if line is None:
        return None
    lines = text.splitlines()
    for number in (line, line - 1):
        if 0 < number <= len(lines):
            content = lines[number - 1]
            if "\t" in content[: len(content) - len(content.lstrip(" \t"))]:
                return number
    return None


class _Builder:
    """Python values from the node tree, with the line of every path.

    Aliases make the tree a graph: a value refers to a node defined once and may be built many
    times over. Nine aliases of nine aliases of ... (a "billion laughs" file of a few hundred bytes)
    would take minutes, and an alias inside its own anchor forever, so both are errors at their line.
    """

    def __init__(self, loader: _Loader, budget: int) -> None:
        self.loader, self.budget = loader, budget
        self.lines: dict[Path, int] = {}
        self.open: set[int] = set()  # the nodes being built, from the root down to here

    def build(self, node: yaml.Node, path: Path) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        self.budget -= 1
        if self.budget < 0:
            raise YamlError("aliases expand to far more values than the file holds (an alias bomb?)", line, path)
        if len(path) > MAX_DEPTH:
            raise YamlError(f"nested deeper than {MAX_DEPTH} levels", line, path[:SHOWN_DEPTH])
        if id(node) in self.open:
            raise YamlError("an alias refers to a value that contains it", line, path)
        self.open.add(id(node))
        try:
            return self._value(node, path)
        finally:
            self.open.discard(id(node))

    def _value(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        self._check_tag(node, path)
        try:
            self.loader.flatten_mapping(node)  # resolves << merge keys
        except yaml.MarkedYAMLError as exc:
            raise YamlError(f"YAML: {exc.problem}", node.start_mark.line + 1, path) from None
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("a key must be plain text", key_node.start_mark.line + 1, path)
            key = self._scalar(key_node, path)
            if key in out:
                raise YamlError(f"key '{key}' appears twice", key_node.start_mark.line + 1, (*path, key))
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        self._check_tag(node, path)
        try:
            return self.loader.construct_object(node)
        except ValueError:  # Python converts no integer of more than 4,300 digits
            raise YamlError("a number with more digits than any rule needs", node.start_mark.line + 1, path) from None
        except yaml.YAMLError as exc:
            raise YamlError(f"YAML: {exc}".split("\n")[0], node.start_mark.line + 1, path) from None

    @staticmethod
    def _check_tag(node: yaml.Node, path: Path) -> None:
        if node.tag not in _TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlError(f"the YAML tag {tag} is not allowed here", node.start_mark.line + 1, path)
