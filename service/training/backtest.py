"""Out-of-time figures from the data before the cutoff: the value candidates, their choice, the churn backtest.

Nothing here reads an outcome on or after the cutoff ``T`` except to measure the headline figures.

* **Reference fits.** BG/NBD, Pareto/NBD and Gamma-Gamma fitted on the training customers' purchases
  before a cutoff (``References``), from the very features the closed-form graph is served.
* **Value candidates.** BG/NBD or Pareto/NBD expected purchases x Gamma-Gamma spend per order, each
  as it is, with its spend per order corrected, with its level corrected, with a shape by orders, or
  with Gamma-Gamma fitted with more weight on heavy buyers; and a blend of the two count models. A
  correction is learned on the last ``q`` days before the cutoff: the models are fitted at ``T - q``,
  forecast ``[T - q, T)``, and the factor is actual spend over forecast spend on the training
  customers (``spend_per_order`` divides by the actual orders times the Gamma-Gamma spend per order,
  ``level`` by the forecast spend); ``orders_power`` fits c x max(orders, 1)^g to that spend (Poisson
  deviance), ``orders_bucket`` takes the ratio of each bucket of orders (1, 2, 3-4, 5-7, 8+).
  ``gg_by_orders`` and ``gg_by_spend`` learn nothing from outcomes: Gamma-Gamma is refitted at the
  cutoff with each customer's likelihood weighted by orders or by spend. The blend's weight on BG/NBD
  (0, 0.1 .. 1) is the one the rule picks on the tuning backtest itself. ``q`` = ``min(h, W // 3)``
  days (``W`` the feature window).
* **The choice** (``VALUE_RULE``) is made on a tuning backtest that ends at ``T``: every candidate
  rebuilt at the cutoff ``T - q`` with the horizon ``q`` (corrections from ``[T - 2q, T - q)``) and
  scored on the held-out customers over ``[T - q, T)``.
* **A learned value model, out of time** (``value_backtest``, for the record): the in-period value GLM
  fitted the churn backtest's way, at ``T - b`` on the spend of ``[T - b, T)``, served at ``T`` and
  scaled by ``h / b``. The closed forms need no outcome window; a learned model needs one, and the
  longest the data allow is shorter than the horizon.
* **Churn backtest.** The churn model (same pipeline, same features) fitted at ``T - b`` on the
  outcomes in ``[T - b, T)``, served unchanged at ``T`` and measured over ``[T, T + b)``, with
  ``b`` = ``min(h, W // 2)`` (the fit needs at least ``b`` days of history before ``T - b``). At
  ``b = h`` it is the backtest of the served horizon; on CDNOW (W = 273 days) b = 136 days.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar

from service.core.models import FeatureSpec
from service.training import evaluate
from service.training.closed_form import bgnbd_exact, pareto_terms
from service.training.features import CLOSED_FORM, candidate_specs, feature_matrix, pick
from service.training.fit import churn_pipeline, positive_column, value_pipeline, wide
from service.training.reference import DAYS_PER_WEEK, BgNbd, GammaGamma, ParetoNbd, Rfm, from_days
from service.training.transactions import Population, Transactions, population_at

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Counts = Literal["bg_nbd", "pareto_nbd"]
Correction = Literal["none", "spend_per_order", "level", "orders_power", "orders_bucket", "gg_by_orders", "gg_by_spend"]
COUNTS: tuple[Counts, ...] = ("bg_nbd", "pareto_nbd")
CORRECTIONS: tuple[Correction, ...] = (
    "none", "spend_per_order", "level", "orders_power", "orders_bucket", "gg_by_orders", "gg_by_spend"
)  # fmt: skip
NOT_IN_GRAPH: tuple[Correction, ...] = ("orders_bucket",)  # the graph has no table of buckets
BUCKETS = (1.0, 2.0, 3.0, 5.0, 8.0)  # lower edges of the buckets of orders of ``orders_bucket``
BLEND: Literal["blend"] = "blend"
BLEND_WEIGHTS = tuple(i / 10 for i in range(11))  # BG/NBD's weight; the rest is Pareto/NBD's
POWER_BOUNDS = (-2.0, 2.0)
# The bounds on BG/NBD's a tried, largest first, when the free fit's graph is not exact (``exact_bgnbd``).
BGNBD_MAX_A = (100.0, 30.0, 10.0, 3.0, 1.5)  # a > 1: E[purchases] has a - 1 below
PLAIN = "bg_nbd"  # the reference every candidate is measured against, and the fallback
VALUE_WINDOWS = 3  # q = W // 3: the tuning backtest needs three windows before T (fit, correction, outcome)
CHURN_WINDOWS = 2  # b = W // 2: the churn fit at T - b needs b days of history
VALUE_RULE = (
    "served value model = the candidate the graph can compute with the lowest MAE / MAE(BG/NBD x GG) + RMSE / "
    "RMSE(BG/NBD x GG) on the tuning backtest (cutoff T - q, horizon q, scored on the held-out customers over "
    "[T - q, T); no data on or after T); plain BG/NBD x Gamma-Gamma when the data are too short for it"
)


@dataclass(frozen=True)
class References:
    """BG/NBD, Pareto/NBD and Gamma-Gamma fitted on the training customers' histories before the cutoff."""

    bgnbd: BgNbd
    pareto: ParetoNbd
    gamma_gamma: GammaGamma
    rfm: Rfm  # every customer of the population
    orders: FloatArray
    per_order: FloatArray

    def model(self, counts: Counts) -> BgNbd | ParetoNbd:
        return self.bgnbd if counts == "bg_nbd" else self.pareto

    def purchases(self, counts: Counts, horizon_days: int) -> FloatArray:
        return self.model(counts).expected(self.rfm, horizon_days / DAYS_PER_WEEK)

    def spend_per_order(self) -> FloatArray:
        return self.gamma_gamma.expected(self.orders, self.per_order)

    def value(self, model: BgNbd | ParetoNbd, horizon_days: int) -> FloatArray:
        return model.expected(self.rfm, horizon_days / DAYS_PER_WEEK) * self.spend_per_order()

    def p_none(self, model: BgNbd | ParetoNbd, horizon_days: int) -> FloatArray:
        return model.p_none(self.rfm, horizon_days / DAYS_PER_WEEK)


def references(population: Population, candidates: dict[str, FeatureSpec]) -> References:
    """The statistics from the very features the closed-form graph is served (clipped as serving clips)."""
    x = feature_matrix(pick(candidates, CLOSED_FORM), population).astype(np.float64)
    recency, orders, tenure, per_order = x.T
    rfm = from_days(orders, recency, tenure)
    rows = population.training
    fit_on = Rfm(rfm.x[rows], rfm.t_x[rows], rfm.T[rows])
    return References(
        exact_bgnbd(fit_on, population.outcome_days),
        ParetoNbd.fit(fit_on),
        GammaGamma.fit(orders[rows], per_order[rows]),
        rfm,
        orders,
        per_order,
    )


def exact_bgnbd(rfm: Rfm, horizon_days: int) -> BgNbd:
    """BG/NBD by maximum likelihood, or, when its graph would not sum its series (``bgnbd_exact``), the best fit
    with a at or below the largest of ``BGNBD_MAX_A`` whose graph does (the free fit if none does).

    On a shop of 20 customers whose dropout hardly varies, the likelihood is highest in the limit a, b -> inf at
    a fixed a / (a + b) (a = 140,230): the graph's terms then peak past a million terms and it forecast nan for
    every customer. Near that limit the likelihood is flat, so a bounded a loses next to nothing; CDNOW's free fit
    (a = 0.76) is exact and kept."""
    free = BgNbd.fit(rfm)
    if _is_exact(free, horizon_days):
        return free
    for max_a in (a for a in BGNBD_MAX_A if a < free.a):
        bounded = BgNbd.fit(rfm, max_a)
        if _is_exact(bounded, horizon_days):
            return bounded
    return free  # Pareto/NBD may still be served; with neither, train() refuses the run (``train._servable``)


def _is_exact(bg: BgNbd, horizon_days: int) -> bool:
    try:
        bgnbd_exact(bg, horizon_days)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Window:
    """References fitted at a cutoff and the outcomes of its horizon (the horizon ends at or before T)."""

    population: Population
    refs: References


def window(tx: Transactions, cutoff: Any, horizon_days: int) -> Window:
    population = population_at(tx, cutoff, horizon_days)
    if population.training.sum() < 2 or population.held_out.sum() < 1:
        raise ValueError(f"too few customers before {cutoff}")
    return Window(population, references(population, candidate_specs(population)))


@dataclass(frozen=True)
class Learned:
    """What a correction took from the q days before the cutoff it serves (or, for Gamma-Gamma, from the fit)."""

    factor: float = 1.0  # a constant on the value
    power: float = 0.0  # g of max(orders, 1)^g
    buckets: tuple[float, ...] = ()  # a factor for each bucket of orders
    gamma_gamma: GammaGamma | None = None  # instead of the references' fit


def bucket_of(orders: FloatArray) -> npt.NDArray[np.intp]:
    return np.searchsorted(BUCKETS, np.maximum(orders, BUCKETS[0]), side="right") - 1


def shape(learned: Learned, orders: FloatArray) -> FloatArray:
    """The per-customer multiplier of a correction: the factor, times max(orders, 1)^g or the bucket's."""
    by_orders = np.maximum(orders, 1.0) ** learned.power
    if learned.buckets:
        by_orders = by_orders * np.asarray(learned.buckets)[bucket_of(orders)]
    return np.asarray(learned.factor * by_orders, dtype=np.float64)


def weighted_gamma_gamma(refs: References, rows: BoolArray, by: Literal["orders", "spend"]) -> GammaGamma:
    orders, per_order = refs.orders[rows], refs.per_order[rows]
    return GammaGamma.fit(orders, per_order, orders if by == "orders" else orders * per_order)


def learned(earlier: Window, now: References, now_rows: BoolArray) -> dict[tuple[Counts, Correction], Learned]:
    """Each correction, from the fit at T - q and the training customers' spend over [T - q, T) (Gamma-Gamma's
    weighted refits from the training customers at T: ``now`` and ``now_rows``)."""
    pop, refs, rows = earlier.population, earlier.refs, earlier.population.training
    horizon = pop.outcome_days
    spend = pop.outcome_spend[rows]
    by = {"gg_by_orders": weighted_gamma_gamma(now, now_rows, "orders"),
          "gg_by_spend": weighted_gamma_gamma(now, now_rows, "spend")}  # fmt: skip
    with np.errstate(all="ignore"):  # a degenerate fit on little data forecasts inf or nan: that factor stays 1
        per_order = float((pop.outcome_orders[rows] * refs.spend_per_order()[rows]).sum())
        out: dict[tuple[Counts, Correction], Learned] = {}
        for counts in COUNTS:
            forecast = refs.value(refs.model(counts), horizon)[rows]
            orders = refs.orders[rows]
            out[counts, "none"] = Learned()
            out[counts, "spend_per_order"] = Learned(_ratio(float(spend.sum()), per_order))
            out[counts, "level"] = Learned(_ratio(float(spend.sum()), float(forecast.sum())))
            out[counts, "orders_power"] = _power(spend, forecast, orders)
            out[counts, "orders_bucket"] = _buckets(spend, forecast, orders)
            out[counts, "gg_by_orders"] = Learned(gamma_gamma=by["gg_by_orders"])
            out[counts, "gg_by_spend"] = Learned(gamma_gamma=by["gg_by_spend"])
    return out


def _ratio(actual: float, forecast: float) -> float:
    ratio = actual / forecast if forecast > 0 and np.isfinite(forecast) else 1.0
    return ratio if np.isfinite(ratio) and ratio > 0 else 1.0


def _power(spend: FloatArray, forecast: FloatArray, orders: FloatArray) -> Learned:
    """c and g of c max(orders, 1)^g x forecast with the least Poisson deviance (c matches the totals)."""
    if not np.isfinite(forecast).all() or forecast.sum() <= 0:
        return Learned()
    log_orders = np.log(np.maximum(orders, 1.0))

    def deviance(g: float) -> float:
        mu = forecast * np.exp(g * log_orders)
        mu = mu * (spend.sum() / mu.sum())
        return float(np.sum(mu - spend * np.log(np.maximum(mu, 1e-300))))

    g = float(minimize_scalar(deviance, bounds=POWER_BOUNDS, method="bounded", options={"xatol": 1e-6}).x)
    c = _ratio(float(spend.sum()), float((forecast * np.exp(g * log_orders)).sum()))
    return Learned(c, g)


def _buckets(spend: FloatArray, forecast: FloatArray, orders: FloatArray) -> Learned:
    which = bucket_of(orders)
    ratios = [_ratio(float(spend[which == b].sum()), float(forecast[which == b].sum())) for b in range(len(BUCKETS))]
    return Learned(buckets=tuple(ratios))


def candidate_name(counts: Counts | Literal["blend"], correction: Correction) -> str:
    return counts if correction == "none" else f"{counts}+{correction}"


@dataclass(frozen=True)
class Candidate:
    counts: Counts | Literal["blend"]
    correction: Correction
    learned: Learned
    predicted: FloatArray  # every customer of the population
    weight: float | None = None  # a blend's weight on BG/NBD

    @property
    def name(self) -> str:
        return candidate_name(self.counts, self.correction)

    @property
    def factor(self) -> float:
        return self.learned.factor


def candidates(
    refs: References, horizon_days: int, fitted: dict[tuple[Counts, Correction], Learned]
) -> list[Candidate]:
    """Every count model with every correction (the blend is added by ``with_blend``)."""
    found: list[Candidate] = []
    with np.errstate(all="ignore"):  # non-finite forecasts of a degenerate fit are kept, and never chosen
        for counts in COUNTS:
            purchases = refs.purchases(counts, horizon_days)
            for correction in CORRECTIONS:
                fit = fitted[counts, correction]
                gg = fit.gamma_gamma or refs.gamma_gamma
                per_order = gg.expected(refs.orders, refs.per_order)
                found.append(Candidate(counts, correction, fit, purchases * per_order * shape(fit, refs.orders)))
    return found


def blend(found: list[Candidate], weight: float) -> Candidate:
    plain = {c.counts: c.predicted for c in found if c.correction == "none"}
    with np.errstate(all="ignore"):  # a degenerate fit's inf stays non-finite: scored nan, never chosen
        mixed = weight * plain["bg_nbd"] + (1 - weight) * plain["pareto_nbd"]
    return Candidate(BLEND, "none", Learned(), mixed, weight)


UNSCORED = dict.fromkeys(("mae", "rmse", "spearman", "top_decile_share", "total_ratio"), float("nan"))


def scored(population: Population, found: list[Candidate]) -> dict[str, dict[str, float]]:
    """Each candidate's figures on the held-out customers; nan for one with a non-finite forecast."""
    held = population.held_out
    actual = population.outcome_spend[held]
    return {
        c.name: evaluate.value_metrics(actual, c.predicted[held]) if np.isfinite(c.predicted).all() else UNSCORED
        for c in found
    }


def choose(tuning: dict[str, dict[str, float]], eligible: set[str] | None = None) -> str:
    """``VALUE_RULE``: the lowest MAE and RMSE relative to plain BG/NBD x Gamma-Gamma (first listed on a tie),
    among the ``eligible`` candidates with finite figures (by default all of them)."""
    plain = tuning[PLAIN]

    def cost(name: str) -> float:
        m = tuning[name]
        return m["mae"] / plain["mae"] + m["rmse"] / plain["rmse"]

    costs = {name: cost(name) for name in tuning if eligible is None or name in eligible}
    finite = {name: value for name, value in costs.items() if np.isfinite(value)}
    return min(finite, key=lambda name: finite[name]) if finite else PLAIN


def blend_weight(population: Population, found: list[Candidate]) -> float:
    """The blend's weight on BG/NBD that ``VALUE_RULE`` picks on this (tuning) backtest (the lowest on a tie)."""
    tuning = scored(population, [c for c in found if c.name == PLAIN])
    for weight in BLEND_WEIGHTS:
        tuning[f"{weight}"] = scored(population, [blend(found, weight)])[BLEND]
    best = choose(tuning, {f"{weight}" for weight in BLEND_WEIGHTS})
    return 1.0 if best == PLAIN else float(best)  # no finite figure: plain BG/NBD


@dataclass(frozen=True)
class ValueChoice:
    """The candidates at the cutoff, their figures on the tuning backtest and at the cutoff, and the one served."""

    q: int | None
    at_cutoff: list[Candidate]
    headline: dict[str, dict[str, float]]
    tuning: dict[str, dict[str, float]]
    chosen: str
    not_servable: tuple[str, ...] = ()  # forecasts that are not finite, or a form the graph does not compute

    def served(self) -> Candidate:
        return next(c for c in self.at_cutoff if c.name == self.chosen)


def value_choice(
    tx: Transactions, population: Population, refs: References, max_orders: float, max_days: float | None = None
) -> ValueChoice:
    """Every candidate at the cutoff, and the one ``VALUE_RULE`` picks on the tuning backtest among those
    that can be served: finite at the cutoff, a form the graph computes (one count model, no buckets), and a
    graph that sums its series exactly (``_exact_counts``) for rows with up to ``max_orders`` orders and
    ``max_days`` of tenure (by default the feature window)."""
    horizon = population.outcome_days
    q = min(horizon, population.feature_days // VALUE_WINDOWS)
    exact = _exact_counts(refs, max_orders, float(max_days or population.feature_days), horizon)
    try:
        last = window(tx, population.cutoff - timedelta(days=q), q)  # T - q .. T
        before = window(tx, population.cutoff - timedelta(days=2 * q), q)  # T - 2q .. T - q
    except ValueError:
        # No tuning backtest: plain BG/NBD, or plain Pareto/NBD when only its graph is exact (a tiny shop's
        # BG/NBD fit can be degenerate, and its graph forecast nan for every customer).
        plain = [c for c in candidates(refs, horizon, _unlearned()) if c.correction == "none"]
        servable = _servable_names(plain, exact)
        chosen = next((c.name for c in plain if c.name in servable), PLAIN)
        unservable = tuple(c.name for c in plain if c.name not in servable)
        return ValueChoice(None, plain, scored(population, plain), {}, chosen, unservable)
    at_tuning = candidates(last.refs, q, learned(before, last.refs, last.population.training))
    weight = blend_weight(last.population, at_tuning)
    at_tuning.append(blend(at_tuning, weight))
    at_cutoff = candidates(refs, horizon, learned(last, refs, population.training))
    at_cutoff.append(blend(at_cutoff, weight))
    tuning = scored(last.population, at_tuning)
    servable = _servable_names(at_cutoff, exact)
    unservable = tuple(c.name for c in at_cutoff if c.name not in servable)
    chosen = choose(tuning, servable)
    return ValueChoice(q, at_cutoff, scored(population, at_cutoff), tuning, chosen, unservable)


def _servable_names(found: list[Candidate], exact: set[str]) -> set[str]:
    """The candidates the graph can serve: finite at the cutoff, one exact count model, a correction it computes."""
    return {
        c.name
        for c in found
        if np.isfinite(c.predicted).all() and c.counts in exact and c.correction not in NOT_IN_GRAPH
    }


def _unlearned() -> dict[tuple[Counts, Correction], Learned]:
    return {(c, k): Learned() for c in COUNTS for k in CORRECTIONS}


def _exact_counts(refs: References, max_orders: float, max_days: float, horizon_days: int) -> set[str]:
    """The count models whose graph sums its series exactly: a fit whose 2F1 converges too slowly, or would
    overflow, in a graph is not served (the other one may be; with neither, ``train._servable`` refuses the run)."""
    exact: set[str] = set()
    with contextlib.suppress(ValueError):
        bgnbd_exact(refs.bgnbd, horizon_days)
        exact.add("bg_nbd")
    with contextlib.suppress(ValueError):
        pareto_terms(refs.pareto, max_orders, max_days)
        exact.add("pareto_nbd")
    return exact


@dataclass(frozen=True)
class ChurnBacktest:
    b: int
    fit_cutoff: Any
    y: FloatArray  # held-out customers at T: no purchase in [T, T + b)
    p: FloatArray
    references: dict[str, FloatArray]
    metrics: dict[str, float]
    reference_metrics: dict[str, dict[str, float]]


def backtest_days(population: Population) -> int:
    """``b`` of the churn and learned value backtests: the horizon, or half the feature window if shorter."""
    return min(population.outcome_days, population.feature_days // CHURN_WINDOWS)


def churn_backtest(
    tx: Transactions, population: Population, refs: References, names: list[str], seed: int
) -> ChurnBacktest | None:
    """The churn pipeline fitted at T - b on [T - b, T), served unchanged at T, measured over [T, T + b)."""
    b = backtest_days(population)
    fit_cutoff = population.cutoff - timedelta(days=b)
    try:
        earlier = population_at(tx, fit_cutoff, b)
        now = population_at(tx, population.cutoff, b)
    except ValueError:
        return None
    y_fit = earlier.churned[earlier.training].astype(np.float64)
    if len(set(y_fit.tolist())) < 2 or now.held_out.sum() < 1:
        return None
    specs = pick(candidate_specs(earlier), names)  # the model's card at T - b: its own clips, served unchanged
    pipeline = churn_pipeline(seed).fit(wide(feature_matrix(specs, earlier)[earlier.training]), y_fit)
    held = now.held_out
    p = pipeline.predict_proba(wide(feature_matrix(specs, now)[held]))[:, positive_column(pipeline)]
    y = now.churned[held].astype(np.float64)
    refs_p = {"pareto_nbd": refs.p_none(refs.pareto, b)[held], "bg_nbd": refs.p_none(refs.bgnbd, b)[held]}
    return ChurnBacktest(
        b,
        fit_cutoff,
        y,
        p.astype(np.float64),
        refs_p,
        evaluate.classification(y, p),
        {name: evaluate.classification(y, guess) for name, guess in refs_p.items()},
    )


def value_backtest(tx: Transactions, population: Population, names: list[str], seed: int) -> FloatArray | None:
    """The value GLM fitted at T - b on the spend of [T - b, T) and scaled by h / b, for every customer at T."""
    b = backtest_days(population)
    try:
        earlier = population_at(tx, population.cutoff - timedelta(days=b), b)
    except ValueError:
        return None
    if not earlier.outcome_spend[earlier.training].any():
        return None
    specs = pick(candidate_specs(earlier), names)  # its card at T - b, served unchanged
    fit_rows = earlier.training
    pipeline = value_pipeline(seed).fit(wide(feature_matrix(specs, earlier)[fit_rows]), earlier.outcome_spend[fit_rows])
    guess = pipeline.predict(wide(feature_matrix(specs, population))).astype(np.float64)
    return np.asarray(guess * population.outcome_days / b, dtype=np.float64)
