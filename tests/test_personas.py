"""Personas of a model card: read and checked with the bundle, carried by the compiled model.

The figures are compared with the card as PyYAML reads it, not as the loader does; the broken
sections are a corpus (tests/bundles/personas/malformed.yaml) with every problem each one gets.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.loader import load_bundle
from service.bundle.personas import card_personas
from service.core.errors import BundleError
from service.core.models import ModelCard
from service.core.personas import Persona
from service.http import wire
from service.simulate.report import PersonaRow

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CORPUS = yaml.safe_load((TESTS / "bundles" / "personas" / "malformed.yaml").read_text(encoding="utf-8"))["cases"]
FIGURES = (
    "customers", "share_of_customers", "share_of_spend", "median_recency_days", "median_orders", "median_spend",
    "median_tenure_days", "churn_rate",
)  # fmt: skip
SHARES = ("share_of_customers", "share_of_spend", "churn_rate")
# The block under metrics: its key line and every line indented deeper than it.
BLOCK = re.compile(r"^  personas:.*\n(?:(?:    .*)?\n)*", re.MULTILINE)


def _card_data(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text(encoding="utf-8"))
    return data


def _example_bundle(tmp_path: Path) -> Path:
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def _lay_over(card: Path, personas: str) -> int:
    """Put ``personas`` (a YAML block at the left margin) into the card's metrics; the line it starts on."""
    text = card.read_text(encoding="utf-8")
    block = "".join(f"  {line}\n" if line else "\n" for line in personas.rstrip("\n").split("\n"))
    found = BLOCK.search(text)
    start = found.start() if found else text.index("\nmetrics:\n") + len("\nmetrics:\n")
    end = found.end() if found else start
    card.write_text(text[:start] + block + text[end:], encoding="utf-8")
    return text[:start].count("\n") + 1


def test_the_example_bundle_carries_the_cards_personas_in_its_order() -> None:
    bundle = load_bundle(ROOT)
    written = _card_data("rfm")["metrics"]["personas"]
    rfm = bundle.models["rfm"]
    assert list(rfm.personas) == list(written)
    assert set(rfm.personas) == set(rfm.card.output.labels.values())  # type: ignore[union-attr]
    for name, persona in rfm.personas.items():
        assert persona.model_dump() == {key: written[name][key] for key in (*FIGURES, "description")}
    assert all(not m.personas for name, m in bundle.models.items() if name != "rfm")


def test_a_card_without_personas_is_valid_and_has_none(tmp_path: Path) -> None:
    bundle = _example_bundle(tmp_path)
    card = bundle / "models" / "rfm.yaml"
    text = card.read_text(encoding="utf-8")
    card.write_text(BLOCK.sub("", text), encoding="utf-8")
    assert "personas" not in card.read_text(encoding="utf-8")
    assert load_bundle(bundle).models["rfm"].personas == {}
    assert load_bundle(TESTS / "checks" / "bundle").models["rfm"].personas == {}  # a card from before personas


def test_an_empty_persona_section_is_no_personas(tmp_path: Path) -> None:
    bundle = _example_bundle(tmp_path)
    _lay_over(bundle / "models" / "rfm.yaml", "personas: {}")
    assert load_bundle(bundle).models["rfm"].personas == {}


def test_figures_a_later_training_adds_are_ignored(tmp_path: Path) -> None:
    bundle = _example_bundle(tmp_path)
    card = bundle / "models" / "rfm.yaml"
    card.write_text(card.read_text().replace("      churn_rate:", "      churn_rate_90d: 0.5\n      churn_rate:"))
    assert list(load_bundle(bundle).models["rfm"].personas) == list(_card_data("rfm")["metrics"]["personas"])


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_a_malformed_persona_section_is_reported_with_file_line_and_field(case: dict[str, Any], tmp_path: Path) -> None:
    bundle = _example_bundle(tmp_path)
    name = case.get("card", "rfm")
    start = _lay_over(bundle / "models" / f"{name}.yaml", case["personas"])
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle)
    expected = [f"models/{name}.yaml:{start + p['at'] - 1}: {p['message']}" for p in case["problems"]]
    assert [p.render() for p in caught.value.problems] == expected


def _persona() -> st.SearchStrategy[dict[str, Any]]:
    share = st.floats(0, 1)
    figure = st.floats(0, 1e6)
    return st.fixed_dictionaries(
        {
            "customers": st.integers(0, 10**7),
            **{key: share if key in SHARES else figure for key in FIGURES[1:]},
            "description": st.text(min_size=1, max_size=40),
        }
    )


def _rfm_card(personas: object) -> ModelCard:
    data = _card_data("rfm")
    data["metrics"]["personas"] = personas
    return ModelCard.model_validate(data)


LABELS = ("one_time", "loyal", "lapsed", "champions")


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(LABELS), _persona(), max_size=4))
def test_any_figures_in_range_are_kept_exactly(personas: dict[str, dict[str, Any]]) -> None:
    kept, problems = card_personas("models/rfm.yaml", _rfm_card(personas))
    assert problems == []
    assert {name: p.model_dump() for name, p in kept.items()} == personas
    assert list(kept) == list(personas)


BAD_VALUES = st.one_of(
    st.floats(max_value=-1e-9), st.floats(min_value=1e7 + 1), st.just(float("nan")), st.text(max_size=5),
    st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(_persona(), st.sampled_from(LABELS), st.sampled_from(FIGURES), BAD_VALUES)
def test_one_bad_figure_is_one_problem_at_its_path(persona: dict[str, Any], label: str, key: str, bad: Any) -> None:
    """Negative, too large for a share, not finite, not a number: the problem names the card and the figure."""
    if key not in SHARES and isinstance(bad, float) and bad > 0:
        bad = -bad  # only shares have an upper bound
    kept, problems = card_personas("models/rfm.yaml", _rfm_card({label: {**persona, key: bad}}))
    assert kept == {}
    assert [(p.file, p.path) for p in problems] == [("models/rfm.yaml", ("metrics", "personas", label, key))]


def test_the_adrs_example_message_is_the_loaders(tmp_path: Path) -> None:
    adr = (ROOT / "docs" / "adr" / "0012-personas-on-the-bundle-endpoint.md").read_text(encoding="utf-8")
    example = re.search(r"`(models/rfm\.yaml:<line>: metrics\.personas\.loyal\.churn_rate: [^`]+)`", adr)
    assert example is not None
    bundle = _example_bundle(tmp_path)
    card = bundle / "models" / "rfm.yaml"
    lines = card.read_text(encoding="utf-8").split("\n")
    loyal = lines.index("    loyal:", lines.index("  personas:"))
    at = next(i for i in range(loyal, len(lines)) if lines[i].startswith("      churn_rate: "))
    lines[at] = "      churn_rate: 1.5"
    card.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle)
    assert [p.render() for p in caught.value.problems] == [example.group(1).replace("<line>", str(at + 1))]


def _wire_bounds() -> dict[str, tuple[object, object]]:
    info = msgspec.inspect.type_info(wire.PersonaInfo)
    assert isinstance(info, msgspec.inspect.StructType)
    bounds = {}
    for f in info.fields:
        kind = f.type.type if isinstance(f.type, msgspec.inspect.Metadata) else f.type  # a description wraps it
        bounds[f.name] = (getattr(kind, "ge", None), getattr(kind, "le", None))
    del bounds["name"]
    return bounds


def _core_bounds() -> dict[str, tuple[object, object]]:
    bounds = {}
    for name, field in Persona.model_fields.items():
        found = {key: getattr(m, key) for m in field.metadata for key in ("ge", "le") if hasattr(m, key)}
        bounds[name] = (found.get("ge"), found.get("le"))
    return bounds


def test_the_wire_and_the_simulate_report_carry_the_cards_figures_with_its_bounds() -> None:
    """Three declarations of one persona (the card's, the API's and simulate's): a drift shows here."""
    assert _wire_bounds() == _core_bounds()
    assert set(PersonaRow.__struct_fields__) == set(Persona.model_fields)
    assert set(wire.PersonaInfo.__struct_fields__) == {"name", *Persona.model_fields}
