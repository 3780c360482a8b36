"""What README.md says about the API and the bundle, checked against the code and the files."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import yaml

from service.bundle.loader import load_bundle
from service.core.decide import decide
from service.http import wire
from service.http.decisions import decision_ids
from service.http.mapping import decision_response, to_core
from service.http.problems import PROBLEM_TYPES
from service.settings import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEADINGS = {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}
COUNTER_DIGITS = 16  # decision_ids: a per-worker prefix, then a counter in hex


def _paragraph_after(start: str) -> str:
    at = README.index(start)
    return README[at : README.index("\n\n", at)]


def test_the_error_types_are_every_problem_type() -> None:
    listed = re.findall(r"`([a-z-]+)` \(\d{3}", _paragraph_after("`type` is one of"))
    assert sorted(listed) == sorted(PROBLEM_TYPES)
    for code in listed:
        status = PROBLEM_TYPES[code][0]
        assert f"`{code}` ({status}" in README


def test_every_pointer_into_the_readme_names_a_section() -> None:
    files = sorted([*ROOT.glob("rules/*.yaml"), *ROOT.glob("content/**/*.yaml"), *ROOT.glob("docs/**/*.md")])
    pointers = [
        (path.relative_to(ROOT).as_posix(), section)
        for path in files
        for section in re.findall(r'README(?:\.md)? \("([^"]+)"\)', path.read_text(encoding="utf-8"))
    ]
    assert pointers, "the example bundle points into the README"
    assert [p for p in pointers if p[1] not in HEADINGS] == []


def test_the_decision_id_example_has_the_shape_of_real_ones() -> None:
    example = re.search(r'"decision_id": "([^"]+)"', README)
    assert example is not None
    real = decision_ids()()
    for value in (example.group(1), real):
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        # the counter of a worker that has served a handful of decisions, not random digits
        assert int(value[-COUNTER_DIGITS:], 16) < 2**20


def test_make_run_takes_the_port_and_host_the_readme_shows() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "make run PORT=9000 HOST=0.0.0.0" in README
    assert "PORT ?= 8080" in makefile
    assert "HOST ?= 127.0.0.1" in makefile
    assert "--host $(HOST) --port $(PORT)" in makefile


def test_the_why_not_example_is_what_a_decision_explains() -> None:
    section = README[README.index("### Why a rule did not match") :]
    shown = json.loads(
        section[section.index("```json") + len("```json") : section.index("```", section.index("```json") + 7)]
    )
    visitor = {"id": "vip-1", "attributes": {"orders_12m": 2}, "consent": {"personalization": True}}
    request = msgspec.convert({"visitor": visitor, "placements": ["home_hero"], "explain": True}, wire.DecideRequest)
    bundle = load_bundle(ROOT)
    core = to_core(request, Settings(), lambda: datetime(2026, 11, 22, 12, tzinfo=UTC), client_time=False)
    response = decision_response(bundle, decide(bundle, core), "readme", explain=True)
    assert response.trace is not None
    assert msgspec.to_builtins(response.trace[0]) == shown
    assert '`{"orders_12m": 2}`' in section


def test_the_persona_fields_are_those_of_the_bundle_endpoint() -> None:
    listed = re.findall(r"`([a-z_]+)`", _paragraph_after("`GET /v1/bundle` lists the models"))
    fields = list(wire.PersonaInfo.__struct_fields__)
    assert [name for name in listed if name in fields or name.startswith(("share_", "median_"))] == fields


def _yaml_block(heading: str) -> dict[str, Any]:
    at = README.index(f"\n{heading}\n")
    start = README.index("```yaml\n", at) + len("```yaml\n")
    return cast(dict[str, Any], yaml.safe_load(README[start : README.index("```", start)]))


def test_the_placements_and_experiments_examples_validate(tmp_path: Path) -> None:
    """The two examples together, with the example bundle's content, models and a vip segment."""
    for part in ("content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)  # a copy: a bundle holds its own files
    (tmp_path / "rules").mkdir()
    rules = {"version": 1, "segments": {"vip": {"when": {"attr": "orders_12m", "gte": 5}}}}
    rules |= _yaml_block("### Placements") | _yaml_block("### Experiments")
    (tmp_path / "rules" / "readme.yaml").write_text(yaml.safe_dump(rules))
    bundle = load_bundle(tmp_path)
    assert set(bundle.placements) == {"home_hero"}
    assert set(bundle.experiments) == {"hero_layout_test"}


def test_the_schema_line_works_in_a_bundle_of_one_s_own(tmp_path: Path) -> None:
    """``tailor schema --out schema`` in a bundle folder, then the README's first line, from a ``.yml`` file."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    assert "`tailor schema --out schema`" in _paragraph_after("That path is relative")
    for part in ("content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)  # a copy: a bundle holds its own files
    (tmp_path / "rules").mkdir()
    for source in (ROOT / "rules").glob("*.yaml"):
        (tmp_path / "rules" / f"{source.stem}.yml").write_bytes(source.read_bytes())
    command = [sys.executable, "-m", "service.cli", "schema", "--out", "schema"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    header = re.search(r"\$schema=(\S+)", _paragraph_after("```yaml\n# yaml-language-server"))
    assert header is not None
    assert (tmp_path / "rules" / header.group(1)).resolve().is_file()
    assert load_bundle(tmp_path).placements  # the .yml files are the bundle's rules


def test_a_rule_without_a_name_is_called_by_its_place(tmp_path: Path) -> None:
    """What the README says of a rule's optional `name`."""
    assert "call it `rules[i]` by its place" in _paragraph_after("A rule targets")
    for part in ("content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "rules").mkdir()
    rules = {"version": 1, "placements": {"home_hero": {"default": "hero_default", "rules": [
        {"name": "named", "when": {"attr": "x", "eq": 1}, "serve": "hero_vip"}, {"serve": "hero_bold"}]}}}  # fmt: skip
    (tmp_path / "rules" / "r.yaml").write_text(yaml.safe_dump(rules))
    body = wire.DecideRequest(wire.Visitor("v", consent=wire.Consent(True)))
    request = to_core(body, Settings(), lambda: datetime.now(UTC), client_time=False)
    placed = decide(load_bundle(tmp_path), request).placements["home_hero"]
    assert (placed.variant, placed.rule) == ("hero_bold", "rules[1]")
