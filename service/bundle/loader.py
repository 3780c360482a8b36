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
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from service.bundle.personas import card_personas
from service.bundle.reuse import Parts, Reuse, digest
from service.bundle.schema_errors import schema_problems
from service.bundle.snapshot import (
    CONTENT_DIR,
    MODELS_DIR,
    ROOT,
    RULES_DIR,
    TEMPLATE_SUFFIXES,
    YAML_SUFFIXES,
    Snapshot,
    bundle_files,
    read_snapshot,
)
from service.bundle.yamlfile import YamlDocument, YamlError, parse_yaml
from service.core.compile import BlockCompiler, Bundle, NameKind, Unresolved, compile_bundle
from service.core.errors import BundleError, Problem
from service.core.models import LoadedModel, ModelCard, Scorer
from service.core.rendering import Blocks
from service.core.spec import ContentFile, LocaleFile, RulesFile
from service.render.blocks import TEMPLATES_DIR, TemplateFile, TemplateReuse, compile_blocks
from service.segments.onnx import ModelLoadError, OnnxScorer

__all__ = ["Bundle", "Reuse", "ScorerFactory", "bundle_files", "load_bundle", "load_snapshot", "revision_of"]

LOCALES_DIR = "content/locales"
MAX_FILE_BYTES = 2 * 1024 * 1024  # a rule file this large is a mistake, not a campaign
# What each kind of YAML file defines, by section: a file that fails leaves these names unresolved.
DEFINES: dict[str, tuple[tuple[str, NameKind], ...]] = {
    RULES_DIR: (("segments", "segment"), ("placements", "placement"), ("experiments", "experiment")),
    CONTENT_DIR: (("variants", "variant"),),
    LOCALES_DIR: (),
    MODELS_DIR: (),
}
# Messages of the template compiler that only repeat another file's failure (see _Reading.follows_failure).
TRANSLATION_FOLLOW_ONS = ("no translation '", "no locale file for the default language")

M = TypeVar("M", bound=BaseModel)


ScorerFactory = Callable[[ModelCard, bytes], Scorer]


def load_bundle(root: Path | str, open_model: ScorerFactory = OnnxScorer) -> Bundle:
    """Load and compile the bundle in ``root``; raise BundleError with every problem found."""
    return load_snapshot(read_snapshot(Path(root)), open_model)


def load_snapshot(snapshot: Snapshot, open_model: ScorerFactory = OnnxScorer, *, reuse: Reuse | None = None) -> Bundle:
    """Compile exactly these bytes; the bundle's revision is the snapshot's.

    With ``reuse``, the parts the last successful load with it built from the same bytes are taken
    as they are (service/bundle/reuse.py), and this load's parts are kept when it succeeds.

    Every stage that can still run does: the files that parsed are compiled even when others did
    not, so one pass reports every problem. References to names a failed file may define are not
    reported (its own error says what is wrong), and neither are template messages that only
    repeat a failed content, locale or template file.
    """
    if ROOT in snapshot.unreadable:
        raise BundleError([Problem(ROOT, (), snapshot.unreadable[ROOT])])
    reading = _Reading(snapshot, reuse or Reuse())
    rule_files = reading.kind(RULES_DIR, RulesFile, required=True)
    content_files = reading.kind(CONTENT_DIR, ContentFile, required=True, skip=LOCALES_DIR)
    locale_files = reading.kind(LOCALES_DIR, LocaleFile, required=False)
    templates = reading.templates()
    models = reading.models(reading.kind(MODELS_DIR, ModelCard, required=False), open_model)
    blocks = reading.block_compiler(content_files, locale_files, templates)
    try:
        bundle = compile_bundle(
            rule_files,
            content_files,
            snapshot.revision,
            models,
            blocks=blocks,
            unresolved=reading.unresolved(),
            locate=reading.line_of,
        )
    except BundleError as exc:
        raise BundleError(reading.located([*reading.problems, *exc.problems])) from None
    if reading.problems:
        raise BundleError(reading.located(reading.problems))
    reading.reuse.keep(reading.used)
    return dataclasses.replace(bundle, warnings=tuple(reading.located(bundle.warnings)))


def revision_of(root: Path) -> str:
    """The content hash of the bundle in ``root``: the same files give the same revision on every replica."""
    return read_snapshot(root).revision


@dataclass
class _Reading:
    """One load's parsing: the problems found, the documents (for lines), and what failed files leave open."""

    snapshot: Snapshot
    reuse: Reuse
    used: Parts = field(default_factory=Parts)  # what this load built or took: kept for the next if it succeeds
    problems: list[Problem] = field(default_factory=list)
    documents: dict[str, YamlDocument] = field(default_factory=dict)
    names: dict[NameKind, set[str]] = field(default_factory=dict)
    any_of: set[NameKind] = field(default_factory=set)
    translations_failed: bool = False  # a content or locale file failed: the languages known are incomplete
    failed_templates: set[str] = field(default_factory=set)
    cards: list[ModelCard] = field(default_factory=list)  # the model cards that parsed

    def __post_init__(self) -> None:
        for name, why in self.snapshot.unreadable.items():
            self.problems.append(Problem(name, (), why, line=1))
            self.failed(name, None)

    def unresolved(self) -> Unresolved:
        names = {kind: frozenset(names) for kind, names in self.names.items()}
        return Unresolved(names, frozenset(self.any_of), self._cardless_models())

    def _cardless_models(self) -> dict[tuple[NameKind, str], str]:
        """Model files no card names: a rule that names one by its file's stem is missing the card."""
        named = {PurePosixPath(MODELS_DIR, card.file).as_posix() for card in self.cards}
        return {
            ("model", PurePosixPath(file).stem): f"{file} is there, but no model card names it (a {MODELS_DIR}/*.yaml"
            " with its name, file, inputs and outputs)"
            for file in self.snapshot.under(MODELS_DIR, (".onnx",))
            if file not in named
        }

    def line_of(self, file: str, path: tuple[str | int, ...]) -> int | None:
        """The line of ``path`` in the YAML file ``file``, for the compiler's why-not locations."""
        document = self.documents.get(file)
        return None if document is None else document.line_of(path)

    def located(self, problems: Iterable[Problem]) -> list[Problem]:
        """Fill in the line of each problem from the file it points into."""
        out = []
        for problem in problems:
            document = self.documents.get(problem.file)
            if problem.line is None and document is not None:
                out.append(dataclasses.replace(problem, line=document.line_of(problem.path)))
            else:
                out.append(problem)
        return out

    def failed(self, name: str, data: object) -> None:
        """Note what the file ``name`` would have defined; ``data`` is its YAML if that much parsed."""
        if name.startswith(f"{TEMPLATES_DIR}/") and not name.endswith(YAML_SUFFIXES):
            self.failed_templates.add(name.removeprefix(f"{TEMPLATES_DIR}/"))
            return
        kind = _kind_of(name)
        if kind in (CONTENT_DIR, LOCALES_DIR):
            self.translations_failed = True
        if kind == MODELS_DIR:
            model = data.get("name") if isinstance(data, dict) else None
            self._defines("model", [model] if isinstance(model, str) else None)
        for section, defined in DEFINES.get(kind, ()):
            names = _section(data, section)
            self._defines(defined, names if isinstance(names, dict) else None)

    def _defines(self, kind: NameKind, names: Iterable[object] | None) -> None:
        if names is None:
            self.any_of.add(kind)
        else:
            self.names.setdefault(kind, set()).update(str(name) for name in names)

    def kind(self, kind: str, model: type[M], *, required: bool, skip: str | None = None) -> list[tuple[str, M]]:
        if kind not in self.snapshot.folders:
            if required:
                self.problems.append(Problem(f"{kind}/", (), f"the bundle has no '{kind}' folder"))
                self._all_missing(kind)
            return []
        names = [n for n in self.snapshot.under(kind, YAML_SUFFIXES) if skip is None or not n.startswith(f"{skip}/")]
        if not names and required:
            self.problems.append(
                Problem(f"{kind}/", (), f"no .yaml files in '{kind}': an empty folder is an error, not an empty set")
            )
            self._all_missing(kind)
        parsed = []
        for name in names:
            spec = self._file(name, model)
            if spec is not None:
                parsed.append((name, spec))
        return parsed

    def _all_missing(self, kind: str) -> None:
        for _, defined in DEFINES[kind]:
            self.any_of.add(defined)
        self.translations_failed |= kind == CONTENT_DIR

    def _file(self, name: str, model: type[M]) -> M | None:
        key = digest(model.__name__, name, self.snapshot.files[name])
        kept = self.reuse.kept.files.get(key)
        if kept is not None and isinstance(kept[1], model):
            self.documents[name] = kept[0]
            self.used.files[key] = kept
            return kept[1]
        spec = self._parse_file(name, model)
        if spec is not None:
            self.used.files[key] = (self.documents[name], spec)
        return spec

    def _parse_file(self, name: str, model: type[M]) -> M | None:
        text = self.text(name)
        if text is None:
            return None
        try:
            document = parse_yaml(text)
        except YamlError as exc:
            self.problems.append(Problem(name, exc.path, exc.message, line=exc.line))
            self.failed(name, None)
            return None
        self.documents[name] = document
        if not isinstance(document.data, dict):
            self.problems.append(
                Problem(name, (), "the file must be a mapping with a 'version' key at the top", line=1)
            )
            self.failed(name, None)
            return None
        try:
            return model.model_validate(document.data)
        except ValidationError as exc:
            self.problems.extend(schema_problems(name, model, document.data, exc))
            self.failed(name, document.data)
            return None

    def text(self, name: str) -> str | None:
        raw = self.snapshot.files[name]
        problem = None
        if len(raw) > MAX_FILE_BYTES:
            problem = f"the file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}"
        else:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        self.problems.append(Problem(name, (), problem, line=1))
        self.failed(name, None)
        return None

    def templates(self) -> list[TemplateFile]:
        templates = []
        for filename in self.snapshot.under(TEMPLATES_DIR, TEMPLATE_SUFFIXES):
            source = self.text(filename)
            if source is not None:
                templates.append(TemplateFile(filename.removeprefix(f"{TEMPLATES_DIR}/"), filename, source))
        return templates

    def models(self, cards: list[tuple[str, ModelCard]], open_model: ScorerFactory) -> list[LoadedModel]:
        """A scorer per card, checked against it; a model that does not match its card is a problem of the card."""
        models = []
        self.cards.extend(card for _, card in cards)
        for name, card in cards:
            personas, problems = card_personas(name, card)
            self.problems.extend(problems)
            data = self.snapshot.files.get(PurePosixPath(MODELS_DIR, card.file).as_posix())
            try:
                if data is None:
                    raise ModelLoadError(f"model file {PurePosixPath(card.file).name} does not exist")
                models.append(LoadedModel(name, card, self._scorer(name, card, data, open_model), personas))
            except ModelLoadError as exc:
                self.problems.append(Problem(name, ("file",), str(exc)))
                self._defines("model", [card.name])
        return models

    def _scorer(self, name: str, card: ModelCard, data: bytes, open_model: ScorerFactory) -> Scorer:
        """The scorer of the last good load for the same card and model bytes (a session runs from any thread)."""
        key = digest(name, self.snapshot.files[name], data)
        scorer = self.reuse.kept.models.get(key)
        if scorer is None:
            scorer = open_model(card, data)
        self.used.models[key] = scorer
        return scorer

    def block_compiler(
        self,
        content_files: list[tuple[str, ContentFile]],
        locale_files: list[tuple[str, LocaleFile]],
        templates: list[TemplateFile],
    ) -> BlockCompiler:
        # Blocks compiled from the same content, locale and template files render the same: the
        # revision they carry only names their entries in the render cache, which stay right.
        files = [name for name, _ in (*content_files, *locale_files)] + [t.filename for t in templates]
        key = digest(*(part for name in files for part in (name, self.snapshot.files[name])))

        def compile_templates(revision: str) -> Blocks:
            blocks = self.reuse.kept.blocks.get(key)
            templates_used = TemplateReuse(self.reuse.kept.templates, self.used.templates)
            if blocks is not None:
                templates_used.used.parsed.update(templates_used.kept.parsed)  # the same templates, all taken
                templates_used.used.code.update(templates_used.kept.code)
            try:
                blocks = blocks or compile_blocks(
                    revision, content_files, locale_files, templates, reuse=templates_used
                )
            except BundleError as exc:
                raise BundleError([p for p in exc.problems if not self.follows_failure(p)]) from None
            self.used.blocks[key] = blocks
            return blocks

        return compile_templates

    def follows_failure(self, problem: Problem) -> bool:
        """A template message that only repeats the failure of a file reported already."""
        if self.translations_failed and problem.message.startswith(TRANSLATION_FOLLOW_ONS):
            return True
        return any(problem.message.startswith(f"unknown template '{name}'") for name in self.failed_templates)


def _section(data: object, section: str) -> object:
    """A failed file's section of names; None (any name) when its key is misspelt (``segment:``), else empty."""
    if not isinstance(data, dict):
        return None
    if section in data:
        return data[section]
    misspelt = difflib.get_close_matches(section, [str(key) for key in data], n=1, cutoff=0.75)
    return None if misspelt else {}


def _kind_of(name: str) -> str:
    if name.startswith(f"{LOCALES_DIR}/"):
        return LOCALES_DIR
    return name.split("/", 1)[0]
