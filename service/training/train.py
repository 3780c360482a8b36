"""One training run: transactions → population at the cutoff → three models, cards and numbers.

Reproducible by construction: the held-out split hashes customer ids, every estimator and
sample takes ``seed``, and native thread pools are limited to one thread while fitting (the
k-means reduction order otherwise depends on thread timing). Two runs on the same data give
byte-identical ONNX files and cards that differ only in ``training.trained_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from service.core.models import FeatureSpec, ModelCard, OutputSpec, TrainingInfo
from service.training import evaluate
from service.training.cards import build_card, write_card
from service.training.export import Runner, tensors, to_onnx
from service.training.features import (
    EXTRAS,
    RFM,
    Matrix,
    candidate_specs,
    feature_matrix,
    no_history_row,
    pick,
)
from service.training.fit import (
    FeatureCheck,
    KChoice,
    Profile,
    centroids,
    check_features,
    choose_k,
    churn_pipeline,
    name_clusters,
    positive_column,
    rfm_pipeline,
    value_pipeline,
    wide,
)
from service.training.transactions import Population, Transactions, population_at

DEFAULT_SEED = 0
LIKELY_CHURN = 0.7
HIGH_VALUE = 100.0  # dollars expected in the outcome window
BASELINE_CHURN = ("recency_days",)

FloatArray = npt.NDArray[np.float64]


@dataclass
class Trained:
    """One model: its pipeline, inputs, ONNX bytes and card, and its outputs on the population."""

    name: str
    pipeline: Any
    specs: list[FeatureSpec]
    onnx: bytes
    card: ModelCard
    x: Matrix
    scores: FloatArray
    no_history: str | float


@dataclass
class RfmDetail:
    choice: KChoice
    profiles: list[Profile]
    names: dict[int, str]
    labels: npt.NDArray[np.int64]


@dataclass
class ChurnDetail:
    check: FeatureCheck
    baseline: Any
    y: FloatArray
    p: FloatArray
    p_baseline: FloatArray
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]


@dataclass
class ValueDetail:
    check: FeatureCheck
    actual: FloatArray
    predicted: FloatArray
    baselines: dict[str, FloatArray]
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    intervals: dict[str, list[float]]


@dataclass
class TrainingRun:
    tx: Transactions
    population: Population
    seed: int
    trained_at: datetime
    models: dict[str, Trained]
    rfm: RfmDetail
    churn: ChurnDetail
    value: ValueDetail
    warnings: list[str] = field(default_factory=list)

    @property
    def held_out(self) -> npt.NDArray[np.bool_]:
        return self.population.held_out


def train(
    tx: Transactions,
    cutoff: date,
    *,
    seed: int = DEFAULT_SEED,
    trained_at: datetime | None = None,
) -> TrainingRun:
    """Fit, export and evaluate the three models (nothing is written)."""
    population = population_at(tx, cutoff)
    if population.training.sum() < 2 or population.held_out.sum() < 1:
        raise ValueError(f"too few customers before {cutoff} ({population.size}) to train and evaluate")
    stamp = trained_at or datetime.now(UTC).replace(microsecond=0)
    info = TrainingInfo(
        data=tx.source,
        sha256=tx.sha256,
        transactions=tx.rows,
        customers=len(tx.customers),
        cutoff=cutoff,
        outcome_window_days=population.outcome_days,
        seed=seed,
        trained_at=stamp,
    )
    candidates = candidate_specs(population)
    every = feature_matrix(list(candidates.values()), population)
    columns = {name: every[:, [j]] for j, name in enumerate(candidates)}  # for the checks and the baseline
    with threadpool_limits(limits=1):
        rfm, rfm_detail = _rfm(population, candidates, seed, info)
        churn, churn_detail = _churn(population, candidates, columns, seed, info)
        value, value_detail = _value(population, candidates, columns, seed, info)
    run = TrainingRun(
        tx,
        population,
        seed,
        stamp,
        {"rfm": rfm, "churn": churn, "value": value},
        rfm_detail,
        churn_detail,
        value_detail,
    )
    for model in run.models.values():
        run.warnings.extend(evaluate.segment_warnings(model.name, model.card.segments, population.size))
    if population.customers_after_only:
        run.warnings.append(
            f"{population.customers_after_only} customers first bought on or after the cutoff: not in the population"
        )
    return run


def write_models(run: TrainingRun, out: Path) -> list[Path]:
    """``<out>/<name>.onnx`` and ``<out>/<name>.yaml`` for each model."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for model in run.models.values():
        path = out / model.card.file
        path.write_bytes(model.onnx)
        written += [path, write_card(model.card, out)]
    return written


def _export(name: str, pipeline: Any, specs: list[FeatureSpec], *, classifier: bool = False) -> tuple[bytes, Runner]:
    data = to_onnx(pipeline, len(specs), name, classifier=classifier)
    return data, Runner(data)


def _rfm(
    population: Population, candidates: dict[str, FeatureSpec], seed: int, info: TrainingInfo
) -> tuple[Trained, RfmDetail]:
    specs = pick(candidates, RFM)
    x_all = feature_matrix(specs, population)
    x_train = x_all[population.training]
    choice = choose_k(x_train, seed)
    pipeline = rfm_pipeline(choice.k, seed).fit(wide(x_train))
    profiles = centroids(pipeline, specs)
    names = name_clusters(profiles, float(population.feature_days))
    data, runner = _export("rfm", pipeline, specs)
    x = x_all
    onnx_input, onnx_outputs = tensors(data)
    labels = runner.run(x)["label"].astype(np.int64)
    segments = {names[label]: int((labels == label).sum()) for label in sorted(names)}
    metrics: dict[str, Any] = {
        "k": choice.k,
        "elbow_k": choice.elbow,
        "silhouette": choice.silhouette[choice.ks.index(choice.k)],
        "silhouette_sample": choice.sample,
        "inertia": choice.inertia[choice.ks.index(choice.k)],
        "silhouette_by_k": {str(k): s for k, s in zip(choice.ks, choice.silhouette, strict=True)},
        "inertia_by_k": {str(k): i for k, i in zip(choice.ks, choice.inertia, strict=True)},
        "centroids": {
            names[p.label]: {"recency_days": p.recency_days, "orders": p.orders, "spend": p.spend} for p in profiles
        },
        "training_customers": int(population.training.sum()),
        "population": population.size,
    }
    card = build_card(
        name="rfm",
        kind="cluster",
        description=(
            f"RFM segments: k-means (k={choice.k}) on recency, frequency and monetary value at the cutoff, fitted on "
            "the training customers; clusters named from their centroids "
            f"({', '.join(names[i] for i in sorted(names))}). "
            f"Segment sizes count all {population.size} customers with a purchase before the cutoff."
        ),
        specs=specs,
        onnx_bytes=data,
        onnx_input=onnx_input,
        onnx_outputs=onnx_outputs,
        output=OutputSpec(kind="label", tensor="label", labels=names),
        training=info,
        metrics=metrics,
        segments=segments,
    )
    blank = int(runner.run(no_history_row(specs, population.now))["label"][0])
    trained = Trained("rfm", pipeline, specs, data, card, x, labels.astype(np.float64), names[blank])
    return trained, RfmDetail(choice, profiles, names, labels)


def _churn(
    population: Population,
    candidates: dict[str, FeatureSpec],
    columns: dict[str, Matrix],
    seed: int,
    info: TrainingInfo,
) -> tuple[Trained, ChurnDetail]:
    y = population.churned.astype(np.float64)
    train_rows, held = population.training, population.held_out
    if len(set(y[train_rows].tolist())) < 2:
        raise ValueError("every training customer has the same churn outcome: move the cutoff")
    check = check_features("churn", columns, y, train_rows & ~population.validation, population.validation)
    names = [*RFM, *(n for n in EXTRAS if n in check.kept)]
    specs = pick(candidates, names)
    x_all = feature_matrix(specs, population)
    pipeline = churn_pipeline(seed).fit(wide(x_all[train_rows]), y[train_rows])
    column = positive_column(pipeline)
    data, runner = _export("churn", pipeline, specs, classifier=True)
    x = x_all
    onnx_input, onnx_outputs = tensors(data)
    p_all = runner.run(x)["probabilities"][:, column].astype(np.float64)

    x_base = np.hstack([columns[name] for name in BASELINE_CHURN])
    baseline = churn_pipeline(seed).fit(wide(x_base[train_rows]), y[train_rows])
    p_base = baseline.predict_proba(x_base[held])[:, positive_column(baseline)].astype(np.float64)

    metrics_model = evaluate.classification(y[held], p_all[held])
    metrics_base = evaluate.classification(y[held], p_base)
    metrics: dict[str, Any] = {
        "held_out_customers": int(held.sum()),
        "churn_rate": float(y[held].mean()),
        **metrics_model,
        "baseline": {"model": "same pipeline on recency_days alone", **metrics_base},
        "feature_check": _check_metrics(check),
        "thresholds": {"likely_churn": LIKELY_CHURN},
    }
    segments = {"likely_churn": int((p_all >= LIKELY_CHURN).sum())}
    card = build_card(
        name="churn",
        kind="classifier",
        description=(
            f"Probability that a customer makes no purchase in the next {population.outcome_days} days "
            "(standard scaler + logistic regression). Segment likely_churn: probability >= "
            f"{LIKELY_CHURN}, counted on all {population.size} customers with a purchase before the cutoff."
        ),
        specs=specs,
        onnx_bytes=data,
        onnx_input=onnx_input,
        onnx_outputs=onnx_outputs,
        output=OutputSpec(kind="probability", tensor="probabilities", column=column),
        training=info,
        metrics=metrics,
        segments=segments,
    )
    blank = float(runner.run(no_history_row(specs, population.now))["probabilities"][0, column])
    trained = Trained("churn", pipeline, specs, data, card, x, p_all, blank)
    detail = ChurnDetail(check, baseline, y[held], p_all[held], p_base, metrics_model, metrics_base)
    return trained, detail


def _value(
    population: Population,
    candidates: dict[str, FeatureSpec],
    columns: dict[str, Matrix],
    seed: int,
    info: TrainingInfo,
) -> tuple[Trained, ValueDetail]:
    target = population.outcome_spend
    train_rows, held = population.training, population.held_out
    check = check_features("value", columns, target, train_rows & ~population.validation, population.validation)
    names = [*RFM, *(n for n in EXTRAS if n in check.kept)]
    specs = pick(candidates, names)
    x_all = feature_matrix(specs, population)
    pipeline = value_pipeline(seed).fit(wide(x_all[train_rows]), target[train_rows])
    data, runner = _export("value", pipeline, specs)
    x = x_all
    onnx_input, onnx_outputs = tensors(data)
    predicted_all = runner.run(x)["variable"].reshape(-1).astype(np.float64)

    actual, predicted = target[held], predicted_all[held]
    scale = population.outcome_days / population.feature_days
    baselines = {
        "mean": np.full(actual.shape, float(target[train_rows].mean())),
        "past_spend": population.column("spend_total")[held] * scale,
        "zero": np.zeros(actual.shape),
    }
    past = baselines["past_spend"]
    model_metrics = {
        **evaluate.regression(actual, predicted),
        "mean_actual": float(actual.mean()),
        "mean_predicted": float(predicted.mean()),
        "top_decile_share": evaluate.top_decile_share(actual, predicted),
        "top10_squared_error_share": evaluate.top_error_share(actual, predicted),
    }
    intervals = {
        "rmse_minus_past_spend_90ci": list(
            evaluate.bootstrap_difference(actual, predicted, past, evaluate.rmse, seed=seed)
        ),
        "mae_minus_past_spend_90ci": list(
            evaluate.bootstrap_difference(actual, predicted, past, evaluate.mae, seed=seed)
        ),
    }
    base_metrics = {name: evaluate.regression(actual, guess) for name, guess in baselines.items()}
    metrics: dict[str, Any] = {
        "held_out_customers": int(held.sum()),
        **model_metrics,
        "baselines": {
            "mean": {"model": "mean outcome spend of the training customers", **base_metrics["mean"]},
            "past_spend": {
                "model": f"spend before the cutoff x {population.outcome_days}/{population.feature_days} days",
                **base_metrics["past_spend"],
            },
            "zero": {"model": "nothing", **base_metrics["zero"]},
        },
        "bootstrap": intervals,
        "feature_check": _check_metrics(check),
        "thresholds": {"high_value": HIGH_VALUE},
    }
    segments = {"high_value": int((predicted_all >= HIGH_VALUE).sum())}
    card = build_card(
        name="value",
        kind="regressor",
        description=(
            f"Expected spend in dollars in the next {population.outcome_days} days (standard scaler + Poisson "
            f"regression, log link). Segment high_value: expected spend >= {HIGH_VALUE:g} dollars, counted on all "
            f"{population.size} customers with a purchase before the cutoff."
        ),
        specs=specs,
        onnx_bytes=data,
        onnx_input=onnx_input,
        onnx_outputs=onnx_outputs,
        output=OutputSpec(kind="value", tensor="variable"),
        training=info,
        metrics=metrics,
        segments=segments,
    )
    blank = float(runner.run(no_history_row(specs, population.now))["variable"].reshape(-1)[0])
    trained = Trained("value", pipeline, specs, data, card, x, predicted_all, blank)
    detail = ValueDetail(check, actual, predicted, baselines, model_metrics, base_metrics, intervals)
    return trained, detail


def _check_metrics(check: FeatureCheck) -> dict[str, Any]:
    return {
        "metric": f"validation {check.metric}",
        "rfm": check.base,
        **{f"rfm+{name}": score for name, score in check.extras.items()},
        "kept": list(check.kept),
    }
