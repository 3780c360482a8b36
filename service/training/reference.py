"""The reference models of customer-base analysis, fitted by maximum likelihood with scipy.

* BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): purchases at rate
  lambda ~ Gamma(r, alpha) while alive; after each purchase the customer drops out with
  probability p ~ Beta(a, b).
* Pareto/NBD (Schmittlein, Morrison & Colombo 1987): the same purchases, and a lifetime
  ~ Exponential(mu) with mu ~ Gamma(s, beta).
* Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): a customer's mean order value
  given n orders, with a Gamma(p, nu) spread around a mean nu ~ Gamma(q, gamma).

Inputs are the sufficient statistics per customer: ``x`` repeat purchases (orders - 1), ``t_x``
the time from the first to the last purchase, ``T`` the time from the first purchase to the
cutoff, in weeks. The likelihoods are written from the papers' closed forms; parameters are
optimised on their logarithms (all are positive) with L-BFGS-B from a fixed start, so a fit is
deterministic.

The probability of no purchase in the next ``t`` is the ratio of two likelihoods: having made the
observed purchases and none until ``T + t``, over having made them and none until ``T``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from service.training.transactions import Transactions, first_and_last, to_day

FloatArray = npt.NDArray[np.float64]
DAYS_PER_WEEK = 7.0
_FIT_TOL = 1e-15
_GRAD_TOL = 1e-8
_START = 1.0  # every parameter starts at 1 (log 0): no data-dependent start, no randomness
# Some likelihoods are highest in a limit: with nobody dropping out, BG/NBD's a and b run to 0 at a
# fixed ratio. There the closed forms lose every digit (hyp2f1 next to its pole gives inf or nan),
# while at 1e-8 they agree with the limit to 6 digits and the likelihood is as high.
_FLOOR = 1e-8
# Gamma-Gamma's expected spend per order, (gamma + m n) p / (p n + q - 1), is a mean only for q > 1 (the
# spread of customers' mean order values has no finite mean below it): a visitor without orders gets
# p gamma / (q - 1). Very heavy-tailed spend fitted q = 0.85 and served negative spend, and spend of 0
# everywhere left q at its start of 1 and served inf. The fit keeps q at or above 1.01: on that heavy
# shop (one order of 623,169 among 820, 1,323 per order on average) a visitor's prior is then 2,033 per
# order, 1.5 times that average; at 1.001 it would be 20,098, 15 times it.
GG_MIN_Q = 1.01


@dataclass(frozen=True)
class Rfm:
    """Sufficient statistics (weeks) of each customer at a cutoff."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray  # the papers' name


def from_days(orders: FloatArray, recency_days: FloatArray, tenure_days: FloatArray) -> Rfm:
    """Statistics from orders so far, days since the last and since the first purchase."""
    x = np.maximum(orders - 1.0, 0.0)
    tenure = np.maximum(tenure_days, recency_days)  # the first purchase is never after the last
    return Rfm(x, (tenure - recency_days) / DAYS_PER_WEEK, tenure / DAYS_PER_WEEK)


def rfm_at(tx: Transactions, cutoff: date, day_offset: int = 0) -> Rfm:
    """Statistics of every customer with a purchase before ``cutoff``, in ``tx.customers`` order;
    ``T`` runs to ``day_offset`` days before the cutoff (1: to the last day before it, as the papers do)."""
    cut = to_day(cutoff)
    before = tx.day < cut
    n = len(tx.customers)
    first, last = first_and_last(tx, before)
    days = np.unique(np.stack([tx.customer[before], tx.day[before]], axis=1), axis=0)
    orders = np.bincount(days[:, 0], minlength=n).astype(np.float64)
    members = orders > 0  # a row before the cutoff (days before 1970 are negative: no sign test)
    end = float(cut - day_offset)
    tenure, recency = end - first[members], end - last[members]
    return from_days(orders[members], recency.astype(np.float64), tenure.astype(np.float64))


def _fit(
    loglik: Callable[..., FloatArray],
    n_params: int,
    data: tuple[object, ...],
    lower: FloatArray | None = None,
    upper: FloatArray | None = None,
) -> FloatArray:
    """Maximum likelihood from the fixed start; with ``lower`` (``upper``), each parameter at or above (below)
    its bound (the start moved to it: a bounded fit starts inside its domain)."""

    def objective(log_params: FloatArray) -> float:
        with np.errstate(all="ignore"):  # the optimiser's trial steps may leave the domain: they score +inf
            value = -float(np.sum(loglik(np.exp(log_params), *data)))
        return value if np.isfinite(value) else 1e300

    start = np.full(n_params, np.log(_START))
    options = {"ftol": _FIT_TOL, "gtol": _GRAD_TOL, "maxiter": 500}
    if lower is None and upper is None:
        result = minimize(objective, start, method="L-BFGS-B", options=options)
    else:
        floor = np.log(lower) if lower is not None else np.full(n_params, -np.inf)
        ceiling = np.log(upper) if upper is not None else np.full(n_params, np.inf)
        bounds = [(_bound(low), _bound(high)) for low, high in zip(floor, ceiling, strict=True)]
        inside = np.minimum(np.maximum(start, floor), ceiling)
        result = minimize(objective, inside, method="L-BFGS-B", bounds=bounds, options=options)
    return np.maximum(np.exp(np.asarray(result.x, dtype=np.float64)), _FLOOR)


def _bound(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# --- BG/NBD -------------------------------------------------------------------------------------


def bgnbd_loglik(params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:  # noqa: N803
    r, alpha, a, b = params
    base = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    alive = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    dropped = np.where(
        repeat, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return np.asarray(base + np.logaddexp(alive, dropped), dtype=np.float64)


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(cls, rfm: Rfm, max_a: float | None = None) -> BgNbd:
        """Maximum likelihood; with ``max_a``, a at or below it (``backtest.exact_bgnbd`` says why)."""
        upper = None if max_a is None else np.array([np.inf, np.inf, max_a, np.inf])
        return cls(*(float(v) for v in _fit(bgnbd_loglik, 4, (rfm.x, rfm.t_x, rfm.T), upper=upper)))

    @property
    def params(self) -> FloatArray:
        return np.array([self.r, self.alpha, self.a, self.b])

    def p_alive(self, rfm: Rfm) -> FloatArray:
        r, alpha, a, b = self.params
        odds = np.where(
            rfm.x > 0, a / np.maximum(b + rfm.x - 1, 1e-300) * ((alpha + rfm.T) / (alpha + rfm.t_x)) ** (r + rfm.x), 0
        )
        return np.asarray(1.0 / (1.0 + odds), dtype=np.float64)

    def expected(self, rfm: Rfm, t: float) -> FloatArray:
        """Expected purchases in the next ``t`` weeks."""
        r, alpha, a, b = self.params
        x, big_t = rfm.x, rfm.T
        z = t / (alpha + big_t + t)
        series = hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        bracket = 1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * series
        return np.asarray(head * bracket * self.p_alive(rfm), dtype=np.float64)

    def p_none(self, rfm: Rfm, t: float) -> FloatArray:
        """Probability of no purchase in the next ``t`` weeks."""
        later = bgnbd_loglik(self.params, rfm.x, rfm.t_x, rfm.T + t)
        return np.asarray(np.exp(later - bgnbd_loglik(self.params, rfm.x, rfm.t_x, rfm.T)), dtype=np.float64)


# --- Pareto/NBD ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """The distinct (x, u) of the customers, and each customer's row among them. hyp2f1 takes
    milliseconds per value in parts of the parameter space an optimiser visits, and 23,570 CDNOW
    customers share 1,726 (x, t_x) and 979 (x, T): each value is computed once."""

    x: FloatArray
    u: FloatArray
    row: npt.NDArray[np.intp]


def pairs(x: FloatArray, u: FloatArray) -> Pairs:
    distinct, row = np.unique(np.column_stack((x, u)), axis=0, return_inverse=True)
    return Pairs(distinct[:, 0].copy(), distinct[:, 1].copy(), row.reshape(-1))


def pnbd_loglik(  # noqa: PLR0917 - the likelihood's four statistics and their two pairings
    params: FloatArray,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,  # noqa: N803
    at_t_x: Pairs | None = None,
    at_T: Pairs | None = None,  # noqa: N803
) -> FloatArray:
    r, alpha, s, beta = params
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    top = r + s + x
    # A0 as a difference of two positive terms: integral of the hazard between t_x and T.
    early = _a0_part(params, at_t_x or pairs(x, t_x))
    late = _a0_part(params, at_T or pairs(x, T))
    gap = early + np.log(-np.expm1(np.minimum(late - early, -1e-300)))
    dropped = np.log(s) - np.log(top) + gap
    return np.asarray(head + np.logaddexp(alive, dropped), dtype=np.float64)


def _a0_part(params: FloatArray, at: Pairs) -> FloatArray:
    """log 2F1(top, second; top + 1; (big - small) / (big + u)) - top log(big + u), per customer."""
    r, alpha, s, beta = params
    big, small = (alpha, beta) if alpha >= beta else (beta, alpha)
    second = s + 1 if alpha >= beta else r + at.x
    top = r + s + at.x
    value = np.log(hyp2f1(top, second, top + 1, (big - small) / (big + at.u))) - top * np.log(big + at.u)
    return np.asarray(value[at.row], dtype=np.float64)


@dataclass(frozen=True)
class ParetoNbd:
    r: float
    alpha: float
    s: float
    beta: float

    @classmethod
    def fit(cls, rfm: Rfm) -> ParetoNbd:
        data = (rfm.x, rfm.t_x, rfm.T, pairs(rfm.x, rfm.t_x), pairs(rfm.x, rfm.T))
        return cls(*(float(v) for v in _fit(pnbd_loglik, 4, data)))

    @property
    def params(self) -> FloatArray:
        return np.array([self.r, self.alpha, self.s, self.beta])

    def p_alive(self, rfm: Rfm) -> FloatArray:
        r, alpha, s, beta = self.params
        head = gammaln(r + rfm.x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = head - (r + rfm.x) * np.log(alpha + rfm.T) - s * np.log(beta + rfm.T)
        return np.asarray(np.exp(alive - pnbd_loglik(self.params, rfm.x, rfm.t_x, rfm.T)), dtype=np.float64)

    def expected(self, rfm: Rfm, t: float) -> FloatArray:
        r, alpha, s, beta = self.params
        rate = (r + rfm.x) * (beta + rfm.T) / ((alpha + rfm.T) * (s - 1))
        rest = 1 - ((beta + rfm.T) / (beta + rfm.T + t)) ** (s - 1)
        return np.asarray(self.p_alive(rfm) * rate * rest, dtype=np.float64)

    def p_none(self, rfm: Rfm, t: float) -> FloatArray:
        later = pnbd_loglik(self.params, rfm.x, rfm.t_x, rfm.T + t)
        return np.asarray(np.exp(later - pnbd_loglik(self.params, rfm.x, rfm.t_x, rfm.T)), dtype=np.float64)


# --- Gamma-Gamma --------------------------------------------------------------------------------


def gg_loglik(params: FloatArray, n: FloatArray, m: FloatArray) -> FloatArray:
    p, q, gamma = params
    return np.asarray(
        gammaln(p * n + q)
        - gammaln(p * n)
        - gammaln(q)
        + q * np.log(gamma)
        + (p * n - 1) * np.log(m)
        + p * n * np.log(n)
        - (p * n + q) * np.log(gamma + m * n),
        dtype=np.float64,
    )


def _weighted_gg(params: FloatArray, n: FloatArray, m: FloatArray, weights: FloatArray) -> FloatArray:
    return np.asarray(weights * gg_loglik(params, n, m), dtype=np.float64)


@dataclass(frozen=True)
class GammaGamma:
    """Mean order value of a customer given ``n`` orders averaging ``m`` (orders with spend > 0)."""

    p: float
    q: float
    gamma: float

    @classmethod
    def fit(cls, n: FloatArray, m: FloatArray, weights: FloatArray | None = None) -> GammaGamma:
        """Maximum likelihood with q >= ``GG_MIN_Q``; with ``weights``, each customer's log-likelihood counts
        that many times. The unbounded fit is kept when it is inside (CDNOW's is: its models are unchanged)."""
        keep = (n > 0) & (m > 0)
        loglik, data = (
            (gg_loglik, (n[keep], m[keep])) if weights is None else (_weighted_gg, (n[keep], m[keep], weights[keep]))
        )
        found = cls(*(float(v) for v in _fit(loglik, 3, data)))
        if found.q >= GG_MIN_Q:
            return found
        lower = np.array([_FLOOR, GG_MIN_Q, _FLOOR])
        return cls(*(float(v) for v in _fit(loglik, 3, data, lower)))

    def expected(self, n: FloatArray, m: FloatArray) -> FloatArray:
        p, q, gamma = self.p, self.q, self.gamma
        return np.asarray((gamma + m * n) * p / (p * n + q - 1), dtype=np.float64)
