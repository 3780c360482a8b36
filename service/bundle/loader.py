"""Read a bundle folder, validate every file, compile, and report ALL problems with file and line.

A bundle folder holds ``rules/*.yaml`` and ``content/*.yaml`` (``.yml`` too, in
subfolders too). Its revision is a hash of every file's path and bytes, so two
replicas with the same files report the same revision.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.bundle.yamlfile import YamlDocument, YamlError, parse_yaml
from service.core import spec
from service.core.compile import Bundle, compile_bundle, suggest
from service.core.errors import BundleError, Problem
from service.core.spec import ContentFile, RulesFile

RULES_DIR = "rules"
CONTENT_DIR = "content"
YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 2 * 1024 * 1024  # a rule file this large is a mistake, not a campaign
REVISION_CHARS = 16

M = TypeVar("M", bound=BaseModel)


def load_bundle(root: Path | str) -> Bundle:
    """Load and compile the bundle in ``root``; raise BundleError with every problem found."""
    root = Path(root)
    problems: list[Problem] = []
    documents: dict[str, YamlDocument] = {}
    rule_files = _read_kind(root, RULES_DIR, RulesFile, problems, documents, required=True)
    content_files = _read_kind(root, CONTENT_DIR, ContentFile, problems, documents, required=True)
    if problems:
        raise BundleError(_located(problems, documents))
    try:
        bundle = compile_bundle(rule_files, content_files, revision_of(root))
    except BundleError as exc:
        raise BundleError(_located(exc.problems, documents)) from None
    return dataclasses.replace(bundle, warnings=tuple(_located(list(bundle.warnings), documents)))


def bundle_files(root: Path) -> list[Path]:
    """Every file that makes up the bundle, in a stable order."""
    files: list[Path] = []
    for kind in (RULES_DIR, CONTENT_DIR):
        folder = root / kind
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)
    return files


def revision_of(root: Path) -> str:
    """A content hash of the bundle: the same files give the same revision on every replica."""
    digest = hashlib.sha256()
    for path in bundle_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:REVISION_CHARS]


def _read_kind(
    root: Path,
    kind: str,
    model: type[M],
    problems: list[Problem],
    documents: dict[str, YamlDocument],
    *,
    required: bool,
) -> list[tuple[str, M]]:
    folder = root / kind
    if not folder.is_dir():
        if required:
            problems.append(Problem(f"{kind}/", (), f"the bundle has no '{kind}' folder (looked in {root})"))
        return []
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)
    if not paths and required:
        problems.append(
            Problem(f"{kind}/", (), f"no .yaml files in '{kind}': an empty folder is an error, not an empty set")
        )
    parsed = []
    for path in paths:
        name = path.relative_to(root).as_posix()
        spec = _read_file(path, name, model, problems, documents)
        if spec is not None:
            parsed.append((name, spec))
    return parsed


def _read_file(
    path: Path, name: str, model: type[M], problems: list[Problem], documents: dict[str, YamlDocument]
) -> M | None:
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(name, (), f"the file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}", line=1))
        return None
    try:
        document = parse_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, (), f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", line=1))
        return None
    except YamlError as exc:
        problems.append(Problem(name, exc.path, exc.message, line=exc.line))
        return None
    documents[name] = document
    if not isinstance(document.data, dict):
        problems.append(Problem(name, (), "the file must be a mapping with a 'version' key at the top", line=1))
        return None
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        problems.extend(_schema_problems(name, document.data, exc))
        return None


def _schema_problems(file: str, data: Any, exc: ValidationError) -> list[Problem]:
    """Pydantic errors → problems at paths the file really has, one per place."""
    seen: dict[tuple[str | int, ...], Problem] = {}
    for error in exc.errors(include_url=False):
        path, rest = _split_loc(data, error["loc"])
        message = _message(error, rest)
        key = path if error["type"] != "extra_forbidden" else (*path, "\0extra")
        if key in seen and error["type"] not in ("missing", "extra_forbidden"):
            continue  # several members of a union failed at one place: the first says enough
        seen[key if key not in seen else (*key, len(seen))] = Problem(file, path, message)
    return list(seen.values())


def _split_loc(data: Any, loc: tuple[int | str, ...]) -> tuple[tuple[str | int, ...], tuple[int | str, ...]]:
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


_SPEC_MODELS: tuple[type[BaseModel], ...] = (
    spec.RulesFile, spec.Segment, spec.Condition, spec.Ref, spec.Placement, spec.Rule,
    spec.Experiment, spec.Arm, spec.Holdout, spec.ContentFile, spec.Variant,
)  # fmt: skip
_KNOWN_KEYS = sorted({f.alias or name for m in _SPEC_MODELS for name, f in m.model_fields.items()})


def _message(error: Any, rest: tuple[int | str, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return f"unknown key '{key}'{suggest(key, _KNOWN_KEYS)}"
    if kind == "missing":
        return f"missing required key '{rest[0] if rest else error['loc'][-1]}'"
    if kind == "literal_error" and error["loc"] == ("version",):
        return f"unsupported version {error['input']!r}: this Tailor reads version 1"
    if kind == "string_pattern_mismatch":
        return _pattern_message(error)
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind.endswith("_type") or kind == "model_type":
        return f"{message[:1].lower()}{message[1:]}, got {_describe(error['input'])}"
    return message


def _pattern_message(error: Any) -> str:
    pattern = str(error.get("ctx", {}).get("pattern", ""))
    value = error["input"]
    if "\\." in pattern:
        return f"'{value}' is not an attribute path: names of letters, digits, _ and - joined by dots"
    if pattern.startswith("^v?"):
        return f"'{value}' is not a semantic version such as 2.3.1 or 2.3.1-beta.1"
    return f"'{value}' is not a valid name: use letters, digits, _ and -, starting with a letter"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__.replace('str', 'text')} {value!r}"


def _located(problems: Iterable[Problem], documents: dict[str, YamlDocument]) -> list[Problem]:
    """Fill in the line of each problem from the file it points into."""
    out = []
    for problem in problems:
        document = documents.get(problem.file)
        if problem.line is None and document is not None:
            out.append(dataclasses.replace(problem, line=document.line_of(problem.path)))
        else:
            out.append(problem)
    return out
