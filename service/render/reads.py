"""Which request values a template reads, found once per bundle from the template's syntax tree.

The render cache keys a block on exactly these values. The analysis may read more
than the template needs (a whole ``visitor`` passed to a macro, a name shadowed by a
loop variable) but never less, so a cache hit is always the block the template
would have rendered:

* ``visitor.first_name`` and ``visitor["cart"]["total"]`` read those paths; at key
  time a path stops where the data stops being a mapping (``visitor.name.upper()``
  reads ``visitor.name``);
* a root used any other way (``visitor[key]``, ``{% for s in segments %}``) reads
  the whole root;
* ``recommend()`` reads the attributes the catalog ranks by;
* included and imported templates add what they read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from jinja2 import nodes

ROOTS = frozenset({"visitor", "context", "segments", "today"})
RECOMMEND = "recommend"
Path = tuple[str, ...]


def reads_of(tree: nodes.Template) -> tuple[set[Path], bool]:
    """The paths read from the request values, and whether the template asks for recommendations."""
    found: set[Path] = set()
    recommends = _walk(tree, found)
    return found, recommends


def _walk(node: nodes.Node, found: set[Path]) -> bool:
    recommends = False
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        path = _chain(node)
        if path is not None:
            found.add(path)
            return False
    if isinstance(node, nodes.Name):
        if node.name in ROOTS:
            found.add((node.name,))
        return node.name == RECOMMEND
    for child in node.iter_child_nodes():
        recommends = _walk(child, found) or recommends
    return recommends


def _chain(node: nodes.Node) -> Path | None:
    """``visitor.cart["total"]`` → ``("visitor", "cart", "total")``; None unless every key is a constant.

    ``visitor.items`` is the dict method, not the key (Jinja prefers attributes), and
    its result depends on the whole mapping, so the path ends before such a name.
    """
    steps: list[tuple[str, bool]] = []  # (key, written as an attribute), outermost first
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            steps.append((node.attr, True))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            steps.append((node.arg.value, False))
        else:
            return None
        node = node.node
    if not (isinstance(node, nodes.Name) and node.name in ROOTS):
        return None
    keys: list[str] = []
    for key, is_attribute in reversed(steps):
        if is_attribute and hasattr(dict, key):
            break
        keys.append(key)
    return (node.name, *keys)


def simplify(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Drop paths under another path: reading ``visitor`` already covers ``visitor.name``."""
    ordered = sorted(set(paths), key=lambda p: (len(p), p))
    kept: list[Path] = []
    for path in ordered:
        if not any(path[: len(k)] == k for k in kept):
            kept.append(path)
    return tuple(sorted(kept))


_MISSING: list[int] = [0]
_PLAIN_MAPPINGS = frozenset({dict, MappingProxyType})


def value_at(roots: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path``, as far as mappings go; ``[0]`` when missing and ``[1, value]`` when present.

    Missing and None render differently (``default`` only replaces the former), so the
    key tells them apart.
    """
    if path[0] not in roots:
        return _MISSING
    value = roots[path[0]]
    for key in path[1:]:
        if type(value) not in _PLAIN_MAPPINGS and not isinstance(value, Mapping):  # dicts without the ABC check
            break  # reading into a string or a list: the whole value decides the output
        if key not in value:
            return _MISSING
        value = value[key]
    return [1, value]
