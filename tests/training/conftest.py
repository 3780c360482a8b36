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
FULL_RUN = "full_run"


@pytest.fixture(scope="session")
def cdnow() -> Transactions:
    return load(DATA, source="data/cdnow/CDNOW_master.txt")


@pytest.fixture(scope="session")
def full_run(cdnow: Transactions) -> TrainingRun:
    """The training `tailor train` runs with its defaults (nothing written)."""
    return train(cdnow, default_cutoff(cdnow), seed=0, trained_at=FIXED_TIME)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that use full_run first, so that on two test processes one of them trains CDNOW.

    Each process builds its own session fixtures, and pytest-xdist hands each process a run of
    consecutive tests to start with: spread through the suite, CDNOW was trained on both.
    (``xdist_group`` would say so directly, but pytest-xdist 3.8 cannot group under pytest 9.)
    """
    items.sort(key=lambda item: FULL_RUN not in getattr(item, "fixturenames", ()))  # a stable sort
