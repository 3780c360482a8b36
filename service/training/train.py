"""One training run: transactions → population at the cutoff → three models, cards and numbers.

Reproducible by construction: the held-out split hashes customer ids, every estimator and
sample takes ``seed``, and native thread pools are limited to one thread while fitting (the
k-means reduction order otherwise depends on thread timing). Two runs on the same data give
byte-identical ONNX files and cards that differ only in ``training.trained_at``.
"""

from __future__ import annotations

import itertools
import math
import platform
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.introspect import opt_func_info
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_info, threadpool_limits

from service.core.models import FeatureSpec, ModelCard, OutputSpec, TrainingInfo
from service.training import closed_form, evaluate
from service.training.backtest import (
    BLEND,
    VALUE_RULE,
    Candidate,
    ChurnBacktest,
    Counts,
    Learned,
    References,
    ValueChoice,
    churn_backtest,
    references,
    shape,
    value_backtest,
    value_choice,
)
from service.training.cards import build_card, write_card
from service.training.export import Runner, tensors, to_onnx
from service.training.features import (
    CLOSED_FORM,
    EXTRAS,
    RFM,
    Matrix,
    candidate_specs,
    feature_matrix,
    no_history_row,
    pick,
)
from service.training.fit import (
    SILHOUETTE_SAMPLE,
    SILHOUETTE_TOLERANCE,
    Clustering,
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
from service.training.reference import DAYS_PER_WEEK, from_days
from service.training.transactions import (
    DEFAULT_HORIZON_DAYS,
    HOLDOUT_PERCENT,
    Population,
    Transactions,
    population_at,
)

DEFAULT_SEED = 0
# The reference fits have 3 and 4 parameters: on 5 training customers (6 in all) BG/NBD went degenerate
# (r = 434,240) and forecast nan, which scikit-learn's metrics then refused without a word about the data.
# At 20 customers a fit can still run to its limit (BG/NBD's a, b -> inf): BG/NBD is then bounded until its graph
# is exact (``backtest.exact_bgnbd``) and a reference scoring nan reads n/a (``evaluate.scored``); 60 generated
# shops of exactly 20 customers and 30 each of 22 and 24 all train (tests/training/test_small_shops.py runs 30).
# A fit no bound makes exact is still refused (``_servable``).
MIN_CUSTOMERS = 20
REPRODUCIBLE_KERNELS = "Haswell"  # the Makefile exports OPENBLAS_CORETYPE with this value
AVX512_TARGETS = ("X86_V4", "AVX512_ICL", "AVX512_SPR")  # and NPY_DISABLE_CPU_FEATURES with these
# likely_churn flags the customers a win-back budget can reach: about the LIKELY_CHURN_SHARE with the
# highest churn probability among the training customers (LIKELY_CHURN_RULE). The threshold is a step
# of 0.01, so the YAML reads plainly; the step is picked by the share it flags, not by rounding the
# quantile, because probabilities crowd together (on CDNOW the quantile is 0.85999, and 0.85 flags 33 %).
LIKELY_CHURN_SHARE = 0.25
LIKELY_CHURN_STEP = 0.01
LIKELY_CHURN_RULE = (
    f"likely_churn threshold = the multiple of {LIKELY_CHURN_STEP} whose share of training customers at or above it "
    f"is closest to {LIKELY_CHURN_SHARE:.0%} (the higher one on a tie). A threshold at the base rate (about 0.7 on "
    "CDNOW) flags two customers in three, which no win-back budget covers; a fixed share keeps the segment the "
    "size of the action."
)
HIGH_VALUE = 100.0  # dollars expected in the outcome window
REPEAT_PURCHASES = 2.0  # the example rule {model: purchases, gte: 2}
QUARTER_DAYS = 91
STABILITY_QUARTERS = 2  # fits at the cutoff and one and two quarters before it
CLUSTERINGS: tuple[Clustering, ...] = ("kmeans", "gmm")
CLUSTERING_RULE = (
    "k-means and a Gaussian mixture (full covariances) are fitted at the k the k rule picks; the mixture is kept when "
    "its mean adjusted Rand index between fits a quarter apart (scored on the same customers at the cutoff) is "
    f"higher and its silhouette is within {SILHOUETTE_TOLERANCE} of k-means'; otherwise k-means"
)
BASELINE_CHURN = ("recency_days",)
VALUE_EVALUATION = (
    "out of time: fitted only on the purchases before the cutoff (no outcome is used), scored at the cutoff, "
    "measured over the horizon after it, on the held-out customers"
)
CHURN_EVALUATION = (
    "out of time, backtest horizon {b} days: the same pipeline on the same features fitted at {fit} (cutoff - {b} "
    "days) on the training customers' outcomes over [{fit}, cutoff), served unchanged at the cutoff and measured over "
    "the {b} days from it on the held-out customers. b = min(horizon, feature window // 2): the fit needs b days of "
    "history, and a backtest of the full {h}-day horizon would fit at {start}, before the data have a customer"
)
CHURN_IN_PERIOD = (
    "in period (secondary): the served model, fitted on the training customers' outcomes in the {h} days from the "
    "cutoff, measured on the held-out customers over the same days"
)

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
    k: int
    choice: KChoice
    profiles: list[Profile]
    names: dict[int, str]
    labels: npt.NDArray[np.int64]


@dataclass
class ChurnDetail:
    """The headline churn figures: the backtest's when there is one (``backtest``), else the in-period ones."""

    check: FeatureCheck
    y: FloatArray
    p: FloatArray
    p_baseline: FloatArray
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    backtest: ChurnBacktest | None = None


@dataclass
class ValueDetail:
    check: FeatureCheck
    actual: FloatArray
    predicted: FloatArray
    baselines: dict[str, FloatArray]
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    intervals: dict[str, list[float]]
    choice: ValueChoice


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
    references: References
    warnings: list[str] = field(default_factory=list)

    @property
    def held_out(self) -> npt.NDArray[np.bool_]:
        return self.population.held_out


def train(
    tx: Transactions,
    cutoff: date,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    seed: int = DEFAULT_SEED,
    trained_at: datetime | None = None,
) -> TrainingRun:
    """Fit, export and evaluate the models (nothing is written)."""
    population = population_at(tx, cutoff, horizon_days)
    check_population(population)
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
        refs = references(population, candidates)
        rfm, rfm_detail = _rfm(tx, population, candidates, seed, info)
        churn, churn_detail = _churn(tx, population, candidates, columns, refs, seed, info)
        value, purchases, value_detail = _value(tx, population, candidates, columns, refs, seed, info)
    run = TrainingRun(
        tx,
        population,
        seed,
        stamp,
        {"rfm": rfm, "churn": churn, "value": value, "purchases": purchases},
        rfm_detail,
        churn_detail,
        value_detail,
        refs,
    )
    for model in run.models.values():
        run.warnings.extend(evaluate.segment_warnings(model.name, model.card.segments, population.size))
    run.warnings.extend(unscored_warnings(run))
    run.warnings.extend(kernel_warnings())
    if population.customers_after_only:
        run.warnings.append(
            f"{population.customers_after_only} customers first bought on or after the cutoff: not in the population"
        )
    return run


def check_population(population: Population) -> None:
    """Refuse, saying why, a population the models cannot learn from (rather than fail deep in a fit)."""
    cutoff = population.cutoff
    if population.size < MIN_CUSTOMERS:
        raise ValueError(
            f"too few customers: {population.size} before the cutoff {cutoff}, need at least {MIN_CUSTOMERS}"
        )
    if not population.held_out.any():
        raise ValueError(
            f"no held-out customer among the {population.size} before the cutoff {cutoff}: the models cannot be "
            f"evaluated (about {HOLDOUT_PERCENT}% are held out, by a hash of the customer id)"
        )
    if not population.column("spend_total").any():
        raise ValueError(
            f"every amount before the cutoff {cutoff} is 0: there is no spend to learn the value model from"
        )


def unscored_warnings(run: TrainingRun) -> list[str]:
    """One line per reference whose held-out scores are not finite (``evaluate.scored``): its figures read n/a,
    and without a word the reader could not tell a degenerate fit from a missing one."""
    backtest = run.churn.backtest
    churn = backtest.references if backtest else {"pareto_nbd": run.churn.p_baseline}
    found = [
        *(("churn", name, p) for name, p in churn.items()),
        *(("value", *item) for item in run.value.baselines.items()),
    ]
    training = int(run.population.training.sum())
    return [
        f"the {model} model's {name} reference scores nan or inf for {int((~np.isfinite(p)).sum())} of {p.size} "
        f"held-out customers (its fit on {training} training customers is degenerate): its figures are n/a"
        for model, name, p in found
        if not evaluate.scored(p)
    ]


def kernel_warnings() -> list[str]:
    """The committed models are what OpenBLAS's AVX2 kernels and numpy's loops without AVX-512 give,
    on any x86-64 host; a training that runs other kernels says so (make pins both)."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return []
    return [*_openblas_warning(threadpool_info()), *_numpy_warning(opt_func_info())]


def _openblas_warning(libraries: list[dict[str, Any]]) -> list[str]:
    """OpenBLAS picks its kernels by CPU, and its AVX-512 ones move the reference fits in their 5th digit."""
    found = {str(lib.get("architecture")) for lib in libraries if lib.get("internal_api") == "openblas"}
    other = sorted(found - {REPRODUCIBLE_KERNELS})
    if not other:
        return []
    warning = (
        f"OpenBLAS runs its {', '.join(other)} kernels: the models can differ from a training on another CPU in "
        f"their 5th digit; OPENBLAS_CORETYPE={REPRODUCIBLE_KERNELS} (make sets it) gives the same bytes on any "
        "x86-64 host"
    )
    return [warning]


def _numpy_warning(loops: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """numpy's float64 exp and log run SVML on AVX-512 CPUs, which differs from the C library in the last
    bit of some values; without AVX-512 both are the C library's. The fits can move in their 5th digit."""
    targets = {loop["current"] for signatures in loops.values() for loop in signatures.values()}
    wide = sorted(t for t in targets if t.startswith(AVX512_TARGETS))
    if not wide:
        return []
    warning = (
        f"numpy runs loops built for {', '.join(wide)}: the models can differ from a training on another CPU in "
        f"their 5th digit; NPY_DISABLE_CPU_FEATURES='{' '.join(AVX512_TARGETS)}' (make sets it) gives the same "
        "bytes on any x86-64 host"
    )
    return [warning]


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
    tx: Transactions, population: Population, candidates: dict[str, FeatureSpec], seed: int, info: TrainingInfo
) -> tuple[Trained, RfmDetail]:
    specs = pick(candidates, RFM)
    x_all = feature_matrix(specs, population)
    x_train = x_all[population.training]
    choice = choose_k(x_train, seed)
    comparison = {kind: _clustering_figures(tx, population, x_train, choice.k, kind, seed) for kind in CLUSTERINGS}
    kind = better_clustering(comparison)
    smallest = max(evaluate.MIN_SEGMENT, math.ceil(evaluate.MIN_SEGMENT_SHARE * population.size))
    k, pipeline = _large_enough(choice.k, x_train, x_all, smallest, seed, kind)
    profiles = centroids(pipeline, specs)
    names = name_clusters(profiles, float(population.feature_days))
    data, runner = _export("rfm", pipeline, specs)
    x = x_all
    onnx_input, onnx_outputs = tensors(data)
    labels = runner.run(x)["label"].reshape(-1).astype(np.int64)  # a mixture labels [N, 1], k-means [N]
    segments = {names[label]: int((labels == label).sum()) for label in sorted(names)}
    metrics: dict[str, Any] = {
        "algorithm": kind,
        "algorithm_comparison": {"rule": CLUSTERING_RULE, "k": choice.k, **comparison},
        "k": k,
        "k_rule_choice": choice.k,
        "minimum_cluster": {
            "rule": f"no cluster under {evaluate.MIN_SEGMENT} customers or {evaluate.MIN_SEGMENT_SHARE:.0%} of the "
            "population: k is lowered until every cluster is at least that large",
            "customers": smallest,
            "lowered_from": choice.k if k != choice.k else None,
        },
        "elbow_k": choice.elbow,
        "silhouette": choice.silhouette[choice.ks.index(k)],
        "silhouette_sample": choice.sample,
        "inertia": choice.inertia[choice.ks.index(k)],
        "silhouette_by_k": {str(k): s for k, s in zip(choice.ks, choice.silhouette, strict=True)},
        "inertia_by_k": {str(k): i for k, i in zip(choice.ks, choice.inertia, strict=True)},
        "centroids": {
            names[p.label]: {"recency_days": p.recency_days, "orders": p.orders, "spend": p.spend} for p in profiles
        },
        "training_customers": int(population.training.sum()),
        "population": population.size,
        "personas": personas(population, labels, names),
    }
    card = build_card(
        name="rfm",
        kind="cluster",
        description=(
            f"RFM segments: k-means (k={k}) on recency, frequency and monetary value at the cutoff, fitted on "
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
    blank = int(runner.run(no_history_row(specs, population.now))["label"].reshape(-1)[0])
    trained = Trained("rfm", pipeline, specs, data, card, x, labels.astype(np.float64), names[blank])
    return trained, RfmDetail(k, choice, profiles, names, labels)


def _large_enough(  # noqa: PLR0917 - the arrays and the rule's numbers, used once
    k: int, x_train: Matrix, x_all: Matrix, smallest: int, seed: int, kind: Clustering = "kmeans"
) -> tuple[int, Any]:
    """The largest k <= ``k`` whose every cluster holds at least ``smallest`` customers of the population."""
    for candidate in range(k, 1, -1):
        pipeline = rfm_pipeline(candidate, seed, kind).fit(wide(x_train))
        counts = np.bincount(pipeline.predict(wide(x_all)), minlength=candidate)
        if counts.min() >= smallest:
            return candidate, pipeline
    return 2, rfm_pipeline(2, seed, kind).fit(wide(x_train))


def _clustering_figures(  # noqa: PLR0917 - one step of _rfm
    tx: Transactions, population: Population, x_train: Matrix, k: int, kind: Clustering, seed: int
) -> dict[str, Any]:
    """Silhouette at the cutoff, and the adjusted Rand index between fits a quarter apart (same customers)."""
    pipeline = rfm_pipeline(k, seed, kind).fit(wide(x_train))
    rows = np.random.default_rng(seed).choice(x_train.shape[0], min(x_train.shape[0], SILHOUETTE_SAMPLE), replace=False)
    sample = wide(x_train[np.sort(rows)])
    labels = pipeline.predict(sample)
    scaled = pipeline.named_steps["scale"].transform(sample)
    two = len(set(labels.tolist())) > 1
    silhouette = float(silhouette_score(scaled, labels, random_state=seed)) if two else -1.0
    return {"silhouette": silhouette, "stability_ari": _stability(tx, population, k, kind, seed)}


def _stability(tx: Transactions, population: Population, k: int, kind: Clustering, seed: int) -> list[float]:
    """ARI between consecutive quarterly fits (cutoffs a quarter apart), all scored on the customers at the cutoff."""
    labelings = []
    for back in range(STABILITY_QUARTERS, -1, -1):
        cutoff = population.cutoff - timedelta(days=back * QUARTER_DAYS)
        try:
            earlier = population_at(tx, cutoff, population.outcome_days)
        except ValueError:
            continue
        if int(earlier.training.sum()) <= k:
            continue
        specs = pick(candidate_specs(earlier), RFM)  # each fit with its own clips, as it would be served
        fitted = rfm_pipeline(k, seed, kind).fit(wide(feature_matrix(specs, earlier)[earlier.training]))
        labelings.append(fitted.predict(wide(feature_matrix(specs, population))))
    return [float(adjusted_rand_score(a, b)) for a, b in itertools.pairwise(labelings)]


def better_clustering(figures: dict[Clustering, dict[str, Any]]) -> Clustering:
    """``CLUSTERING_RULE``: the more stable one, unless its silhouette is lower by more than the tolerance."""

    def stability(kind: Clustering) -> float:
        values = figures[kind]["stability_ari"]
        return float(np.mean(values)) if values else float("nan")

    kmeans, gmm = figures["kmeans"], figures["gmm"]
    steadier = stability("gmm") > stability("kmeans")
    close = gmm["silhouette"] >= kmeans["silhouette"] - SILHOUETTE_TOLERANCE
    return "gmm" if steadier and close else "kmeans"


def personas(population: Population, labels: npt.NDArray[np.int64], names: dict[int, str]) -> dict[str, Any]:
    """Each cluster in numbers a marketer can read, and one line saying it."""
    cut = population.cutoff.toordinal()
    recency = np.array([cut - _ordinal(a["last_purchase_at"]) for a in population.attributes], dtype=np.float64)
    tenure = np.array([cut - _ordinal(a["first_purchase_at"]) for a in population.attributes], dtype=np.float64)
    orders, spend = population.column("orders_total"), population.column("spend_total")
    total_spend = float(spend.sum()) or 1.0
    out: dict[str, Any] = {}
    for label, name in sorted(names.items()):
        rows = labels == label
        if not rows.any():
            continue
        figures = {
            "customers": int(rows.sum()),
            "share_of_customers": float(rows.mean()),
            "share_of_spend": float(spend[rows].sum()) / total_spend,
            "median_recency_days": float(np.median(recency[rows])),
            "median_orders": float(np.median(orders[rows])),
            "median_spend": float(np.median(spend[rows])),
            "median_tenure_days": float(np.median(tenure[rows])),
            "churn_rate": float(population.churned[rows].mean()),
        }
        out[name] = {**figures, "description": _persona_line(name, figures, population.outcome_days)}
    return out


def _persona_line(name: str, f: dict[str, Any], horizon: int) -> str:
    return (
        f"{name.replace('_', ' ').capitalize()}: {f['share_of_customers']:.0%} of customers and "
        f"{f['share_of_spend']:.0%} of spend; typically {f['median_orders']:g} "
        f"order{'' if f['median_orders'] == 1 else 's'} worth "
        f"${f['median_spend']:.0f}, the last {f['median_recency_days']:.0f} days ago, customers for "
        f"{f['median_tenure_days']:.0f} days; {f['churn_rate']:.0%} bought nothing in the next {horizon} days."
    )


def _ordinal(text: str) -> int:
    return date.fromisoformat(text[:10]).toordinal()


def _churn(  # noqa: PLR0917 - one step of train(), called once
    tx: Transactions,
    population: Population,
    candidates: dict[str, FeatureSpec],
    columns: dict[str, Matrix],
    refs: References,
    seed: int,
    info: TrainingInfo,
) -> tuple[Trained, ChurnDetail]:
    y = population.churned.astype(np.float64)
    train_rows, held = population.training, population.held_out
    if len(set(y[train_rows].tolist())) < 2:
        raise ValueError(one_churn_outcome(population, bool(y[train_rows][0])))
    check = check_features("churn", columns, y, train_rows & ~population.validation, population.validation)
    names = [*RFM, *(n for n in EXTRAS if n in check.kept)]
    specs = pick(candidates, names)
    x_all = feature_matrix(specs, population)
    pipeline = churn_pipeline(seed).fit(wide(x_all[train_rows]), y[train_rows])
    column = positive_column(pipeline)
    data, runner = _export("churn", pipeline, specs, classifier=True)
    onnx_input, onnx_outputs = tensors(data)
    p_all = runner.run(x_all)["probabilities"][:, column].astype(np.float64)
    threshold = likely_churn_threshold(p_all[train_rows])
    backtest = churn_backtest(tx, population, refs, names, seed)
    in_period = _churn_in_period(population, columns, refs, y, p_all, seed)
    flagged = p_all >= threshold
    metrics: dict[str, Any] = {
        **_churn_headline(population, backtest),
        "in_period": in_period,
        "feature_check": _check_metrics(check),
        "thresholds": {"likely_churn": threshold},
        "likely_churn": {
            "rule": LIKELY_CHURN_RULE,
            "share_flagged": float(flagged.mean()),
            "held_out_churn_rate_flagged": float(y[held & flagged].mean()) if (held & flagged).any() else None,
            "held_out_churn_rate_not_flagged": float(y[held & ~flagged].mean()) if (held & ~flagged).any() else None,
        },
    }
    horizon = population.outcome_days
    card = build_card(
        name="churn",
        kind="classifier",
        description=(
            f"Probability that a customer makes no purchase in the next {horizon} days "
            f"(standard scaler + logistic regression on {', '.join(names)}). Segment likely_churn: probability >= "
            f"{threshold} ({likely_churn_text(flagged[train_rows])}), counted on all "
            f"{population.size} customers with a purchase before the cutoff."
        ),
        specs=specs,
        onnx_bytes=data,
        onnx_input=onnx_input,
        onnx_outputs=onnx_outputs,
        output=OutputSpec(kind="probability", tensor="probabilities", column=column),
        training=info,
        metrics=metrics,
        segments={"likely_churn": int(flagged.sum())},
    )
    blank = float(runner.run(no_history_row(specs, population.now))["probabilities"][0, column])
    trained = Trained("churn", pipeline, specs, data, card, x_all, p_all, blank)
    if backtest is None:  # too little data for a backtest: the figures are the in-period ones
        pareto = refs.p_none(refs.pareto, horizon)[held]
        detail = ChurnDetail(check, y[held], p_all[held], pareto, in_period, in_period["baseline"], None)
    else:
        detail = ChurnDetail(
            check, backtest.y, backtest.p, backtest.references["pareto_nbd"], backtest.metrics,
            backtest.reference_metrics["pareto_nbd"], backtest,
        )  # fmt: skip
    return trained, detail


def one_churn_outcome(population: Population, churned: bool) -> str:
    """Why churn cannot be learnt: which outcome everyone had, and what may help ("move the cutoff" alone
    sent a shop where nobody ever bought twice looking for a cutoff that does not exist)."""
    days, cutoff = population.outcome_days, population.cutoff
    did = "made no purchase" if churned else "made a purchase"
    return (
        f"every training customer {did} in the {days} days from the cutoff {cutoff}: the churn model needs both "
        "outcomes (another --cutoff or --horizon may give them; a shop where nobody buys again has none)"
    )


def likely_churn_text(flagged: npt.NDArray[np.bool_]) -> str:
    """What the likely_churn threshold flags among the training customers, as it is: when probabilities crowd
    together no step of 0.01 flags near the target share, and "the 25%" over a segment of 0 was false."""
    share = float(flagged.mean()) if flagged.size else 0.0
    if not flagged.any():
        return f"no training customer: no step of {LIKELY_CHURN_STEP} flags a share nearer {LIKELY_CHURN_SHARE:.0%}"
    return f"the {share:.0%} of training customers most likely to churn"


def _churn_headline(population: Population, backtest: ChurnBacktest | None) -> dict[str, Any]:
    if backtest is None:
        return {"evaluation": "in period only: too little data before the cutoff for a backtest"}
    fit = backtest.fit_cutoff
    start = population.cutoff - timedelta(days=population.outcome_days)
    text = CHURN_EVALUATION.format(b=backtest.b, fit=fit, h=population.outcome_days, start=start)
    pareto, bg = backtest.reference_metrics["pareto_nbd"], backtest.reference_metrics["bg_nbd"]
    return {
        "evaluation": text,
        "backtest_horizon_days": backtest.b,
        "fit_cutoff": fit.isoformat(),
        "held_out_customers": int(backtest.y.size),
        "churn_rate": float(backtest.y.mean()),
        **backtest.metrics,
        "baseline": {
            "model": f"Pareto/NBD P(no purchase in {backtest.b} days), fitted on the histories before the cutoff",
            **pareto,
        },
        "references": {"bg_nbd": {"model": f"BG/NBD P(no purchase in {backtest.b} days)", **bg}},
    }


def _churn_in_period(  # noqa: PLR0917 - one step of _churn
    population: Population, columns: dict[str, Matrix], refs: References, y: FloatArray, p_all: FloatArray, seed: int
) -> dict[str, Any]:
    horizon, train_rows, held = population.outcome_days, population.training, population.held_out
    x_base = np.hstack([columns[name] for name in BASELINE_CHURN])
    baseline = churn_pipeline(seed).fit(wide(x_base[train_rows]), y[train_rows])
    p_recency = baseline.predict_proba(wide(x_base[held]))[:, positive_column(baseline)].astype(np.float64)
    return {
        "evaluation": CHURN_IN_PERIOD.format(h=horizon),
        "held_out_customers": int(held.sum()),
        "churn_rate": float(y[held].mean()),
        **evaluate.classification(y[held], p_all[held]),
        "baseline": {
            "model": f"Pareto/NBD P(no purchase in {horizon} days), fitted on the histories before the cutoff",
            **evaluate.classification(y[held], refs.p_none(refs.pareto, horizon)[held]),
        },
        "references": {
            "bg_nbd": {"model": f"BG/NBD P(no purchase in {horizon} days)",
                       **evaluate.classification(y[held], refs.p_none(refs.bgnbd, horizon)[held])},
            "recency_only": {"model": "scaler + logistic regression on recency_days",
                             **evaluate.classification(y[held], p_recency)},
        },
    }  # fmt: skip


def likely_churn_threshold(p: FloatArray) -> float:
    """``LIKELY_CHURN_RULE``: the step of 0.01 whose flagged share of ``p`` is closest to the target."""
    if not p.size:
        return 1.0
    steps = round(1 / LIKELY_CHURN_STEP)
    thresholds = np.arange(steps, -1, -1) / steps  # high to low: argmin keeps the higher one on a tie
    # The share at or above t is what lies left of t's place in sorted p: no steps-by-customers matrix.
    shares = (p.size - np.searchsorted(np.sort(p), thresholds, side="left")) / p.size
    return float(thresholds[int(np.argmin(np.abs(shares - LIKELY_CHURN_SHARE)))])


COUNT_NAMES = {"bg_nbd": "BG/NBD", "pareto_nbd": "Pareto/NBD"}
CORRECTION_NAMES = {
    "none": "",
    "spend_per_order": " x a spend-per-order factor",
    "level": " x a level factor",
    "orders_power": " x c max(orders, 1)^g",
    "orders_bucket": " x a factor by bucket of orders",
    "gg_by_orders": ", Gamma-Gamma weighted by orders",
    "gg_by_spend": ", Gamma-Gamma weighted by spend",
}


def _candidate_label(c: Candidate) -> str:
    if c.counts == BLEND:
        return f"blend: {c.weight:g} BG/NBD + {1 - (c.weight or 0):g} Pareto/NBD, x Gamma-Gamma"
    return f"{COUNT_NAMES[c.counts]} x Gamma-Gamma{CORRECTION_NAMES[c.correction]}"


def served_counts(served: Candidate) -> Counts:
    """The count model of a servable candidate (a blend is never served: the graph computes one count model)."""
    if served.counts == BLEND:
        raise ValueError("a blend of both count models cannot be served")
    counts: Counts = served.counts
    return counts


def served_closed_form(
    run: TrainingRun, x: npt.NDArray[Any], counts: Counts | None = None, learned: Learned | None = None
) -> tuple[FloatArray, FloatArray]:
    """(purchases, value) of the served graph with scipy in float64, for rows of the card's four features;
    or of the graph of ``counts`` with ``learned``. Parity tests and benchmarks compare the ONNX graph with it."""
    refs, served = run.references, run.value.choice.served()
    model = refs.model(counts or served_counts(served))
    learned = learned or served.learned
    recency, orders, tenure, per_order = np.asarray(x, dtype=np.float64).T
    purchases = model.expected(from_days(orders, recency, tenure), run.population.outcome_days / DAYS_PER_WEEK)
    gg = learned.gamma_gamma or refs.gamma_gamma
    return purchases, purchases * gg.expected(orders, per_order) * shape(learned, orders)


def _learned(c: Candidate) -> dict[str, Any]:
    """What a candidate learned beyond its factor, for the card."""
    found: dict[str, Any] = {}
    if c.learned.power:
        found["orders_power"] = c.learned.power
    if c.learned.buckets:
        found["bucket_factors"] = list(c.learned.buckets)
    if c.learned.gamma_gamma is not None:
        gg = c.learned.gamma_gamma
        found["gamma_gamma"] = {"p": gg.p, "q": gg.q, "gamma": gg.gamma}
    if c.weight is not None:
        found["bg_nbd_weight"] = c.weight
    return found


def _served_parameters(refs: References, served: Candidate) -> dict[str, Any]:
    return {**_parameters(refs), "spend_factor": served.factor, **_learned(served)}


def _value(  # noqa: PLR0917 - one step of train(), called once
    tx: Transactions,
    population: Population,
    candidates: dict[str, FeatureSpec],
    columns: dict[str, Matrix],
    refs: References,
    seed: int,
    info: TrainingInfo,
) -> tuple[Trained, Trained, ValueDetail]:
    """The served value model: the candidate ``VALUE_RULE`` picks, as an ONNX graph; purchases from the same graph."""
    horizon = population.outcome_days
    specs = pick(candidates, CLOSED_FORM)
    clip = specs[CLOSED_FORM.index("orders")].clip
    max_orders = clip[1] if clip else float(population.column("orders_total").max())
    tenure_clip = specs[CLOSED_FORM.index("tenure_days")].clip
    max_days = tenure_clip[1] if tenure_clip else float(population.feature_days)
    choice = value_choice(tx, population, refs, max_orders, max_days)
    served = choice.served()
    counts = served_counts(served)
    x_all = feature_matrix(specs, population)
    data = closed_form.to_onnx(
        "value",
        horizon,
        refs.model(counts),
        served.learned.gamma_gamma or refs.gamma_gamma,
        served.factor,
        orders_power=served.learned.power,
        max_orders=max_orders,
        max_days=max_days,
    )
    runner = Runner(data)
    out = runner.run(x_all)
    predicted_all = out["value"].reshape(-1).astype(np.float64)
    purchases_all = out["purchases"].reshape(-1).astype(np.float64)
    blank_row = no_history_row(specs, population.now)
    blank = runner.run(blank_row)
    _servable(out, blank, population.size)

    target = population.outcome_spend
    train_rows, held = population.training, population.held_out
    check = check_features("value", columns, target, train_rows & ~population.validation, population.validation)
    glm_specs = pick(candidates, [*RFM, *(n for n in EXTRAS if n in check.kept)])
    glm_x = feature_matrix(glm_specs, population)
    glm = value_pipeline(seed).fit(wide(glm_x[train_rows]), target[train_rows])

    actual, predicted = target[held], predicted_all[held]
    scale = horizon / population.feature_days
    baselines = {
        "bg_nbd": refs.value(refs.bgnbd, horizon)[held],
        "pareto_nbd": refs.value(refs.pareto, horizon)[held],
        "glm_in_period": glm.predict(wide(glm_x[held])).astype(np.float64),
        **_learned_backtest(tx, population, [s.name for s in glm_specs], seed),
        "past_spend": population.column("spend_total")[held] * scale,
        "zero": np.zeros(actual.shape),
    }
    model_metrics = {
        **evaluate.value_metrics(actual, predicted),
        "mean_actual": float(actual.mean()),
        "mean_predicted": float(predicted.mean()),
        "top10_squared_error_share": evaluate.top_error_share(actual, predicted),
    }
    intervals = {
        "rmse_minus_bg_nbd_90ci": list(
            evaluate.bootstrap_difference(actual, predicted, baselines["bg_nbd"], evaluate.rmse, seed=seed)
        ),
        "mae_minus_bg_nbd_90ci": list(
            evaluate.bootstrap_difference(actual, predicted, baselines["bg_nbd"], evaluate.mae, seed=seed)
        ),
    }
    base_metrics = {name: evaluate.value_metrics(actual, guess) for name, guess in baselines.items()}
    described = {
        "bg_nbd": "BG/NBD x Gamma-Gamma, fitted on the histories before the cutoff (the reference)",
        "pareto_nbd": "Pareto/NBD x Gamma-Gamma, fitted on the histories before the cutoff",
        "glm_in_period": "scaler + Poisson GLM on " + ", ".join(s.name for s in glm_specs)
        + f", fitted on the training customers' spend in the same {horizon} days (in period: secondary)",
        "glm_backtest": "the same GLM fitted at the churn backtest's cutoff on the spend of the days up to the "
        f"cutoff, served at the cutoff x {horizon} / those days (out of time)",
        "past_spend": f"spend before the cutoff x {horizon}/{population.feature_days} days",
        "zero": "nothing",
    }  # fmt: skip
    metrics: dict[str, Any] = {
        "evaluation": VALUE_EVALUATION,
        "held_out_customers": int(held.sum()),
        "served": served.name,
        **model_metrics,
        "parameters": _served_parameters(refs, served),
        "choice": _choice_metrics(choice),
        "baselines": {name: {"model": described[name], **base_metrics[name]} for name in baselines},
        "bootstrap": intervals,
        "feature_check": _check_metrics(check),
        "thresholds": {"high_value": HIGH_VALUE},
    }
    onnx_input, onnx_outputs = tensors(data)
    common: dict[str, Any] = {
        "specs": specs, "onnx_bytes": data, "onnx_input": onnx_input, "onnx_outputs": onnx_outputs, "training": info,
    }  # fmt: skip
    factor = f" x {served.factor:.4f}" if served.factor != 1.0 else ""
    factor += f" x max(orders, 1)^{served.learned.power:.4f}" if served.learned.power else ""
    factor += CORRECTION_NAMES[served.correction] if served.learned.gamma_gamma else ""
    value_card = build_card(
        name="value",
        kind="regressor",
        description=(
            f"Expected spend in dollars in the next {horizon} days: {COUNT_NAMES[counts]} expected purchases x "
            f"Gamma-Gamma expected spend per order{factor}, fitted by maximum likelihood on the training customers' "
            "purchases before the cutoff and computed in closed form by the ONNX graph; chosen among "
            f"{len(choice.at_cutoff)} candidates on a backtest that ends at the cutoff. Segment high_value: expected "
            f"spend >= {HIGH_VALUE:g} dollars, counted on all {population.size} customers with a purchase before the "
            "cutoff."
        ),
        output=OutputSpec(kind="value", tensor="value"),
        metrics=metrics,
        segments={"high_value": int((predicted_all >= HIGH_VALUE).sum())},
        **common,
    )
    purchases_card = _purchases_card(population, refs, counts, purchases_all, common)
    value = Trained("value", None, specs, data, value_card, x_all, predicted_all, float(blank["value"][0, 0]))
    purchases = Trained(
        "purchases", None, specs, data, purchases_card, x_all, purchases_all, float(blank["purchases"][0, 0])
    )
    detail = ValueDetail(check, actual, predicted, baselines, model_metrics, base_metrics, intervals, choice)
    return value, purchases, detail


def _servable(out: dict[str, npt.NDArray[Any]], blank: dict[str, npt.NDArray[Any]], customers: int) -> None:
    """Refuse a value graph that forecasts nan, inf or a negative number for a customer (``out``) or a visitor
    without orders (``blank``): serving would hand it to rules as a value (exit 0 was worse than no model)."""
    for name in ("purchases", "value"):
        found = np.concatenate([out[name].reshape(-1), blank[name].reshape(-1)])
        bad = found[~(np.isfinite(found) & (found >= 0))]
        if bad.size:
            raise ValueError(
                f"the fitted {name} model forecasts {bad[0]:g} for {bad.size} of {found.size} rows (the customers "
                f"and a visitor without orders): its fit on {customers} customers is degenerate or beyond what the "
                "ONNX graph computes; more customers or a longer history may help"
            )


def _learned_backtest(tx: Transactions, population: Population, names: list[str], seed: int) -> dict[str, FloatArray]:
    guess = value_backtest(tx, population, names, seed)
    return {} if guess is None else {"glm_backtest": guess[population.held_out]}


def _choice_metrics(choice: ValueChoice) -> dict[str, Any]:
    figures = ("mae", "rmse", "spearman", "top_decile_share", "total_ratio")
    return {
        "rule": VALUE_RULE,
        "q_days": choice.q,
        "candidates": {
            c.name: {
                "model": _candidate_label(c),
                "factor": c.factor,
                **_learned(c),
                "tuning": {k: choice.tuning[c.name][k] for k in figures} if choice.tuning else None,
                "cutoff": {k: choice.headline[c.name][k] for k in figures},
            }
            for c in choice.at_cutoff
        },
        "chosen": choice.chosen,
        "not_servable": list(choice.not_servable),
    }


def _purchases_card(
    population: Population, refs: References, counts: Counts, purchases: FloatArray, common: dict[str, Any]
) -> ModelCard:
    horizon, held = population.outcome_days, population.held_out
    actual = population.outcome_orders[held].astype(np.float64)
    other: Counts = "pareto_nbd" if counts == "bg_nbd" else "bg_nbd"
    metrics: dict[str, Any] = {
        "evaluation": VALUE_EVALUATION,
        "held_out_customers": int(held.sum()),
        "served": counts,
        **evaluate.value_metrics(actual, purchases[held]),
        "mean_actual": float(actual.mean()),
        "parameters": _parameters(refs),
        "baselines": {
            other: {
                "model": f"{COUNT_NAMES[other]} expected purchases (out of time)",
                **evaluate.value_metrics(actual, refs.purchases(other, horizon)[held]),
            }
        },
        "thresholds": {"repeat_buyer": REPEAT_PURCHASES},
    }
    return build_card(
        name="purchases",
        kind="regressor",
        description=(
            f"Expected number of orders (purchase days) in the next {horizon} days: the {COUNT_NAMES[counts]} part of "
            f"the value model's graph. Segment repeat_buyer: >= {REPEAT_PURCHASES:g} expected orders, counted on all "
            f"{population.size} customers with a purchase before the cutoff."
        ),
        output=OutputSpec(kind="value", tensor="purchases"),
        metrics=metrics,
        segments={"repeat_buyer": int((purchases >= REPEAT_PURCHASES).sum())},
        **common,
    )


def _parameters(refs: References) -> dict[str, Any]:
    return {
        "time_unit": "weeks",
        "bg_nbd": {"r": refs.bgnbd.r, "alpha": refs.bgnbd.alpha, "a": refs.bgnbd.a, "b": refs.bgnbd.b},
        "pareto_nbd": {"r": refs.pareto.r, "alpha": refs.pareto.alpha, "s": refs.pareto.s, "beta": refs.pareto.beta},
        "gamma_gamma": {"p": refs.gamma_gamma.p, "q": refs.gamma_gamma.q, "gamma": refs.gamma_gamma.gamma},
    }


def _check_metrics(check: FeatureCheck) -> dict[str, Any]:
    return {
        "metric": f"validation {check.metric}",
        "rfm": check.base,
        **{f"rfm+{name}": score for name, score in check.extras.items()},
        "kept": list(check.kept),
    }
