"""One error tree: every exception class the service defines derives from ``TailorError``."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

SERVICE = Path(__file__).parents[1] / "service"
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


def _exception_classes() -> list[tuple[str, str, list[str]]]:
    """(file, class, base names) of every class in service/ that names an exception as a base."""
    found = []
    for path in sorted(SERVICE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                if any(b in BUILTIN_EXCEPTIONS or b.endswith("Error") for b in bases):
                    found.append((path.relative_to(SERVICE.parent).as_posix(), node.name, bases))
    return found


EXCEPTIONS = _exception_classes()


def test_the_service_defines_exceptions() -> None:
    assert len(EXCEPTIONS) >= 10  # the scan finds them; a broken scan must not pass silently


@pytest.mark.parametrize(("file", "name", "bases"), EXCEPTIONS, ids=[f"{f}:{n}" for f, n, _ in EXCEPTIONS])
def test_every_error_derives_from_the_one_root(file: str, name: str, bases: list[str]) -> None:
    builtin = [b for b in bases if b in BUILTIN_EXCEPTIONS]
    assert not builtin or name == "TailorError", f"{file}: {name} derives from {builtin}; derive from TailorError"
