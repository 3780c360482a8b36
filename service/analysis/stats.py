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
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats

Num = Any  # a float or a numpy array of floats: every function broadcasts
FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05
POWER = 0.8
PLANNED_DAYS = 14.0  # the default plan of a sequential test: two whole weeks of looks, one a day
POINTS = 4  # grid points a standard deviation of a step in the boundaries' integration: z to 1e-5
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
    # No spread in either arm (none or all converted) measures no noise, it does not prove the lift:
    # a standard error of 0 would give p = 0. It is undefined, as gbstats' ZERO_NEGATIVE_VARIANCE.
    se = np.sqrt(np.where(variance > 0, variance, np.nan))
    return Lift(lift, se, welch_dof(a, b))


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


def confidence_sequence(lift: Lift, n: Num, tuning: Num, alpha: float = ALPHA) -> Interval:
    """An always-valid confidence sequence (the asymptotic normal mixture of Waudby-Smith et al.).

    It holds at every sample size at once, under continuous monitoring, so it may be looked at any
    time. ``tuning`` is the total sample size at which it is tightest (GrowthBook's sequential
    tuning parameter: set it to the planned size). Continuous validity costs: at 14 daily looks it
    spends about a fifth of ``alpha`` (docs/ANALYSIS.md). The p-value is the smallest alpha whose
    sequence excludes 0 (the inverse of the mixture's e-value).
    """
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    scaled = n * rho2 + 1
    s2 = lift.se**2 * n  # the variance of one visitor's contribution to the lift
    width = np.sqrt(s2) * np.sqrt(2 * scaled * np.log(np.sqrt(scaled) / alpha) / (n**2 * rho2))
    st2 = lift.lift**2 / lift.se**2
    log_e_value = rho2 * n * st2 / (2 * scaled) - np.log(scaled) / 2  # in logs: a clear winner overflows exp
    return Interval(lift.lift - width, lift.lift + width, np.exp(-np.maximum(log_e_value, 0.0)))


def spent(fraction: Num, alpha: float = ALPHA) -> Num:
    """The alpha spent by a share of the plan (Lan-DeMets, O'Brien-Fleming type): all of it at 1.

    Almost nothing goes to the first looks, where a small sample's lift is far from normal, so the
    last look is nearly as sharp as a fixed-horizon test; a large effect still stops a test early.
    """
    t = np.minimum(np.asarray(fraction, dtype=float), 1.0)
    z = -special.ndtri(alpha / 2) / np.sqrt(np.maximum(t, 1e-300))
    return 2 * special.ndtr(-z)


@lru_cache(maxsize=4096)
def boundaries(fractions: tuple[float, ...], alpha: float = ALPHA) -> FloatArray:
    """The |z| each look of a group-sequential test must reach, for looks at these shares of the plan.

    Look k spends spent(t_k) - spent(t_(k-1)) of alpha: the chance of a first crossing there, under
    no effect, with the z-statistic a Brownian motion in the share of the plan. That chance is
    integrated numerically over the values that survived the looks before (Armitage, McPherson and
    Rowe's recursion, Simpson's rule), so the error rate is ``alpha`` whatever the number of looks.
    The survivors of each prefix of looks are kept, so a report that adds a look a day (and one
    for now) costs one step per look.
    """
    if not fractions:
        return np.empty(0)
    before = _survivors(fractions[:-1], alpha)
    share = fractions[-1]
    if not share > before.share:
        raise ValueError(f"looks must be at growing shares of the plan, not {fractions}")
    sd = np.sqrt(share - before.share)
    grid, weights = _fine(before, sd)
    x = _crossing(grid, weights, sd, float(spent(share, alpha) - spent(before.share, alpha)), share)
    found = np.append(before.boundaries, x / np.sqrt(share))
    found.setflags(write=False)  # cached: shared by every caller
    return found


@dataclass(frozen=True)
class _Survived:
    """The sum's density after some looks, where it stayed inside every boundary so far."""

    share: float  # of the plan, at the last of the looks
    boundaries: FloatArray  # of those looks
    grid: FloatArray  # evenly spaced over ±the last boundary, on the sum's scale
    density: FloatArray  # at the grid points; before any look, a unit mass at 0


@lru_cache(maxsize=4096)
def _survivors(fractions: tuple[float, ...], alpha: float) -> _Survived:
    if not fractions:
        return _Survived(0.0, np.empty(0), np.zeros(1), np.ones(1))
    bounds = boundaries(fractions, alpha)
    before = _survivors(fractions[:-1], alpha)
    sd = float(np.sqrt(fractions[-1] - before.share))
    x = bounds[-1] * np.sqrt(fractions[-1])
    grid, weights = _fine(before, sd)
    if not np.isfinite(x):  # nothing spent at this look: all the mass goes on
        x = float(np.max(np.abs(grid))) + 9 * sd
    new = np.linspace(-x, x, max(51, int(np.ceil(2 * x / (sd / POINTS))) | 1))
    kernel = np.exp(-0.5 * ((new[:, None] - grid[None, :]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    return _Survived(fractions[-1], bounds, new, kernel @ weights)


def _fine(survived: _Survived, sd: float) -> tuple[FloatArray, FloatArray]:
    """The survivors' grid and Simpson weights (density times rule), refined to POINTS a step's ``sd``."""
    grid, density = survived.grid, survived.density
    if grid.size == 1:
        return grid, density
    if grid[1] - grid[0] > 1.5 * sd / POINTS:  # a step much shorter than the last: interpolate the smooth density
        fine = np.linspace(grid[0], grid[-1], int(np.ceil((grid[-1] - grid[0]) / (sd / POINTS))) | 1)
        grid, density = fine, np.interp(fine, grid, density)
    simpson = np.ones(grid.size)
    simpson[1:-1:2], simpson[2:-1:2] = 4, 2
    return grid, density * simpson * (grid[1] - grid[0]) / 3


def _crossing(grid: FloatArray, weights: FloatArray, sd: float, target: float, share: float) -> float:
    """The boundary, on the sum's scale, that a step of ``sd`` from the survivors crosses with chance ``target``."""
    if target <= 0:
        return float("inf")

    def excess(x: float) -> float:  # the chance of a first crossing of ±x here, less the target: falls in x
        return float(np.sum(weights * (special.ndtr((grid - x) / sd) + special.ndtr((-x - grid) / sd)))) - target

    if excess(0.0) <= 0:
        return 0.0
    # the survivors hold less mass than a free N(0, share), so the boundary lies near or below the free one's
    high = float(-special.ndtri(target / 2)) * np.sqrt(share) * 1.01 + 1e-9
    while excess(high) > 0:  # only by the rule's rounding
        high *= 1.1
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-12))


P_VALUE_LEVELS = np.geomspace(1e-8, 0.5, 31)  # the alphas the p-value of a look is read between (and 1 at z = 0)


def group_sequential(lift: Lift, fractions: tuple[float, ...], alpha: float = ALPHA) -> Interval:
    """The repeated confidence interval of the last of these looks, with its repeated p-value.

    The interval is lift ± boundary · se (Jennison and Turnbull): it covers the true lift at every
    look at once with chance 1 - alpha. The p-value is the smallest alpha whose boundary the look
    reaches, read between the boundaries at ``P_VALUE_LEVELS`` and ``alpha`` (exact at ``alpha``).
    """
    width = boundaries(fractions, alpha)[-1] * lift.se  # infinite while the looks have spent nothing
    levels = np.union1d(P_VALUE_LEVELS, [alpha])
    reached = np.array([boundaries(fractions, float(level))[-1] for level in levels])  # falls as alpha rises
    reached = np.minimum(reached, 1e3)  # a level with nothing spent yet: no z reaches it
    z = np.abs(lift.lift) / lift.se
    log_p = np.interp(-z, np.append(-reached, 0.0), np.append(np.log(levels), 0.0))
    return Interval(lift.lift - width, lift.lift + width, np.exp(log_p))


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
