"""The personas of a model card (``metrics.personas``), checked when the bundle loads.

A card without personas is valid: only a cluster model's card has them, and a card written
before training wrote them still serves. When they are there, each is under a label of the
model's output and holds every figure (``service/core/personas.py``); a problem names the card
and the figure, such as ``models/rfm.yaml:<line>: metrics.personas.loyal.churn_rate: must
be at most 1, got 1.5``. A card whose personas are wrong still defines its model, so the rules that
use the model get no follow-on errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from service.bundle.schema_errors import schema_problems
from service.core.compile import suggest
from service.core.errors import Problem
from service.core.models import ModelCard
from service.core.personas import Persona

SECTION = ("metrics", "personas")


class _Metrics(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the rest of metrics is the training's free-form record

    personas: dict[str, Persona]


class _Card(BaseModel):
    """A card as far as its personas go, so that problems carry the path the card really has."""

    model_config = ConfigDict(extra="ignore")

    metrics: _Metrics


def card_personas(file: str, card: ModelCard) -> tuple[Mapping[str, Persona], list[Problem]]:
    """The card's personas by label in the card's order, or none and the problems that stop them."""
    if SECTION[1] not in card.metrics:
        return {}, []
    section = card.metrics[SECTION[1]]
    data: dict[str, JsonValue] = {SECTION[0]: {SECTION[1]: section}}
    try:
        personas = _Card.model_validate(data).metrics.personas
    except ValidationError as exc:
        return {}, schema_problems(file, _Card, data, exc)
    problems = _unknown_clusters(file, card, personas)
    return ({} if problems else personas), problems


def _unknown_clusters(file: str, card: ModelCard, personas: Mapping[str, Persona]) -> list[Problem]:
    """Each persona describes a cluster the model can give, so a label and its persona never drift apart."""
    if card.output.kind != "label":
        why = f"personas describe clusters, and model '{card.name}' gives a {card.output.kind}, not a label"
        return [Problem(file, SECTION, why)] if personas else []
    labels = sorted((card.output.labels or {}).values())
    known = ", ".join(labels)
    return [
        Problem(file, (*SECTION, name), f"no cluster '{name}' among the labels ({known}){suggest(name, labels)}")
        for name in personas
        if name not in labels
    ]
