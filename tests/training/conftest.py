"""One full training on the committed data, shared by the tests that need fitted pipelines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.training.train import TrainingRun, train
from service.training.transactions import Transactions, default_cutoff, load

ROOT = Path(__file__).parents[2]
DATA = ROOT / "data" / "cdnow" / "CDNOW_master.txt"
MODELS = ROOT / "models"
FIXED_TIME = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def cdnow() -> Transactions:
    return load(DATA, source="data/cdnow/CDNOW_master.txt")


@pytest.fixture(scope="session")
def full_run(cdnow: Transactions) -> TrainingRun:
    """The training `tailor train` runs with its defaults (nothing written)."""
    return train(cdnow, default_cutoff(cdnow), seed=0, trained_at=FIXED_TIME)
