"""Segment models as the core sees them: model cards, feature assembly, and the Scorer protocol.

A model card (``models/<name>.yaml``, version 1) says everything serving needs to know
about one ONNX model: its input features in order, how each is computed from the
visitor's attributes and what stands in when one is missing, its ONNX tensors, and which
output rules read. Training writes cards (``service/training``) with the very functions
below, so the features a model was trained on and the features it is served are computed
by the same code.

The core never runs a model itself: the bundle loader gives it one ``Scorer`` per model
(``service/segments/onnx.py``), and a decision calls it at most once, only when a rule
asks for the model and the visitor has consented.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from service.core.conditions import Facts, make_getter, to_epoch
from service.core.personas import Persona
from service.core.spec import AttrPath, Name

CARD_VERSION = 1
SECONDS_PER_DAY = 86_400.0
# Models read the request's time to the hour (docs/adr/0013): they were trained on whole days, a
# score moves by a few thousandths within an hour, and a visitor's page views in the same hour then
# give the same row, whose score the memo below already holds.
MODEL_CLOCK_SECONDS = 3_600.0
# Rows remembered per model and bundle: about 1.4 MB at most for a four-feature model.
MEMO_ROWS = 4_096

FeatureFn = Callable[[Facts], float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSource(_Model):
    """How a feature is computed from the visitor's attributes: exactly one of these."""

    attr: AttrPath | None = Field(None, description="A number attribute, as it is.")
    days_since: AttrPath | None = Field(
        None, description="A time attribute: days between it and the request time, to the hour."
    )
    ratio: tuple[AttrPath, AttrPath] | None = Field(None, description="[a, b]: a / b (missing when b is 0).")
    interval: tuple[AttrPath, AttrPath, AttrPath] | None = Field(
        None, description="[first, last, count]: days from first to last time / (count - 1); missing when count < 2."
    )

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum(v is not None for v in (self.attr, self.days_since, self.ratio, self.interval)) != 1:
            raise ValueError("a feature source is exactly one of attr, days_since, ratio, interval")
        return self


class FeatureSpec(_Model):
    """One input feature of a model, in the order of the model's input columns."""

    name: Name
    dtype: Literal["float32"] = "float32"
    unit: str = Field(description="days, orders, dollars, dollars per order, ...")
    description: str
    source: FeatureSource
    missing: float = Field(description="The value used when the source yields nothing.")
    clip: tuple[float, float] | None = Field(None, description="[low, high] applied before the transform.")
    transform: Literal["none", "log1p"] = "none"


class TensorSpec(_Model):
    name: str
    dtype: Literal["float32", "float64", "int64"]
    shape: list[int | None]


class OutputSpec(_Model):
    """What rules read: ``{model: rfm, eq: lapsed}``, ``{model: churn, gte: 0.7}``."""

    kind: Literal["label", "probability", "value"]
    tensor: str = Field(description="The ONNX output holding it.")
    column: int | None = Field(None, description="For a probability: the column of the positive class.")
    labels: dict[int, Name] | None = Field(None, description="For a label: cluster number → name.")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.kind == "label" and not self.labels:
            raise ValueError("a label output needs 'labels'")
        if self.kind == "probability" and self.column is None:
            raise ValueError("a probability output needs 'column'")
        return self


class TrainingInfo(_Model):
    data: str
    sha256: str
    transactions: int
    customers: int
    cutoff: date
    outcome_window_days: int | None = None
    seed: int
    trained_at: datetime


class ModelCard(_Model):
    """A model card: ``models/<name>.yaml`` next to ``models/<file>``."""

    model_config = ConfigDict(title="Tailor model card, version 1")

    version: Literal[1]
    name: Name
    model_version: str
    kind: Literal["cluster", "classifier", "regressor"]
    description: str
    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.]+\.onnx$")]
    inputs: list[FeatureSpec] = Field(min_length=1)
    onnx_input: TensorSpec
    onnx_outputs: list[TensorSpec] = Field(min_length=1)
    output: OutputSpec
    training: TrainingInfo
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    segments: dict[str, int] = Field(default_factory=dict, description="Segment sizes on the training population.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.onnx_input.shape[-1:] != [len(self.inputs)]:
            raise ValueError(
                f"onnx_input.shape {self.onnx_input.shape} must end with the number of inputs ({len(self.inputs)})"
            )
        if self.output.tensor not in {t.name for t in self.onnx_outputs}:
            raise ValueError(f"output.tensor '{self.output.tensor}' is not one of onnx_outputs")
        return self


class Scorer(Protocol):
    """Runs one model on one row of features; built once per bundle by the loader."""

    def score(self, row: Sequence[float]) -> str | float:
        """The card's output for one visitor: a label's name, a probability or a value."""
        ...


_NO_PERSONAS: Mapping[str, Persona] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A card and the scorer the loader built for it; ``file`` is the card's file, for problems.

    ``personas`` are the card's checked ``metrics.personas``, by cluster label in the card's order.
    """

    file: str
    card: ModelCard
    scorer: Scorer
    personas: Mapping[str, Persona] = field(default_factory=lambda: _NO_PERSONAS)


@dataclass(frozen=True, slots=True)
class CompiledModel:
    card: ModelCard
    run: Callable[[Facts], str | float]  # features from the request, then the scorer
    personas: Mapping[str, Persona] = field(default_factory=lambda: _NO_PERSONAS)


def compile_model(loaded: LoadedModel) -> CompiledModel:
    features = compile_features(loaded.card.inputs)
    score = _memoized(loaded.scorer.score, MEMO_ROWS)
    return CompiledModel(loaded.card, lambda f: score(tuple(features(f))), MappingProxyType(dict(loaded.personas)))


def _memoized(score: Callable[[Sequence[float]], str | float], rows: int) -> Callable[[tuple[float, ...]], str | float]:
    """``score`` remembering the last ``rows`` rows it scored (0: none).

    A session run costs 25 to 95 µs in a page-view mix, where its kernels are cold, and is a pure
    function of the row. ``lru_cache`` is safe for render batches, which decide in a worker thread
    while the event loop decides page views.
    """
    return functools.lru_cache(maxsize=rows)(score)


def compile_feature(spec: FeatureSpec) -> FeatureFn:
    """A function computing one feature for one request, with the card's missing value and transform."""
    raw = _raw_source(spec.source)
    missing = spec.missing
    low, high = spec.clip if spec.clip is not None else (-math.inf, math.inf)
    log = spec.transform == "log1p"

    def feature(f: Facts) -> float:
        value = raw(f)
        if value is None or not math.isfinite(value):
            value = missing
        value = min(max(value, low), high)
        return math.log1p(value) if log else value

    return feature


def compile_features(specs: Sequence[FeatureSpec]) -> Callable[[Facts], list[float]]:
    """The model's whole input row, in the card's order."""
    features = tuple(compile_feature(spec) for spec in specs)
    return lambda f: [feature(f) for feature in features]


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _raw_source(source: FeatureSource) -> Callable[[Facts], float | None]:
    if source.attr is not None:
        get = make_getter("attr", source.attr)
        return lambda f: _number(get(f))
    if source.days_since is not None:
        get = make_getter("attr", source.days_since)

        def days_since(f: Facts) -> float | None:
            t = to_epoch(get(f))
            return None if t is None else (f.now - f.now % MODEL_CLOCK_SECONDS - t) / SECONDS_PER_DAY

        return days_since
    if source.ratio is not None:
        top, bottom = (make_getter("attr", p) for p in source.ratio)

        def ratio(f: Facts) -> float | None:
            a, b = _number(top(f)), _number(bottom(f))
            return None if a is None or not b else a / b

        return ratio
    assert source.interval is not None  # FeatureSource requires one source
    first, last, count = (make_getter("attr", p) for p in source.interval)

    def interval(f: Facts) -> float | None:
        start, end, n = to_epoch(first(f)), to_epoch(last(f)), _number(count(f))
        if start is None or end is None or n is None or n < 2:
            return None
        return (end - start) / SECONDS_PER_DAY / (n - 1)

    return interval


def features_for(specs: Sequence[FeatureSpec], attributes: Mapping[str, Any], now: float) -> list[float]:
    """One row of features for plain attributes (training, tests, tools)."""
    return compile_features(specs)(Facts(attributes, {}, now, {}))
