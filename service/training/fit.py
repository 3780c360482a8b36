"""The three pipelines, the choice of k, the cluster names and the feature check.

* ``rfm``: ``StandardScaler`` + ``KMeans`` on recency, frequency and monetary value; k from
  2..8 by the elbow of the inertia curve and the silhouette (``choose_k``), clusters named
  from their centroids in original units (``name_clusters``).
* ``churn``: ``StandardScaler`` + ``LogisticRegression``: the probability of no purchase in
  the outcome window.
* ``value``: ``StandardScaler`` + ``PoissonRegressor``: expected spend in the outcome window,
  a log-link GLM (spend = exp(b . x) with log1p features: a power law in orders and spend),
  so predictions are positive and grow with a customer's past spend instead of levelling off.

Model families were chosen by 5-fold cross-validation on the CDNOW training customers (R, F, M
features, seed 0): churn, logistic regression AUC 0.7723 / Brier 0.1587 against
``HistGradientBoostingClassifier`` 0.7679 / 0.1615; value, Poisson GLM RMSE 92.76 / MAE 34.95
against ``GradientBoostingRegressor`` (100 trees, depth 3, 50 per leaf) 94.07 / 35.56. The
linear models are also faster, easier to explain and exactly reproduced by ONNX.

Candidate features beyond R, F and M (tenure, average order value, inter-purchase time) must
earn their place (``check_features``): each is added to R, F, M on its own, fitted on the
training customers outside the validation share and scored on the validation share (never
on the held-out customers); it is kept if it improves the validation AUC by at least
``AUC_GAIN`` (churn) or lowers the validation RMSE by at least ``RMSE_GAIN`` (value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.metrics import roc_auc_score, root_mean_squared_error, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from service.core.models import FeatureSpec
from service.training.features import EXTRAS, RFM, Matrix

K_RANGE = range(2, 9)
SILHOUETTE_SAMPLE = 4000
SILHOUETTE_TOLERANCE = 0.01
KMEANS_N_INIT = 10
GMM_N_INIT = 3
GMM_TOL = 1e-8
Clustering = Literal["kmeans", "gmm"]
REPEAT_ORDERS = 1.5  # a cluster whose centroid is nearer two orders than one is a repeat-buyer cluster
AUC_GAIN = 0.002
MIN_CHECK_ROWS = 20
RMSE_GAIN = 0.01
SOLVER_TOL = 1e-10

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

K_RULE = (
    "k = the smallest k at or after the elbow of the inertia curve whose silhouette is within "
    f"{SILHOUETTE_TOLERANCE} of the best silhouette at or after the elbow. The elbow is the k farthest "
    "below the straight line joining the first and last points of the min-max normalised inertia curve "
    "(kneedle). The silhouette alone nearly always prefers k=2 on purchase data (one-time buyers against "
    "the rest), which is too coarse to act on; the elbow sets the least detail worth having and the "
    "silhouette then picks the best separated k from there."
)

NAME_RULE = (
    "Clusters are named from their centroids in original units: recency R (days), orders F and spend M. "
    "A cluster is recent when R <= W/2 (W = the feature window in days) and repeat when F >= 1.5. "
    "'champions' is the recent repeat cluster with the highest M. Every other cluster takes the next free "
    "name of its cell, in order of decreasing M: recent repeat: loyal, active, regular; recent single: new, "
    "promising, recent; long-ago repeat: at_risk, fading, slipping; long-ago single: lapsed, one_time, "
    "dormant, lost (then the cell's first name with _2, _3 ...). If no cluster ends up 'lapsed', the cluster "
    "with the largest R is renamed 'lapsed', so rules can always use {model: rfm, eq: lapsed}."
)

_CELLS: dict[tuple[bool, bool], tuple[str, ...]] = {
    (True, True): ("loyal", "active", "regular"),
    (True, False): ("new", "promising", "recent"),
    (False, True): ("at_risk", "fading", "slipping"),
    (False, False): ("lapsed", "one_time", "dormant", "lost"),
}


def wide(x: npt.NDArray[Any]) -> FloatArray:
    """Fit in float64: float32 sums and a loose optimiser differ in the last bits between machines
    and thread counts, and the ONNX export (float32) would show it."""
    return np.asarray(x, dtype=np.float64)


def rfm_pipeline(k: int, seed: int, kind: Clustering = "kmeans") -> Pipeline:
    if kind == "gmm":
        # A tight tolerance: EM stops at its fixed point, not wherever the float noise of a machine left it.
        gmm = GaussianMixture(
            k, covariance_type="full", n_init=GMM_N_INIT, tol=GMM_TOL, max_iter=1000, random_state=seed
        )
        return Pipeline([("scale", StandardScaler()), ("cluster", gmm)])
    # tol=0: Lloyd runs until no label changes, so the centres are exact means of a fixed partition.
    kmeans = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed, algorithm="lloyd", tol=0.0)
    return Pipeline([("scale", StandardScaler()), ("cluster", kmeans)])


def cluster_centres(pipe: Pipeline) -> FloatArray:
    """The centres in scaled units: k-means centroids or the mixture's component means."""
    step = pipe.named_steps["cluster"]
    return np.asarray(step.means_ if isinstance(step, GaussianMixture) else step.cluster_centers_, dtype=np.float64)


def churn_pipeline(seed: int) -> Pipeline:
    # Newton steps converge quadratically: the coefficients are the optimum to float64 precision, not
    # wherever lbfgs stopped (which moved with BLAS and thread counts and changed the float32 export).
    logistic = LogisticRegression(solver="newton-cholesky", tol=SOLVER_TOL, max_iter=100, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("logistic", logistic)])


def value_pipeline(seed: int) -> Pipeline:
    del seed  # Newton on a convex loss: no randomness
    poisson = PoissonRegressor(alpha=1e-4, solver="newton-cholesky", tol=SOLVER_TOL, max_iter=100)
    return Pipeline([("scale", StandardScaler()), ("poisson", poisson)])


@dataclass(frozen=True)
class KChoice:
    ks: tuple[int, ...]
    inertia: tuple[float, ...]
    silhouette: tuple[float, ...]
    elbow: int
    k: int
    sample: int


def elbow(ks: Sequence[int], inertia: Sequence[float]) -> int:
    """The kneedle elbow: the k farthest below the chord of the min-max normalised curve."""
    if len(ks) < 3:
        return ks[0]
    x = (np.asarray(ks, dtype=np.float64) - ks[0]) / (ks[-1] - ks[0])
    y = np.asarray(inertia, dtype=np.float64)
    span = y.max() - y.min()
    y = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    return ks[int(np.argmax((1.0 - x) - y))]


def choose_k(x: Matrix, seed: int, ks: Sequence[int] = K_RANGE) -> KChoice:
    """Fit k-means for each k; pick k by the elbow and the silhouette (``K_RULE``)."""
    distinct = int(np.unique(x, axis=0).shape[0])
    candidates = [k for k in ks if k < distinct]
    if not candidates:
        raise ValueError(f"too few distinct customers ({distinct}) to cluster")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(x.shape[0], size=min(x.shape[0], SILHOUETTE_SAMPLE), replace=False))
    inertia: list[float] = []
    silhouette: list[float] = []
    for k in candidates:
        pipe = rfm_pipeline(k, seed).fit(wide(x))
        scaled = pipe.named_steps["scale"].transform(wide(x[sample]))
        labels = pipe.named_steps["cluster"].labels_[sample]
        inertia.append(float(pipe.named_steps["cluster"].inertia_))
        two = len(set(labels.tolist())) > 1
        silhouette.append(float(silhouette_score(scaled, labels, random_state=seed)) if two else -1.0)
    bend = elbow(candidates, inertia)
    after = [(k, s) for k, s in zip(candidates, silhouette, strict=True) if k >= bend]
    best = max(s for _, s in after)
    chosen = min(k for k, s in after if s >= best - SILHOUETTE_TOLERANCE)
    return KChoice(tuple(candidates), tuple(inertia), tuple(silhouette), bend, chosen, int(sample.size))


@dataclass(frozen=True)
class Profile:
    """One cluster's centroid in original units (recency days, orders, dollars)."""

    label: int
    recency_days: float
    orders: float
    spend: float


def centroids(pipe: Pipeline, specs: Sequence[FeatureSpec]) -> list[Profile]:
    """The k-means centres mapped back through the scaler and the card's ``log1p``."""
    centers = np.asarray(pipe.named_steps["scale"].inverse_transform(cluster_centres(pipe)))
    centers = centers.astype(np.float64)
    for j, spec in enumerate(specs):
        if spec.transform == "log1p":
            centers[:, j] = np.expm1(centers[:, j])
    index = {spec.name: j for j, spec in enumerate(specs)}
    r, f, m = (index[name] for name in RFM)
    return [Profile(i, float(c[r]), float(c[f]), float(c[m])) for i, c in enumerate(centers)]


def name_clusters(profiles: Sequence[Profile], window_days: float) -> dict[int, str]:
    """Unique lowercase names, always including 'lapsed' (``NAME_RULE``)."""
    recent = {p.label: p.recency_days <= window_days / 2 for p in profiles}
    repeat = {p.label: p.orders >= REPEAT_ORDERS for p in profiles}
    by_value = sorted(profiles, key=lambda p: (-p.spend, -p.orders, p.recency_days, p.label))
    names: dict[int, str] = {}
    stars = [p for p in by_value if recent[p.label] and repeat[p.label]]
    if stars:
        names[stars[0].label] = "champions"
    taken: dict[tuple[bool, bool], int] = {}
    for p in by_value:
        if p.label in names:
            continue
        cell = (recent[p.label], repeat[p.label])
        nth = taken.get(cell, 0)
        taken[cell] = nth + 1
        options = _CELLS[cell]
        names[p.label] = options[nth] if nth < len(options) else f"{options[0]}_{nth - len(options) + 2}"
    if "lapsed" not in names.values():
        oldest = max(profiles, key=lambda p: (p.recency_days, -p.label))
        names[oldest.label] = "lapsed"
    assert len(set(names.values())) == len(names)
    return dict(sorted(names.items()))


@dataclass(frozen=True)
class FeatureCheck:
    """Validation scores of R, F, M alone and with each extra candidate; the extras kept."""

    metric: str
    base: float
    extras: dict[str, float]
    kept: tuple[str, ...]
    rule: str


def check_features(
    kind: str,
    x: dict[str, Matrix],
    target: FloatArray,
    fit_rows: npt.NDArray[np.bool_],
    val_rows: npt.NDArray[np.bool_],
) -> FeatureCheck:
    """Which of ``EXTRAS`` earn their place next to R, F, M (see the module docstring)."""
    metric = "roc_auc" if kind == "churn" else "rmse"
    classes = min(len(set(target[fit_rows].tolist())), len(set(target[val_rows].tolist())))
    if min(int(fit_rows.sum()), int(val_rows.sum())) < MIN_CHECK_ROWS or (kind == "churn" and classes < 2):
        return FeatureCheck(metric, float("nan"), {}, (), "too few customers or outcomes to check: no extra kept")
    seed = 0  # the check compares feature sets, not seeds

    def score(names: Sequence[str]) -> float:
        data = np.hstack([x[name] for name in names])
        if kind == "churn":
            pipe = churn_pipeline(seed).fit(wide(data[fit_rows]), target[fit_rows])
            return float(roc_auc_score(target[val_rows], pipe.predict_proba(data[val_rows])[:, 1]))
        pipe = value_pipeline(seed).fit(wide(data[fit_rows]), target[fit_rows])
        return float(root_mean_squared_error(target[val_rows], pipe.predict(data[val_rows])))

    base = score(RFM)
    extras = {name: score([*RFM, name]) for name in EXTRAS}
    if kind == "churn":
        kept = tuple(name for name, s in extras.items() if s - base >= AUC_GAIN)
        rule = f"kept if validation ROC AUC rises by >= {AUC_GAIN}"
        return FeatureCheck(metric, base, extras, kept, rule)
    kept = tuple(name for name, s in extras.items() if s <= base * (1 - RMSE_GAIN))
    rule = f"kept if validation RMSE falls by >= {RMSE_GAIN:.0%}"
    return FeatureCheck(metric, base, extras, kept, rule)


def positive_column(pipe: Pipeline) -> int:
    classes: list[Any] = list(pipe.classes_)
    return classes.index(1)
