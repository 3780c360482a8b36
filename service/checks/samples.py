"""Visitors to preview: the example visitors (``examples/visitors/*.json``) and every test of the checks.

The preview page offers them in a list; a file that cannot be read is named with the reason
instead of hiding the others. Nothing here is decided: a sample is the visitor and context a
test or an example would send to ``POST /v1/decide``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.bundle.yamlfile import YamlError, parse_yaml
from service.checks.files import CHECKS_DIR, check_files
from service.checks.spec import ChecksFile
from service.core.errors import Problem

VISITORS_DIR = Path("examples") / "visitors"
MAX_FILE_BYTES = 1024 * 1024  # a preview lists small files; a larger one is named, not read
MAX_SAMPLES = 500  # bounds the page's list (and the response) whatever the folders hold


@dataclass(frozen=True, slots=True)
class Sample:
    source: str  # where it comes from: a file, and for a check its test's line (``checks/home.yaml:5``)
    name: str
    visitor: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)  # a check's stand-in scores, shown, not applied


def preview_samples(root: Path) -> tuple[list[Sample], list[Problem]]:
    """Every example visitor, then every check test, of the bundle folder ``root``; and the unreadable files."""
    samples: list[Sample] = []
    problems: list[Problem] = []
    for path in sorted((root / VISITORS_DIR).glob("*.json")):
        _add(samples, problems, _example(path, _shown(root, path)))
    for path in check_files(root):
        _add(samples, problems, _check_tests(path, _shown(root, path)))
    return samples[:MAX_SAMPLES], problems


def _add(samples: list[Sample], problems: list[Problem], read: list[Sample] | Problem) -> None:
    if isinstance(read, Problem):
        problems.append(read)
    else:
        samples += read


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _text(path: Path, shown: str) -> str | Problem:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return Problem(shown, (), f"larger than {MAX_FILE_BYTES} bytes: not listed", line=1)
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(shown, (), f"cannot read the file: {exc}", line=1)


def _example(path: Path, shown: str) -> list[Sample] | Problem:
    """An example visitor file holds what ``visitor`` takes: ``{id, attributes, consent}``."""
    text = _text(path, shown)
    if isinstance(text, Problem):
        return text
    try:
        visitor = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(shown, (), f"not JSON: {exc.msg}", line=exc.lineno)
    if not isinstance(visitor, dict):
        return Problem(shown, (), "a visitor file holds one JSON object", line=1)
    return [Sample(shown, path.stem, visitor)]


def _check_tests(path: Path, shown: str) -> list[Sample] | Problem:
    text = _text(path, shown)
    if isinstance(text, Problem):
        return text
    try:
        document = parse_yaml(text)
        spec = ChecksFile.model_validate(document.data)
    except YamlError as exc:
        return Problem(shown, exc.path, exc.message, line=exc.line or 1)
    except ValidationError:
        return Problem(shown, (), f"not a valid check file: `tailor test` says why ({CHECKS_DIR}/ format)", line=1)
    return [
        Sample(f"{shown}:{document.line_of(('tests', i)) or 1}", test.name, test.visitor, test.context, test.models)
        for i, test in enumerate(spec.tests)
    ]
