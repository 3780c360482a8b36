"""The statistics of an experiment read from sufficient statistics: pure functions, numpy arrays welcome.

Each arm of a metric is summed up as ``Sums`` (visitors, the sum and sum of squares of the metric,
and the same of its pre-exposure covariate with the sum of products). Every function here takes
scalars or numpy arrays of equal shape, so a simulation of thousands of experiments is one call.

The lift is relative: (mean_b - mean_a) / mean_a, with its variance by the delta method. The
methods follow GrowthBook's stats engine where both have them (tests/analysis compare the two on
the same sums); docs/ANALYSIS.md names the papers and the one place we differ on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

Num = Any  # a float or a numpy array of floats: every function broadcasts
FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05
POWER = 0.8
SEQUENTIAL_TUNING = 5000.0  # the sample size the confidence sequence is tightest at (as in GrowthBook)
SRM_THRESHOLD = 0.001  # a sample-ratio-mismatch p-value below this flags the experiment


@dataclass(frozen=True)
class Sums:
    """Sufficient statistics of one arm for one metric (scalars or arrays of equal shape)."""

    n: Num
    sum: Num
    sum_squares: Num
    pre_sum: Num = 0.0
    pre_sum_squares: Num = 0.0
    sum_products: Num = 0.0

    @property
    def mean(self) -> Num:
        return self.sum / np.maximum(self.n, 1)

    @property
    def variance(self) -> Num:
        """The sample variance (n - 1), also for a conversion: one formula for every metric."""
        return _variance(self.n, self.sum, self.sum_squares)

    @property
    def pre_mean(self) -> Num:
        return self.pre_sum / np.maximum(self.n, 1)

    @property
    def pre_variance(self) -> Num:
        return _variance(self.n, self.pre_sum, self.pre_sum_squares)

    @property
    def covariance(self) -> Num:
        return (self.sum_products - self.sum * self.pre_sum / np.maximum(self.n, 1)) / np.maximum(self.n - 1, 1)

    def __add__(self, other: Sums) -> Sums:
        return Sums(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_squares + other.sum_squares,
            self.pre_sum + other.pre_sum,
            self.pre_sum_squares + other.pre_sum_squares,
            self.sum_products + other.sum_products,
        )


def _variance(n: Num, total: Num, squares: Num) -> Num:
    return np.maximum(squares - total * total / np.maximum(n, 1), 0.0) / np.maximum(n - 1, 1)


@dataclass(frozen=True)
class Estimate:
    """An arm's mean and the variance of one visitor's value around it (after CUPED, if applied)."""

    n: Num
    mean: Num  # what the lift is computed from
    variance: Num
    unadjusted_mean: Num  # the plain mean: the lift's denominator


def plain(sums: Sums) -> Estimate:
    return Estimate(sums.n, sums.mean, sums.variance, sums.mean)


def cuped(a: Sums, b: Sums) -> tuple[Estimate, Estimate]:
    """Both arms adjusted by the pre-exposure covariate with one θ, estimated on the arms pooled.

    θ = cov(y, x) / var(x). Subtracting θ·x removes the part of each visitor's value that the
    pre-period predicts; the difference of means keeps its expectation (x does not depend on the
    arm) and loses variance in proportion to corr(y, x)². Without covariate variance θ is 0.
    """
    pooled = a + b
    pre_variance = pooled.pre_variance
    theta = np.where(pre_variance > 0, pooled.covariance / np.where(pre_variance > 0, pre_variance, 1.0), 0.0)
    return _adjusted(a, theta), _adjusted(b, theta)


def _adjusted(s: Sums, theta: Num) -> Estimate:
    variance = s.variance + theta * theta * s.pre_variance - 2 * theta * s.covariance
    return Estimate(s.n, s.mean - theta * s.pre_mean, np.maximum(variance, 0.0), s.mean)


@dataclass(frozen=True)
class Lift:
    """The relative lift of b over a with its standard error, and the Welch degrees of freedom."""

    lift: Num
    se: Num
    dof: Num


def relative_lift(a: Estimate, b: Estimate) -> Lift:
    """(mean_b - mean_a) / mean_a; variance by the delta method for a ratio of independent means."""
    base = a.unadjusted_mean
    lift = (b.mean - a.mean) / base
    variance = b.variance / (base**2 * b.n) + a.variance * b.unadjusted_mean**2 / (base**4 * a.n)
    return Lift(lift, np.sqrt(variance), welch_dof(a, b))


def welch_dof(a: Estimate, b: Estimate) -> Num:
    """Welch-Satterthwaite degrees of freedom of the difference of two means."""
    va, vb = a.variance / a.n, b.variance / b.n
    return (va + vb) ** 2 / (va**2 / np.maximum(a.n - 1, 1) + vb**2 / np.maximum(b.n - 1, 1))


@dataclass(frozen=True)
class Interval:
    low: Num
    high: Num
    p_value: Num


def fixed_horizon(lift: Lift, alpha: float = ALPHA) -> Interval:
    """Welch's t-test on the relative lift: valid when the sample size was fixed in advance."""
    width = stats.t.ppf(1 - alpha / 2, lift.dof) * lift.se
    p_value = 2 * stats.t.sf(np.abs(lift.lift) / lift.se, lift.dof)
    return Interval(lift.lift - width, lift.lift + width, p_value)


def sequential(lift: Lift, n: Num, alpha: float = ALPHA, tuning: float = SEQUENTIAL_TUNING) -> Interval:
    """An always-valid confidence sequence (the asymptotic normal mixture of Waudby-Smith et al.).

    It holds at every sample size at once, so it may be looked at every day and a test stopped at
    any look without raising the error rate above ``alpha``. It is wider than the fixed-horizon
    interval; ``tuning`` is the total sample size at which it is tightest. The p-value is the
    smallest alpha whose sequence excludes 0 (the inverse of the mixture's e-value).
    """
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    scaled = n * rho2 + 1
    s2 = lift.se**2 * n  # the variance of one visitor's contribution to the lift
    width = np.sqrt(s2) * np.sqrt(2 * scaled * np.log(np.sqrt(scaled) / alpha) / (n**2 * rho2))
    st2 = lift.lift**2 / lift.se**2
    log_e_value = rho2 * n * st2 / (2 * scaled) - np.log(scaled) / 2  # in logs: a clear winner overflows exp
    return Interval(lift.lift - width, lift.lift + width, np.exp(-np.maximum(log_e_value, 0.0)))


@dataclass(frozen=True)
class Posterior:
    probability_to_beat: Num
    expected_loss: Num  # what choosing b costs in relative lift, on average, if b is in fact worse
    low: Num
    high: Num


def bayesian(lift: Lift, alpha: float = ALPHA) -> Posterior:
    """A normal posterior of the relative lift under a flat prior: N(lift, se²).

    The probability to beat the baseline is P(lift > 0); the expected loss of shipping b is
    E[max(0, -lift)], the risk GrowthBook reports for the variation.
    """
    mu, sigma = lift.lift, lift.se
    beat = stats.norm.sf(0, mu, sigma)
    loss = sigma * stats.norm.pdf(mu / sigma) - mu * stats.norm.cdf(-mu / sigma)
    z = stats.norm.ppf(1 - alpha / 2)
    return Posterior(beat, loss, mu - z * sigma, mu + z * sigma)


def benjamini_hochberg(p_values: Num) -> FloatArray:
    """p-values adjusted for the false discovery rate across a family of comparisons (step-up)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def srm_p_value(visitors: Num, weights: Num) -> Num:
    """Pearson's chi-square test of the visitors per arm against the arms' weights (last axis)."""
    counts = np.asarray(visitors, dtype=float)
    shares = np.asarray(weights, dtype=float)
    if counts.shape[-1] < 2:  # one arm seen so far: nothing to compare its share with
        return np.ones(counts.shape[:-1]) if counts.ndim > 1 else 1.0
    total = counts.sum(axis=-1, keepdims=True)
    expected = shares / shares.sum(axis=-1, keepdims=True) * total
    statistic = np.where(expected > 0, (counts - expected) ** 2 / np.where(expected > 0, expected, 1), 0).sum(axis=-1)
    return np.where(total[..., 0] > 0, stats.chi2.sf(statistic, counts.shape[-1] - 1), 1.0)


def mde(lift: Lift, alpha: float = ALPHA, power: float = POWER) -> Num:
    """The smallest relative lift the test would detect with ``power`` at its current size."""
    return (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * lift.se


def days_left(current_mde: Num, target: float, visitors: Num, days: Num) -> Num:
    """Days until the MDE reaches ``target`` at the traffic so far (the MDE shrinks as 1/√visitors)."""
    needed = visitors * (current_mde / target) ** 2
    per_day = visitors / np.maximum(days, 1e-9)
    return np.maximum(needed - visitors, 0) / np.maximum(per_day, 1e-9)
