"""Find, read and check the check files of a bundle: every problem in one pass, with file:line.

A check file is wrong when it is not the format (``spec.ChecksFile``), when its visitor or
context is not what ``POST /v1/decide`` accepts, or when it names a placement, variant,
segment, experiment, arm or model the bundle does not have: a misspelt name in a test
would otherwise make a test that can never fail (an ``excludes: [vipp]``) or never pass.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from pydantic import ValidationError

from service.bundle.schema_errors import schema_problems
from service.bundle.snapshot import YAML_SUFFIXES
from service.bundle.yamlfile import YamlDocument, YamlError, parse_yaml
from service.checks.spec import RESERVED, ChecksFile, CheckTest, PlacementExpect
from service.core.compile import Bundle, suggest
from service.core.errors import Problem, RequestError
from service.http import wire
from service.http.hints import path_steps, unknown_field_hint
from service.http.mapping import to_core
from service.settings import Settings

CHECKS_DIR = "checks"
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
# Pydantic names its own classes where a file needs a mapping; marketers never see those names.
_MAPPING = re.compile(r"input should be a valid dictionary(?: or instance of \w+)?")

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """One test of a check file, decoded and ready to run."""

    file: str  # as shown in messages
    index: int
    spec: CheckTest
    visitor: wire.Visitor
    context: wire.Context
    lines: Mapping[YamlPath, int] = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def line_of(self, *path: str | int) -> int:
        """The line of ``expect.<path>`` (or of the nearest part of it the file has)."""
        full: YamlPath = ("tests", self.index, "expect", *path)
        for end in range(len(full), 0, -1):
            if full[:end] in self.lines:
                return self.lines[full[:end]]
        return 1


def check_files(root: Path) -> list[Path]:
    """Every check file of the bundle in ``root``, in a stable order."""
    folder = root / CHECKS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)


def read_checks(paths: Iterable[tuple[Path, str]], bundle: Bundle) -> tuple[list[Check], list[Problem]]:
    """The checks of every file (path, shown name), and every problem found in them."""
    checks: list[Check] = []
    problems: list[Problem] = []
    for path, shown in paths:
        found, located = _read_one(path, shown, bundle)
        checks += found
        problems += located
    return checks, problems


def _read_one(path: Path, shown: str, bundle: Bundle) -> tuple[list[Check], list[Problem]]:
    try:
        document = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(shown, (), f"cannot read the file: {exc}", line=1)]
    except YamlError as exc:
        return [], [Problem(shown, exc.path, exc.message, line=exc.line or 1)]
    problems: list[Problem] = []
    checks = _decoded(document, shown, bundle, problems)
    return checks, [_with_line(p, document) for p in problems]


def _decoded(document: YamlDocument, shown: str, bundle: Bundle, problems: list[Problem]) -> list[Check]:
    if not isinstance(document.data, dict):
        problems.append(Problem(shown, (), "the file must be a mapping with a 'version' key at the top"))
        return []
    try:
        spec = ChecksFile.model_validate(document.data)
    except ValidationError as exc:
        problems += [
            dataclasses.replace(p, message=_MAPPING.sub("expected a mapping", p.message))
            for p in schema_problems(shown, ChecksFile, document.data, exc)
        ]
        return []
    checks = []
    seen: dict[str, int] = {}
    for index, test in enumerate(spec.tests):
        if test.name in seen:
            problems.append(Problem(shown, ("tests", index, "name"), f"test '{test.name}' is already named above"))
        seen.setdefault(test.name, index)
        parts = [_wire(shown, ("tests", index, key), getattr(test, key), kind, problems) for key, kind in _PARTS]
        before = len(problems)
        problems += _name_problems(shown, ("tests", index), test, bundle)
        if len(problems) == before and all(part is not None for part in parts):
            visitor, context = parts
            assert isinstance(visitor, wire.Visitor)
            assert isinstance(context, wire.Context)
            if (limit := _over_limits(shown, ("tests", index), visitor, context)) is not None:
                problems.append(limit)
                continue
            checks.append(Check(shown, index, test, visitor, context, document.lines))
    return checks


LIMITS = Settings()  # the API's default request limits: a test must be a request the API would take


def _over_limits(shown: str, where: YamlPath, visitor: wire.Visitor, context: wire.Context) -> Problem | None:
    """The first request limit the test's visitor or context breaks (too deep, too long ...), placed in the file."""
    try:
        to_core(wire.DecideRequest(visitor, context=context), LIMITS, lambda: datetime.now(UTC), client_time=True)
    except RequestError as exc:
        return Problem(shown, (*where, *path_steps(exc.where.removeprefix("$"))), exc.message)
    return None


_PARTS: tuple[tuple[str, type[msgspec.Struct]], ...] = (("visitor", wire.Visitor), ("context", wire.Context))


def _wire(
    shown: str, where: YamlPath, data: dict[str, Any], kind: type[msgspec.Struct], problems: list[Problem]
) -> msgspec.Struct | None:
    """Decode the way the API decodes a request body, and place its error in the file."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT.search(message)
        path = match.group("path") if match else ""
        text = _AT.sub("", message)
        hint = unknown_field_hint(kind, "$" + path, text) or _hint(text)
        inner = path_steps(path)
        field = _UNKNOWN_FIELD.search(text)
        if field is not None:  # the key's own line, not its object's
            inner = (*inner, field.group(1))
        problems.append(Problem(shown, (*where, *inner), text + hint))
        return None


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_HINTS = {
    "Invalid RFC3339 encoded datetime": "; write a time with its zone, e.g. 2026-12-01T12:00:00Z",
    "Expected `bool`, got `str`": "; write true or false (yes, no, on and off are text in YAML 1.2)",
}


def _hint(text: str) -> str:
    return next((hint for start, hint in _HINTS.items() if text.startswith(start)), "")


def _name_problems(shown: str, where: YamlPath, test: CheckTest, bundle: Bundle) -> list[Problem]:
    problems: list[Problem] = []

    def unknown(path: YamlPath, name: str, known: Iterable[str], kind: str) -> None:
        known = list(known)
        if name not in known:
            problems.append(Problem(shown, (*where, *path), f"unknown {kind} '{name}'{suggest(name, known)}"))

    for model, score in test.models.items():
        unknown(("models", model), model, bundle.models, "model")
        if model in bundle.models:
            problems += _score_problems(shown, (*where, "models", model), bundle, model, score)
    expect = test.expect
    for placement, wanted in (expect.__pydantic_extra__ or {}).items():
        unknown(("expect", placement), placement, [*bundle.placements, *RESERVED], "placement")
        if wanted.variant is not None:
            unknown(("expect", placement, "variant"), wanted.variant, bundle.variants, "variant")
    if expect.segments is not None:
        for key in ("includes", "excludes"):
            for i, name in enumerate(getattr(expect.segments, key)):
                unknown(("expect", "segments", key, i), name, bundle.segments, "segment")
    for experiment, arm in (expect.experiments or {}).items():
        unknown(("expect", "experiments", experiment), experiment, bundle.experiments, "experiment")
        if experiment in bundle.experiments:
            arms = [a.key for a in bundle.experiments[experiment].arms]
            if arm not in arms:
                message = f"experiment '{experiment}' has no arm '{arm}'{suggest(arm, arms)}"
                problems.append(Problem(shown, (*where, "expect", "experiments", experiment), message))
    return problems


def _score_problems(shown: str, path: YamlPath, bundle: Bundle, model: str, score: object) -> list[Problem]:
    """A stand-in score has the kind of the model's output: a label it has, or a number."""
    output = bundle.models[model].card.output
    if output.kind == "label":
        labels = sorted((output.labels or {}).values())
        if not isinstance(score, str):
            return [Problem(shown, path, f"model '{model}' gives a label: stand in one of {', '.join(labels)}")]
        if score not in labels:
            return [Problem(shown, path, f"model '{model}' has no label '{score}'{suggest(score, labels)}")]
        return []
    if isinstance(score, str):
        return [Problem(shown, path, f"model '{model}' gives a {output.kind}: stand in a number")]
    return []


def _with_line(problem: Problem, document: YamlDocument) -> Problem:
    if problem.line is not None:
        return problem
    return Problem(problem.file, problem.path, problem.message, document.line_of(problem.path) or 1, problem.severity)


def placement_expectations(check: Check) -> Sequence[tuple[str, PlacementExpect]]:
    """The placements a test names, with what each must get."""
    return list((check.spec.expect.__pydantic_extra__ or {}).items())
