"""The exported ONNX graphs compute what the scikit-learn pipelines compute, on held-out customers."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.training import closed_form
from service.training.backtest import COUNTS, Counts, Learned
from service.training.export import Runner
from service.training.reference import DAYS_PER_WEEK, GammaGamma, ParetoNbd, from_days
from service.training.train import TrainingRun, served_closed_form


def _held_out(run: TrainingRun, name: str) -> tuple[Any, np.ndarray, dict[str, np.ndarray]]:
    model = run.models[name]
    x = model.x[run.held_out]
    assert x.dtype == np.float32  # both sides get the very same float32 rows ...
    return model.pipeline, x.astype(np.float64), Runner(model.onnx).run(x)  # ... scikit-learn's widened exactly


def test_rfm_labels_are_identical(full_run: TrainingRun) -> None:
    pipeline, x, out = _held_out(full_run, "rfm")
    expected = pipeline.predict(x)
    assert x.shape[0] > 5000
    np.testing.assert_array_equal(out["label"], expected)


def test_churn_probabilities_agree_within_1e_5(full_run: TrainingRun) -> None:
    pipeline, x, out = _held_out(full_run, "churn")
    expected = pipeline.predict_proba(x)
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out["label"], pipeline.predict(x))


def test_value_graph_is_the_scipy_closed_form_on_held_out_customers(full_run: TrainingRun) -> None:
    model = full_run.models["value"]
    x = model.x[full_run.held_out]
    out = Runner(model.onnx).run(x)
    purchases, value = served_closed_form(full_run, x)
    np.testing.assert_allclose(out["purchases"].reshape(-1), purchases, rtol=1e-6)
    np.testing.assert_allclose(out["value"].reshape(-1), value, rtol=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.floats(0, 273), st.integers(0, 81), st.floats(0, 273), st.floats(0, 1200, allow_subnormal=False)),
        min_size=1,
        max_size=20,
    )
)
def test_value_graph_matches_scipy_on_any_clipped_features(full_run: TrainingRun, rows: list[Any]) -> None:
    """Every row serving can send (features inside the card's clips, missing ones included): finite, same numbers."""
    x = np.array(rows, dtype=np.float32)
    out = Runner(full_run.models["value"].onnx).run(x)
    purchases, value = served_closed_form(full_run, x)
    assert np.isfinite(out["value"]).all()
    np.testing.assert_allclose(out["purchases"].reshape(-1), purchases, rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(out["value"].reshape(-1), value, rtol=2e-6, atol=1e-7)


ROWS = st.lists(
    st.tuples(st.floats(0, 273), st.integers(0, 81), st.floats(0, 273), st.floats(0, 1200, allow_subnormal=False)),
    min_size=1,
    max_size=20,
)


# Every servable correction: a factor, a shape by orders with it, a Gamma-Gamma of its own.
SERVABLE = [
    Learned(1.25),
    Learned(1.25, -0.2),
    Learned(0.8, 0.35),
    Learned(gamma_gamma=GammaGamma(p=5.96, q=3.78, gamma=16.7)),
]


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("learned", SERVABLE)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_both_graph_families_match_scipy(
    full_run: TrainingRun, counts: Counts, learned: Learned, rows: list[Any]
) -> None:
    """Either count model can be the served one on other data: BG/NBD's and Pareto/NBD's graphs, with any
    correction the graph computes."""
    refs = full_run.references
    days = full_run.population.outcome_days
    gg = learned.gamma_gamma or refs.gamma_gamma
    graph = closed_form.to_onnx(
        "value", days, refs.model(counts), gg, learned.factor, orders_power=learned.power, max_orders=81, max_days=273
    )
    x = np.array(rows, dtype=np.float32)
    out = Runner(graph).run(x)
    purchases, value = served_closed_form(full_run, x, counts, learned)
    assert np.isfinite(out["value"]).all()
    np.testing.assert_allclose(out["purchases"].reshape(-1), purchases, rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(out["value"].reshape(-1), value, rtol=2e-6, atol=1e-7)


def test_card_output_reads_the_churn_column(full_run: TrainingRun) -> None:
    card = full_run.models["churn"].card
    pipeline = full_run.models["churn"].pipeline
    assert card.output.column is not None
    assert list(pipeline.classes_)[card.output.column] == 1  # 1 = no purchase in the outcome window


# Pareto/NBD fits on other data may have alpha < beta: the graph then sums the other 2F1 (second = r + x).
PARETO_SHAPES = [
    ParetoNbd(r=0.6, alpha=9.0, s=0.55, beta=12.0),  # alpha < beta
    ParetoNbd(r=0.6, alpha=11.7, s=0.55, beta=9.9),  # alpha > beta, about CDNOW's
    ParetoNbd(r=1.3, alpha=3.0, s=1.6, beta=30.0),  # s > 1, far apart
    ParetoNbd(r=0.6, alpha=10.0, s=0.55, beta=10.0),  # alpha = beta: z = 0, one term
]


@pytest.mark.parametrize("pareto", PARETO_SHAPES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_the_pareto_graph_matches_scipy_on_either_side_of_alpha_beta(pareto: ParetoNbd, rows: list[Any]) -> None:
    gg = GammaGamma(p=10.9, q=3.2, gamma=6.8)
    x = np.array(rows, dtype=np.float32)
    out = Runner(closed_form.to_onnx("value", 273, pareto, gg, max_orders=81, max_days=273)).run(x)
    recency, orders, tenure, per_order = x.astype(np.float64).T
    purchases = pareto.expected(from_days(orders, recency, tenure), 273 / DAYS_PER_WEEK)
    assert np.isfinite(out["value"]).all()
    np.testing.assert_allclose(out["purchases"].reshape(-1), purchases, rtol=2e-6, atol=1e-9)
    value = purchases * gg.expected(orders, per_order)
    np.testing.assert_allclose(out["value"].reshape(-1), value, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(("pareto", "most_nodes"), list(zip(PARETO_SHAPES, (25, 20, 25, 20), strict=True)))
def test_the_pareto_graph_is_small_and_grows_linearly_with_its_series(pareto: ParetoNbd, most_nodes: int) -> None:
    """Serving pays per node (each kernel runs cache-cold on a page view): the series of both ends of A0 and the
    rate's powers share one Log, one Gemm and one Exp. Its constants grow with the series' terms, not their square
    (alpha = 3, beta = 30 needs some 1,800 terms)."""
    gg = GammaGamma(p=10.9, q=3.2, gamma=6.8)
    data = closed_form.to_onnx("value", 273, pareto, gg, max_orders=81, max_days=273)
    terms = closed_form.pareto_terms(pareto, 81, 273)
    assert len(onnx.load_from_string(data).graph.node) <= most_nodes
    assert len(data) < 4_000 + 1_000 * terms


def test_a_pareto_fit_that_would_overflow_the_graph_is_refused() -> None:
    """The largest exponent of the graph, at x = 80, t_x = 0 and T = max_days, must stay far from exp's limit."""
    steep = ParetoNbd(r=0.6, alpha=0.005, s=0.55, beta=0.004)  # ((big + T) / big)^(r + s + x) = 7801^81 > e^709
    with pytest.raises(ValueError, match="would overflow"):
        closed_form.pareto_terms(steep, 81, 273)
    assert closed_form.pareto_terms(steep, 81, 1) > 0
