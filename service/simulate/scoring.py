"""Segment models scored for a whole batch of visitors with one ONNX run per model.

A decision asks for a model through ``Facts.model``, one visitor at a time. Here every
model runs once per batch first, and the decisions read their visitor's score from the
batch (``BatchScores``), so a million visitors cost a few hundred session runs, not three
million.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.conditions import Facts
from service.core.models import ModelCard, compile_features
from service.segments.onnx import OnnxScorer


@dataclass
class Models:
    """The ONNX scorers of a bundle, kept by model name as the loader opens them."""

    scorers: dict[str, OnnxScorer] = field(default_factory=dict)

    def open(self, card: ModelCard, model: bytes) -> OnnxScorer:
        scorer = self.scorers[card.name] = OnnxScorer(card, model)
        return scorer


def load_with_models(root: Path) -> tuple[Bundle, Models]:
    models = Models()
    return load_bundle(root, open_model=models.open), models


class BatchScores:
    """Every model's output for every visitor of the current batch; ``row`` says whose is asked for."""

    def __init__(self, bundle: Bundle, models: Models) -> None:
        self._features = {name: compile_features(m.card.inputs) for name, m in bundle.models.items()}
        self._scorers = models.scorers
        self.scores: dict[str, list[str | float]] = {}
        self.row = 0

    def score(self, attributes: Sequence[Mapping[str, Any]], now: float) -> None:
        """Score the batch: one feature matrix and one session run per model."""
        for name, features in self._features.items():
            matrix = np.array([features(Facts(a, {}, now, {})) for a in attributes], dtype=np.float32)
            self.scores[name] = self._scorers[name].score_batch(matrix) if len(matrix) else []

    def runners(self) -> dict[str, Callable[[Facts], str | float]]:
        return {name: self._reader(name) for name in self._features}

    def _reader(self, name: str) -> Callable[[Facts], str | float]:
        return lambda _facts: self.scores[name][self.row]


def with_batch_scores(bundle: Bundle, scores: BatchScores) -> Bundle:
    """The bundle whose model segments read the batch's scores instead of running a model per visitor."""
    return replace(bundle, model_runners=scores.runners())
