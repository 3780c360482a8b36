"""The exported ONNX graphs compute what the scikit-learn pipelines compute, on held-out customers."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.training.export import Runner
from service.training.train import TrainingRun


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


def test_value_predictions_agree_within_relative_1e_5(full_run: TrainingRun) -> None:
    pipeline, x, out = _held_out(full_run, "value")
    expected = pipeline.predict(x)
    np.testing.assert_allclose(out["variable"].reshape(-1), expected, rtol=1e-5, atol=1e-4)


def test_card_output_reads_the_churn_column(full_run: TrainingRun) -> None:
    card = full_run.models["churn"].card
    pipeline = full_run.models["churn"].pipeline
    assert card.output.column is not None
    assert list(pipeline.classes_)[card.output.column] == 1  # 1 = no purchase in the outcome window
