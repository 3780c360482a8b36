"""The committed JSON Schemas match the models, and the example files point editors at them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import schema_texts

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("name", sorted(schema_texts()))
def test_committed_schema_is_generated_from_the_models(name: str) -> None:
    committed = (ROOT / "schema" / name).read_text(encoding="utf-8")
    assert committed == schema_texts()[name], "run `make schema` and commit the result"


def test_schema_rejects_unknown_keys_for_editors() -> None:
    rules = json.loads(schema_texts()["rules.v1.schema.json"])
    assert rules["additionalProperties"] is False
    assert rules["$defs"]["Condition"]["additionalProperties"] is False
    assert {"all", "any", "not", "in", "within", "older_than"} <= set(rules["$defs"]["Condition"]["properties"])


@pytest.mark.parametrize("path", sorted([*ROOT.glob("rules/*.yaml"), *ROOT.glob("content/*.yaml")]), ids=str)
def test_example_files_declare_their_schema(path: Path) -> None:
    kind = path.parent.name
    assert path.read_text().startswith(f"# yaml-language-server: $schema=../schema/{kind}.v1.schema.json\n")
