"""Training twice on the same data gives the same bytes (apart from trained_at)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skl2onnx import convert_sklearn
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from service.training import export
from service.training.train import train, write_models
from service.training.transactions import Transactions, bucket, default_cutoff


def _without_trained_at(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("trained_at:"))


def test_two_trainings_on_a_small_subset_are_identical(cdnow: Transactions, tmp_path: Path) -> None:
    subset = cdnow.only([c for c in cdnow.customers if bucket("subset:" + c) < 12])  # about 2,800 customers
    cutoff = default_cutoff(subset)
    first = train(subset, cutoff, seed=3, trained_at=datetime(2026, 1, 1, tzinfo=UTC))
    second = train(subset, cutoff, seed=3, trained_at=datetime(2026, 6, 1, tzinfo=UTC))
    write_models(first, tmp_path / "a")
    write_models(second, tmp_path / "b")
    for name in ("rfm", "churn", "value", "purchases"):
        a = (tmp_path / "a" / f"{name}.onnx").read_bytes()
        b = (tmp_path / "b" / f"{name}.onnx").read_bytes()
        assert a == b, f"{name}.onnx differs"
        card_a = (tmp_path / "a" / f"{name}.yaml").read_text()
        card_b = (tmp_path / "b" / f"{name}.yaml").read_text()
        assert card_a != card_b  # trained_at differs ...
        assert _without_trained_at(card_a) == _without_trained_at(card_b)  # ... and nothing else
    assert first.rfm.names == second.rfm.names
    assert "lapsed" in first.rfm.names.values()
    np.testing.assert_array_equal(first.rfm.labels, second.rfm.labels)


def test_exports_do_not_depend_on_the_order_skl2onnx_lists_opsets(monkeypatch: pytest.MonkeyPatch) -> None:
    """skl2onnx gathers the opsets in a set: the committed rfm.onnx listed them in another order than a
    retraining did, and the bytes differed. The export sorts them."""
    x = np.random.default_rng(0).normal(size=(200, 3))
    kmeans = Pipeline([("s", StandardScaler()), ("k", KMeans(3, random_state=0, n_init=2))]).fit(x)
    as_listed = export.to_onnx(kmeans, 3, "rfm")
    real = convert_sklearn  # what export.py calls

    def reversed_opsets(*args: Any, **kwargs: Any) -> Any:
        model = real(*args, **kwargs)
        opsets = list(model.opset_import)[::-1]
        del model.opset_import[:]
        model.opset_import.extend(opsets)
        return model

    monkeypatch.setattr(export, "convert_sklearn", reversed_opsets)
    assert export.to_onnx(kmeans, 3, "rfm") == as_listed
