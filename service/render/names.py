"""Names a template reads that nothing defines: a typo such as ``vistor`` or ``recomend(3)``.

Jinja makes an unknown name undefined, so ``{{ vistor.first_name }}`` prints nothing and
``{{ recomend(3) }}`` fails every render, while the bundle loads without a word. The check is
deliberately loose about scope: a name assigned, looped over, imported or taken as a macro
argument anywhere in the template counts as defined everywhere in it, so it never flags a
name that some path defines.
"""

from __future__ import annotations

from collections.abc import Iterable

from jinja2 import nodes

# Names Jinja itself provides inside loops, macros and call blocks.
_JINJA_NAMES = frozenset({"loop", "caller", "varargs", "kwargs", "self", "super"})


def unknown_names(tree: nodes.Template, known: Iterable[str]) -> list[tuple[str, int]]:
    """Each name the template reads that neither ``known`` nor the template defines, at its first line."""
    defined = _defined(tree) | _JINJA_NAMES | set(known)
    first: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in defined:
            first.setdefault(node.name, node.lineno)
    return sorted(first.items(), key=lambda item: (item[1], item[0]))


def _defined(tree: nodes.Template) -> set[str]:
    """Every name the template binds anywhere: set, for, with, macro and its arguments, import."""
    names = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
    names |= {node.name for node in tree.find_all(nodes.Macro)}
    names |= {node.target for node in tree.find_all(nodes.Import)}
    for node in tree.find_all(nodes.FromImport):
        names |= {name if isinstance(name, str) else name[1] for name in node.names}
    return names
