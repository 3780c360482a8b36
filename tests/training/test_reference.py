"""The reference models reproduce their published fits on the 2,357-customer CDNOW sample."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from service.training.reference import BgNbd, GammaGamma, ParetoNbd, Rfm, _fit, bgnbd_loglik, rfm_at
from service.training.transactions import Transactions

from .conftest import ROOT

SAMPLE = ROOT / "data" / "cdnow" / "CDNOW_sample_ids.txt"
CALIBRATION_END = date(1997, 10, 1)  # the papers' calibration period is the 39 weeks up to 1997-09-30


@pytest.fixture(scope="module")
def sample(cdnow: Transactions) -> Rfm:
    ids = [line for line in SAMPLE.read_text().splitlines() if not line.startswith("#")]
    subset = cdnow.only(ids)
    assert (len(subset.customers), subset.rows) == (2357, 6919)  # the sample's event log: every customer, every row
    # The papers measure T up to the last calibration day (1997-09-30), one day short of our cutoff.
    return rfm_at(subset, CALIBRATION_END, day_offset=1)


def test_bgnbd_gives_the_published_parameters_and_likelihood(sample: Rfm) -> None:
    """Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4."""
    model = BgNbd.fit(sample)
    assert np.round(model.params, 3).tolist() == [0.243, 4.414, 0.793, 2.426]
    assert round(float(bgnbd_loglik(model.params, sample.x, sample.t_x, sample.T).sum()), 1) == -9582.4


def test_pareto_nbd_gives_the_published_parameters(sample: Rfm) -> None:
    """Fader & Hardie's Pareto/NBD note: r = 0.5533, alpha = 10.5802, s = 0.6061, beta = 11.6656.

    The likelihood is flat along alpha and beta: the optimum found here is 0.02 % away from the
    published one with a log-likelihood within 0.001, so those two are compared to 0.1 %."""
    model = ParetoNbd.fit(sample)
    assert round(model.r, 3) == 0.553
    assert round(model.s, 3) == 0.606
    np.testing.assert_allclose([model.alpha, model.beta], [10.5802, 11.6656], rtol=1e-3)


def test_predictions_are_consistent(sample: Rfm) -> None:
    """Expected purchases grow with the horizon; P(no purchase) falls with it; both stay in range."""
    for model in (BgNbd.fit(sample), ParetoNbd.fit(sample)):
        short, long = model.expected(sample, 13.0), model.expected(sample, 39.0)
        assert np.all(short >= 0)
        assert np.all(long >= short)
        p13, p39 = model.p_none(sample, 13.0), model.p_none(sample, 39.0)
        assert np.all((p39 >= 0) & (p39 <= p13) & (p13 <= 1))
        alive = model.p_alive(sample)
        assert np.all(p39 >= 1 - alive - 1e-12)  # a customer who is gone buys nothing


def test_gamma_gamma_shrinks_towards_the_population_mean() -> None:
    model = GammaGamma(p=6.25, q=3.74, gamma=15.44)  # the published CDNOW sample fit
    population_mean = model.p * model.gamma / (model.q - 1)
    one, many = model.expected(np.array([1.0, 50.0]), np.array([100.0, 100.0]))
    assert population_mean < one < many < 100.0


def test_gamma_gamma_weights_count_each_customer_that_many_times() -> None:
    """Weight 2 on a customer is the same fit as that customer listed twice; unit weights are the plain fit."""
    rng = np.random.default_rng(3)
    n = rng.integers(1, 8, 300).astype(np.float64)
    m = rng.gamma(4.0, 10.0, 300)
    twice = np.concatenate([n[:100], n]), np.concatenate([m[:100], m])
    weights = np.where(np.arange(300) < 100, 2.0, 1.0)
    for ours, theirs in ((GammaGamma.fit(n, m, weights), GammaGamma.fit(*twice)),
                         (GammaGamma.fit(n, m, np.ones(300)), GammaGamma.fit(n, m))):  # fmt: skip
        np.testing.assert_allclose([ours.p, ours.q, ours.gamma], [theirs.p, theirs.q, theirs.gamma], rtol=1e-4)


def _loyal(seed: int, customers: int = 300) -> Rfm:
    """Customers who all stay: Poisson purchases at their own rate from their first purchase to T."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(20, 60, customers)
    rate = rng.gamma(2.0, 0.1, customers)
    times = [np.sort(rng.uniform(0, t, rng.poisson(lam * t))) for t, lam in zip(big_t, rate, strict=True)]
    x = np.array([float(len(t)) for t in times])
    t_x = np.array([t[-1] if len(t) else 0.0 for t in times])
    return Rfm(x, t_x, big_t)


@pytest.mark.parametrize("seed", range(8))
def test_a_shop_where_nobody_drops_out_still_predicts(seed: int) -> None:
    rfm = _loyal(seed)
    model = BgNbd.fit(rfm)
    for weeks in (13.0, 39.0):
        expected = model.expected(rfm, weeks)
        assert np.all(np.isfinite(expected) & (expected >= 0))


def test_the_fit_holds_a_parameter_the_likelihood_drives_to_zero_at_the_floor() -> None:
    assert _fit(lambda params: -np.log(params), 2, ()).tolist() == [1e-8, 1e-8]


DEGENERATE = _loyal(3)  # fitted, a = 7e-7 and b = 5e-5: nobody is seen to drop out


@pytest.mark.parametrize("scale", [1e-8, 1e-6, 1e-4])
def test_bgnbd_near_its_limit_agrees_with_it(scale: float) -> None:
    """As a and b run to 0 at a fixed ratio the predictions converge; hyp2f1 next to its pole loses
    every digit past 1e-12 (at 1e-16 a small shop's training failed on infinite predictions)."""
    limit = BgNbd(2.0, 9.7, 0.12 * 1e-8, 0.88 * 1e-8).expected(DEGENERATE, 39.0)
    near = BgNbd(2.0, 9.7, 0.12 * scale, 0.88 * scale).expected(DEGENERATE, 39.0)
    np.testing.assert_allclose(near, limit, rtol=1e-3)
    with np.errstate(all="ignore"):
        past = BgNbd(2.0, 9.7, 0.12 * 1e-16, 0.88 * 1e-16).expected(DEGENERATE, 39.0)
    assert not np.allclose(past, limit, rtol=1e-3)  # why the fit stops at 1e-8
