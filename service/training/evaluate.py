"""Held-out metrics: ROC AUC and calibration for churn, errors against baselines for value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import spearmanr
from sklearn.metrics import brier_score_loss, log_loss, mean_absolute_error, roc_auc_score, root_mean_squared_error

FloatArray = npt.NDArray[np.float64]
RELIABILITY_BINS = 10
MIN_SEGMENT = 100
MIN_SEGMENT_SHARE = 0.01
BOOTSTRAP_ROUNDS = 500


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    predicted: float
    observed: float


def reliability(y: FloatArray, p: FloatArray, bins: int = RELIABILITY_BINS) -> list[Bin]:
    """Equal-width probability bins: how many, mean predicted, observed rate (empty bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    table: list[Bin] = []
    for b in range(bins):
        rows = which == b
        if rows.any():
            table.append(
                Bin(float(edges[b]), float(edges[b + 1]), int(rows.sum()), float(p[rows].mean()), float(y[rows].mean()))
            )
    return table


def calibration_error(table: list[Bin]) -> float:
    """Expected calibration error: the count-weighted mean gap between predicted and observed."""
    total = sum(b.count for b in table)
    return sum(b.count * abs(b.predicted - b.observed) for b in table) / total if total else float("nan")


CLASSIFICATION = ("roc_auc", "brier", "log_loss", "calibration_error")
VALUE_FIGURES = ("mae", "rmse", "spearman", "top_decile_share", "total_ratio")


def scored(guess: FloatArray) -> bool:
    """Whether every score is finite. A reference fit gone degenerate on a tiny shop scores nan (Pareto/NBD's
    P(no purchase) on 16 training customers), and scikit-learn refused it with "Input contains NaN", naming
    no model: its figures are undefined instead (nan, n/a in the report, null in the card) and train() warns."""
    return bool(np.isfinite(guess).all())


def classification(y: FloatArray, p: FloatArray) -> dict[str, float]:
    if not scored(p):
        return dict.fromkeys(CLASSIFICATION, float("nan"))
    both = len(set(y.tolist())) > 1
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "calibration_error": calibration_error(reliability(y, p)),
    }


def regression(actual: FloatArray, predicted: FloatArray) -> dict[str, float]:
    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
    }


def value_metrics(actual: FloatArray, predicted: FloatArray) -> dict[str, float]:
    """The value table's columns: errors, rank agreement, the top decile's share and total over actual."""
    if not scored(predicted):  # a degenerate reference fit (``scored``): undefined, not a crash
        return dict.fromkeys(VALUE_FIGURES, float("nan"))
    total = float(actual.sum())
    return {
        **regression(actual, predicted),
        "spearman": _spearman(actual, predicted),
        "top_decile_share": top_decile_share(actual, predicted),
        "total_ratio": float(predicted.sum()) / total if total > 0 else float("nan"),
    }


def _spearman(actual: FloatArray, predicted: FloatArray) -> float:
    """Rank correlation; undefined (nan) when either side is constant, such as the zero baseline."""
    if actual.size < 2 or np.ptp(actual) == 0 or np.ptp(predicted) == 0:
        return float("nan")
    return float(spearmanr(actual, predicted).statistic)


def top_decile_share(actual: FloatArray, predicted: FloatArray) -> float:
    """Share of the actual outcome spend made by the 10 % of customers predicted highest."""
    total = float(actual.sum())
    if total <= 0 or actual.size == 0:
        return float("nan")
    top = max(1, actual.size // 10)
    order = np.argsort(-predicted, kind="stable")[:top]
    return float(actual[order].sum()) / total


def segment_warnings(model: str, segments: dict[str, int], population: int) -> list[str]:
    """One line per segment under ``MIN_SEGMENT`` customers or ``MIN_SEGMENT_SHARE`` of the population."""
    lines: list[str] = []
    for name, count in segments.items():
        share = count / population if population else 0.0
        if count < MIN_SEGMENT or share < MIN_SEGMENT_SHARE:
            lines.append(
                f"segment {model}/{name} has {count} customers ({share:.1%} of {population}): "
                f"under {MIN_SEGMENT} customers or {MIN_SEGMENT_SHARE:.0%} of the population"
            )
    return lines


def top_error_share(actual: FloatArray, predicted: FloatArray, top: int = 10) -> float:
    """Share of the total squared error made by the ``top`` customers with the largest errors."""
    squared = (actual - predicted) ** 2
    total = float(squared.sum())
    return float(np.sort(squared)[::-1][:top].sum()) / total if total > 0 else float("nan")


def bootstrap_difference(
    actual: FloatArray,
    first: FloatArray,
    second: FloatArray,
    metric: Callable[[FloatArray, FloatArray], float],
    *,
    seed: int,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> tuple[float, float]:
    """90 % interval of metric(first) - metric(second) over customers resampled with replacement."""
    rng = np.random.default_rng(seed)
    diffs = np.empty(rounds)
    for i in range(rounds):
        rows = rng.integers(0, actual.size, actual.size)
        diffs[i] = metric(actual[rows], first[rows]) - metric(actual[rows], second[rows])
    low, high = np.percentile(diffs, [5, 95])
    return float(low), float(high)


def rmse(actual: FloatArray, predicted: FloatArray) -> float:
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def mae(actual: FloatArray, predicted: FloatArray) -> float:
    return float(np.mean(np.abs(actual - predicted)))
