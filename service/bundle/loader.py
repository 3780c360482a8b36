"""Read a bundle folder, validate every file, compile, and report ALL problems with file and line.

A bundle folder holds ``rules/*.yaml`` and ``content/*.yaml`` (``.yml`` too, in
subfolders too), templates under ``content/templates/`` (``.html``, ``.mjml``,
``.txt``), translations in ``content/locales/<locale>.yaml``, and optionally
``models/``: model cards (``*.yaml``) next to their ONNX files. Its revision is a
hash of every file's path and bytes, so two replicas with the same files report
the same revision.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from service.bundle.schema_errors import schema_problems
from service.bundle.yamlfile import YamlDocument, YamlError, parse_yaml
from service.core.compile import Bundle, compile_bundle
from service.core.errors import BundleError, Problem
from service.core.models import LoadedModel, ModelCard, Scorer
from service.core.spec import ContentFile, LocaleFile, RulesFile
from service.render.blocks import TEMPLATES_DIR, TemplateFile, compile_blocks
from service.segments.onnx import ModelLoadError, OnnxScorer

RULES_DIR = "rules"
CONTENT_DIR = "content"
MODELS_DIR = "models"
LOCALES_DIR = "content/locales"
TEMPLATE_SUFFIXES = (".html", ".mjml", ".txt")
MODEL_SUFFIXES = (".onnx",)
YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 2 * 1024 * 1024  # a rule file this large is a mistake, not a campaign
REVISION_CHARS = 16

M = TypeVar("M", bound=BaseModel)


ScorerFactory = Callable[[ModelCard, Path], Scorer]


def load_bundle(root: Path | str, open_model: ScorerFactory = OnnxScorer) -> Bundle:
    """Load and compile the bundle in ``root``; raise BundleError with every problem found."""
    root = Path(root)
    problems: list[Problem] = []
    documents: dict[str, YamlDocument] = {}
    rule_files = _read_kind(root, RULES_DIR, RulesFile, problems, documents, required=True)
    content_files = _read_kind(root, CONTENT_DIR, ContentFile, problems, documents, required=True, skip=LOCALES_DIR)
    locale_files = _read_kind(root, LOCALES_DIR, LocaleFile, problems, documents, required=False)
    templates = _read_templates(root, problems)
    cards = _read_kind(root, MODELS_DIR, ModelCard, problems, documents, required=False)
    models = _open_models(root, cards, open_model, problems)
    if problems:
        raise BundleError(_located(problems, documents))
    revision = revision_of(root)
    try:
        bundle = compile_bundle(rule_files, content_files, revision, models)
    except BundleError as exc:
        problems = list(exc.problems)
        bundle = None
    try:
        blocks = compile_blocks(revision, content_files, locale_files, templates)
    except BundleError as exc:  # reported together with the rules' problems, in one pass
        problems += exc.problems
    if problems or bundle is None:
        raise BundleError(_located(problems, documents))
    return dataclasses.replace(bundle, warnings=tuple(_located(list(bundle.warnings), documents)), blocks=blocks)


def _read_templates(root: Path, problems: list[Problem]) -> list[TemplateFile]:
    folder = root / TEMPLATES_DIR
    if not folder.is_dir():
        return []
    templates = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in TEMPLATE_SUFFIXES):
        filename = path.relative_to(root).as_posix()
        source = _read_text(path, filename, problems)
        if source is not None:
            templates.append(TemplateFile(path.relative_to(folder).as_posix(), filename, source))
    return templates


def _read_text(path: Path, name: str, problems: list[Problem]) -> str | None:
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(name, (), f"the file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}", line=1))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, (), f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", line=1))
        return None


def _open_models(
    root: Path, cards: list[tuple[str, ModelCard]], open_model: ScorerFactory, problems: list[Problem]
) -> list[LoadedModel]:
    """A scorer per card, checked against it; a model that does not match its card is a problem of the card."""
    models = []
    for name, card in cards:
        try:
            scorer = open_model(card, root / MODELS_DIR / card.file)
        except ModelLoadError as exc:
            problems.append(Problem(name, ("file",), str(exc)))
            continue
        models.append(LoadedModel(name, card, scorer))
    return models


def bundle_files(root: Path) -> list[Path]:
    """Every file that makes up the bundle, in a stable order."""
    files: list[Path] = []
    for kind, suffixes in (
        (RULES_DIR, YAML_SUFFIXES),
        (CONTENT_DIR, (*YAML_SUFFIXES, *TEMPLATE_SUFFIXES)),
        (MODELS_DIR, (*YAML_SUFFIXES, *MODEL_SUFFIXES)),
    ):
        folder = root / kind
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes)
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
    skip: str | None = None,
) -> list[tuple[str, M]]:
    folder = root / kind
    if not folder.is_dir():
        if required:
            problems.append(Problem(f"{kind}/", (), f"the bundle has no '{kind}' folder (looked in {root})"))
        return []
    skipped = None if skip is None else root / skip
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in YAML_SUFFIXES and (skipped is None or not p.is_relative_to(skipped))
    )
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
    text = _read_text(path, name, problems)
    if text is None:
        return None
    try:
        document = parse_yaml(text)
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
        problems.extend(schema_problems(name, model, document.data, exc))
        return None


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
