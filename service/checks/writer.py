"""Write a check file (``checks/**/*.yaml``) that expects what a decision showed.

The preview page's "save as check" sends what it shows: the visitor, the context, and per
placement the variant, reason, rule, experiment arm and whether a block rendered. The file
written here is one test of the format in ``spec.py``, checked against that format before it
is handed out, and read back by the same reader as ``tailor test`` to be sure it means what
was shown: PyYAML writes YAML 1.1, while check files are read by the YAML 1.2 core schema,
where a plain ``1e5`` is a number, not text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from service.bundle import yamlfile
from service.bundle.yamlfile import parse_yaml
from service.checks.spec import CHECK_VERSION, ChecksFile

SCHEMA_COMMENT = "# yaml-language-server: $schema=../schema/checks.v1.schema.json"
LINE_WIDTH = 100


@dataclass(frozen=True, slots=True)
class Shown:
    """One placement as the preview showed it."""

    reason: str
    variant: str | None = None
    rule: str | None = None
    experiment: tuple[str, str] | None = None  # (experiment key, arm)
    rendered: bool | None = None  # True: the template rendered; False: its fallback was served; None: no template


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes text the check files' reader (YAML 1.2 core) would read as something else."""


# Every plain scalar the reader resolves (its own resolvers), on top of YAML 1.1's, is quoted when it is text.
for _first, _resolvers in yamlfile._Loader.yaml_implicit_resolvers.items():
    for _tag, _pattern in _resolvers:
        _Dumper.add_implicit_resolver(_tag, _pattern, None if _first is None else [_first])

_LINE_BREAKS = frozenset("\x85\u2028\u2029")  # YAML line breaks that single quotes would fold: escape them


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _LINE_BREAKS.intersection(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def check_yaml(
    name: str,
    visitor: Mapping[str, Any],
    context: Mapping[str, Any],
    placements: Mapping[str, Shown],
    segments: Sequence[str],
    *,
    note: str = "",
) -> str:
    """A check file with one test named ``name`` that expects ``placements`` and ``segments``."""
    test: dict[str, Any] = {"name": name, "visitor": dict(visitor)}
    if context:
        test["context"] = dict(context)
    test["expect"] = _expect(placements, segments)
    data = {"version": CHECK_VERSION, "tests": [test]}
    ChecksFile.model_validate(data)  # what is handed out is a check file, or this is a bug
    body = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=LINE_WIDTH, allow_unicode=True
    )
    if parse_yaml(body).data != data:
        raise ValueError("the check file does not read back as written")  # a bug of this writer, not the input's
    comments = [SCHEMA_COMMENT, *(f"# {line}" for line in note.splitlines())]
    return "\n".join(comments) + "\n" + body


def _expect(placements: Mapping[str, Shown], segments: Sequence[str]) -> dict[str, Any]:
    expect: dict[str, Any] = {name: _placement(shown) for name, shown in placements.items()}
    arms = {s.experiment[0]: s.experiment[1] for s in placements.values() if s.experiment is not None}
    if arms:
        expect["experiments"] = arms
    if segments:
        expect["segments"] = {"includes": sorted(segments)}
    return expect


def _placement(shown: Shown) -> dict[str, Any]:
    expected: dict[str, Any] = {"variant": shown.variant, "reason": shown.reason, "rule": shown.rule}
    if shown.rendered is not None:
        expected["html"] = shown.rendered
    return {key: value for key, value in expected.items() if value is not None}
