"""The value choice and the churn backtest read nothing on or after the cutoff but the outcomes they measure."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from service.training.backtest import (
    BLEND,
    BLEND_WEIGHTS,
    CORRECTIONS,
    COUNTS,
    ChurnBacktest,
    Learned,
    ValueChoice,
    choose,
    churn_backtest,
    references,
    shape,
    value_backtest,
    value_choice,
)
from service.training.closed_form import pareto_terms
from service.training.features import RFM, candidate_specs
from service.training.reference import ParetoNbd
from service.training.transactions import Population, Transactions, bucket, default_cutoff, population_at, to_day

MAX_ORDERS = 81.0
# name: (MAE, RMSE) on a tuning backtest -> the name VALUE_RULE picks
CHOICES = [
    ({"bg_nbd": (10, 50), "pareto_nbd": (9, 49)}, "pareto_nbd"),
    ({"bg_nbd": (10, 50), "pareto_nbd": (9, 60)}, "bg_nbd"),  # 0.9 + 1.2 > 2
    ({"bg_nbd": (10, 50), "pareto_nbd": (11, 40)}, "pareto_nbd"),  # 1.1 + 0.8 < 2
    ({"bg_nbd": (10, 50), "pareto_nbd": (10, 50)}, "bg_nbd"),  # a tie keeps the first listed
]


@pytest.mark.parametrize(("figures", "expected"), CHOICES)
def test_the_rule_weighs_mae_and_rmse_relative_to_bg_nbd(
    figures: dict[str, tuple[float, float]], expected: str
) -> None:
    tuning = {name: {"mae": float(mae), "rmse": float(rmse)} for name, (mae, rmse) in figures.items()}
    assert choose(tuning) == expected


def _subset(cdnow: Transactions) -> Transactions:
    return cdnow.only([c for c in cdnow.customers if bucket("backtest:" + c) < 15])  # about 3,500 customers


def _before(tx: Transactions, cutoff: date) -> Transactions:
    keep = tx.day < to_day(cutoff)
    return replace(tx, customer=tx.customer[keep], day=tx.day[keep], amount=tx.amount[keep])


@pytest.fixture(scope="module")
def small(cdnow: Transactions) -> tuple[Transactions, Population]:
    tx = _subset(cdnow)
    return tx, population_at(tx, default_cutoff(tx))


@pytest.fixture(scope="module")
def choice(small: tuple[Transactions, Population]) -> ValueChoice:
    tx, population = small
    return value_choice(tx, population, references(population, candidate_specs(population)), MAX_ORDERS)


def test_the_value_choice_does_not_depend_on_anything_after_the_cutoff(
    small: tuple[Transactions, Population], choice: ValueChoice
) -> None:
    tx, population = small
    refs = references(population, candidate_specs(population))
    blind = value_choice(_before(tx, population.cutoff), population, refs, MAX_ORDERS)
    assert choice.q == blind.q == population.feature_days // 3
    assert blind.tuning == choice.tuning
    assert blind.chosen == choice.chosen
    assert [c.factor for c in blind.at_cutoff] == [c.factor for c in choice.at_cutoff]
    for ours, theirs in zip(choice.at_cutoff, blind.at_cutoff, strict=True):
        np.testing.assert_array_equal(ours.predicted, theirs.predicted)


def test_every_candidate_is_scored_on_the_tuning_backtest_and_at_the_cutoff(choice: ValueChoice) -> None:
    names = [c.name for c in choice.at_cutoff]
    assert len(names) == len(set(names)) == len(COUNTS) * len(CORRECTIONS) + 1  # and the blend
    assert set(choice.tuning) == set(choice.headline) == set(names)
    assert choice.chosen in names
    assert all(c.factor > 0 for c in choice.at_cutoff)
    assert {c.factor for c in choice.at_cutoff if c.correction == "none"} == {1.0}


def test_only_a_form_the_graph_computes_is_served(choice: ValueChoice) -> None:
    """Bucket factors and a blend of both count models are scored for the record, never served."""
    assert {"bg_nbd+orders_bucket", "pareto_nbd+orders_bucket", BLEND} <= set(choice.not_servable)
    assert choice.chosen not in choice.not_servable
    eligible = {name for name in choice.tuning if name not in choice.not_servable}
    assert choose(choice.tuning, eligible) == choice.chosen


def test_the_blend_is_its_weight_s_mix_of_the_two_plain_forecasts(choice: ValueChoice) -> None:
    mixed = next(c for c in choice.at_cutoff if c.counts == BLEND)
    assert mixed.weight in BLEND_WEIGHTS
    plain = {c.counts: c.predicted for c in choice.at_cutoff if c.correction == "none"}
    weight = mixed.weight or 0.0
    np.testing.assert_allclose(mixed.predicted, weight * plain["bg_nbd"] + (1 - weight) * plain["pareto_nbd"])


# orders 1, 2, 3, 4, 5, 8, 20 -> buckets 0, 1, 2, 2, 3, 4, 4; no order counts as one
SHAPES = [
    (Learned(2.0), [2.0] * 8),
    (Learned(1.0, -1.0), [1.0, 1.0, 0.5, 1 / 3, 0.25, 0.2, 0.125, 0.05]),
    (Learned(0.5, 0.0, (1.0, 2.0, 3.0, 4.0, 5.0)), [0.5, 0.5, 1.0, 1.5, 1.5, 2.0, 2.5, 2.5]),
]


@pytest.mark.parametrize(("learned", "expected"), SHAPES)
def test_a_correction_multiplies_each_customer_by_its_shape(learned: Learned, expected: list[float]) -> None:
    orders = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 20.0])
    np.testing.assert_allclose(shape(learned, orders), expected)


def test_too_short_data_serve_plain_bg_nbd(cdnow: Transactions) -> None:
    tx = _subset(cdnow)
    population = population_at(tx, date(1997, 1, 3), 30)  # 2 days of history: no room for three windows
    choice = value_choice(tx, population, references(population, candidate_specs(population)), MAX_ORDERS)
    assert (choice.q, choice.tuning, choice.chosen) == (None, {}, "bg_nbd")


def _churn(tx: Transactions, population: Population) -> ChurnBacktest:
    refs = references(population, candidate_specs(population))
    found = churn_backtest(tx, population, refs, list(RFM), seed=0)
    assert found is not None
    return found


def test_the_churn_backtest_fits_before_the_cutoff_and_measures_after_it(
    small: tuple[Transactions, Population],
) -> None:
    tx, population = small
    found = _churn(tx, population)
    assert found.b == population.feature_days // 2
    assert (population.cutoff - found.fit_cutoff).days == found.b
    assert found.y.size == int(population.held_out.sum())
    # Purchases after the cutoff change what is measured, never the model: drop a third of them.
    later = tx.day >= to_day(population.cutoff)
    drop = later & (np.arange(tx.rows) % 3 == 0)
    thinner = replace(tx, customer=tx.customer[~drop], day=tx.day[~drop], amount=tx.amount[~drop])
    again = _churn(thinner, population_at(thinner, population.cutoff, found.b))
    np.testing.assert_array_equal(again.p, found.p)
    assert again.y.sum() >= found.y.sum()
    assert 0.5 < found.metrics["roc_auc"] <= 1


def test_the_learned_value_backtest_reads_nothing_on_or_after_the_cutoff(
    small: tuple[Transactions, Population],
) -> None:
    tx, population = small
    found = value_backtest(tx, population, list(RFM), seed=0)
    blind = value_backtest(_before(tx, population.cutoff), population, list(RFM), seed=0)
    assert found is not None
    assert blind is not None
    np.testing.assert_array_equal(found, blind)
    assert found.shape == (population.size,)
    assert (found >= 0).all()  # a Poisson GLM forecasts a mean, never below nothing


def test_too_short_data_have_no_learned_value_backtest(cdnow: Transactions) -> None:
    tx = _subset(cdnow)
    population = population_at(tx, date(1997, 1, 2), 30)  # 1 day of history: b = 0 days
    assert value_backtest(tx, population, list(RFM), seed=0) is None


def test_a_pareto_fit_whose_series_a_graph_cannot_sum_is_never_served() -> None:
    """A fit seen on a small synthetic shop: z = (beta - alpha) / beta is near 1, so 2F1 needs > 16,384 terms."""
    slow = ParetoNbd(r=1.7355, alpha=8.9978, s=98.586, beta=4392.65)
    with pytest.raises(ValueError, match="more than 16384 terms"):
        pareto_terms(slow, 30)
    assert pareto_terms(replace(slow, beta=12.0), 30) < 1000
    tuning = {"bg_nbd": {"mae": 10.0, "rmse": 50.0}, "pareto_nbd": {"mae": 9.0, "rmse": 40.0}}
    assert choose(tuning, {"bg_nbd"}) == "bg_nbd"
    assert choose(tuning, {"bg_nbd", "pareto_nbd"}) == "pareto_nbd"
