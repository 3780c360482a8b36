"""Read a bundle, validate every file, compile, and report ALL problems with file and line.

A bundle folder holds ``rules/*.yaml`` and ``content/*.yaml`` (``.yml`` too, in
subfolders too), templates under ``content/templates/`` (``.html``, ``.mjml``,
``.txt``), translations in ``content/locales/<locale>.yaml``, and optionally
``models/``: model cards (``*.yaml``) next to their ONNX files. A load reads the
folder once into a ``Snapshot`` (service/bundle/snapshot.py) and works from those
bytes only, so the revision it reports is the hash of exactly what it compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from service.bundle.schema_errors import schema_problems
from service.bundle.snapshot import (
    CONTENT_DIR,
    MODELS_DIR,
    RULES_DIR,
    TEMPLATE_SUFFIXES,
    YAML_SUFFIXES,
    Snapshot,
    bundle_files,
    read_snapshot,
)
from service.bundle.yamlfile import YamlDocument, YamlError, parse_yaml
from service.core.compile import Bundle, compile_bundle
from service.core.errors import BundleError, Problem
from service.core.models import LoadedModel, ModelCard, Scorer
from service.core.spec import ContentFile, LocaleFile, RulesFile
from service.render.blocks import TEMPLATES_DIR, TemplateFile, compile_blocks
from service.segments.onnx import ModelLoadError, OnnxScorer

__all__ = ["Bundle", "ScorerFactory", "bundle_files", "load_bundle", "load_snapshot", "revision_of"]

LOCALES_DIR = "content/locales"
MAX_FILE_BYTES = 2 * 1024 * 1024  # a rule file this large is a mistake, not a campaign

M = TypeVar("M", bound=BaseModel)


ScorerFactory = Callable[[ModelCard, bytes], Scorer]


def load_bundle(root: Path | str, open_model: ScorerFactory = OnnxScorer) -> Bundle:
    """Load and compile the bundle in ``root``; raise BundleError with every problem found."""
    return load_snapshot(read_snapshot(Path(root)), open_model)


def load_snapshot(snapshot: Snapshot, open_model: ScorerFactory = OnnxScorer) -> Bundle:
    """Compile exactly these bytes; the bundle's revision is the snapshot's."""
    problems = [Problem(name, (), why, line=1) for name, why in snapshot.unreadable.items()]
    documents: dict[str, YamlDocument] = {}
    rule_files = _read_kind(snapshot, RULES_DIR, RulesFile, problems, documents, required=True)
    content_files = _read_kind(snapshot, CONTENT_DIR, ContentFile, problems, documents, required=True, skip=LOCALES_DIR)
    locale_files = _read_kind(snapshot, LOCALES_DIR, LocaleFile, problems, documents, required=False)
    templates = _read_templates(snapshot, problems)
    cards = _read_kind(snapshot, MODELS_DIR, ModelCard, problems, documents, required=False)
    models = _open_models(snapshot, cards, open_model, problems)
    if problems:
        raise BundleError(_located(problems, documents))
    revision = snapshot.revision
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


def revision_of(root: Path) -> str:
    """The content hash of the bundle in ``root``: the same files give the same revision on every replica."""
    return read_snapshot(root).revision


def _read_templates(snapshot: Snapshot, problems: list[Problem]) -> list[TemplateFile]:
    templates = []
    for filename in snapshot.under(TEMPLATES_DIR, TEMPLATE_SUFFIXES):
        source = _text(snapshot, filename, problems)
        if source is not None:
            templates.append(TemplateFile(filename.removeprefix(f"{TEMPLATES_DIR}/"), filename, source))
    return templates


def _text(snapshot: Snapshot, name: str, problems: list[Problem]) -> str | None:
    raw = snapshot.files[name]
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(name, (), f"the file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}", line=1))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, (), f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", line=1))
        return None


def _open_models(
    snapshot: Snapshot, cards: list[tuple[str, ModelCard]], open_model: ScorerFactory, problems: list[Problem]
) -> list[LoadedModel]:
    """A scorer per card, checked against it; a model that does not match its card is a problem of the card."""
    models = []
    for name, card in cards:
        data = snapshot.files.get(PurePosixPath(MODELS_DIR, card.file).as_posix())
        if data is None:
            problems.append(Problem(name, ("file",), f"model file {PurePosixPath(card.file).name} does not exist"))
            continue
        try:
            scorer = open_model(card, data)
        except ModelLoadError as exc:
            problems.append(Problem(name, ("file",), str(exc)))
            continue
        models.append(LoadedModel(name, card, scorer))
    return models


def _read_kind(
    snapshot: Snapshot,
    kind: str,
    model: type[M],
    problems: list[Problem],
    documents: dict[str, YamlDocument],
    *,
    required: bool,
    skip: str | None = None,
) -> list[tuple[str, M]]:
    if kind not in snapshot.folders:
        if required:
            problems.append(Problem(f"{kind}/", (), f"the bundle has no '{kind}' folder"))
        return []
    names = [n for n in snapshot.under(kind, YAML_SUFFIXES) if skip is None or not n.startswith(f"{skip}/")]
    if not names and required:
        problems.append(
            Problem(f"{kind}/", (), f"no .yaml files in '{kind}': an empty folder is an error, not an empty set")
        )
    parsed = []
    for name in names:
        spec = _read_file(snapshot, name, model, problems, documents)
        if spec is not None:
            parsed.append((name, spec))
    return parsed


def _read_file(
    snapshot: Snapshot, name: str, model: type[M], problems: list[Problem], documents: dict[str, YamlDocument]
) -> M | None:
    text = _text(snapshot, name, problems)
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
