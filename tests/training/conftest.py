"""One full training on the committed data, shared by the tests that need fitted pipelines; a generated shop."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from service.training.train import TrainingRun, train
from service.training.transactions import Transactions, default_cutoff, load

ROOT = Path(__file__).parents[2]
DATA = ROOT / "data" / "cdnow" / "CDNOW_master.txt"
MODELS = ROOT / "models"
FIXED_TIME = datetime(2026, 1, 1, tzinfo=UTC)
FULL_RUN = "full_run"


Amount = Callable[[np.random.Generator, float], float]


def _around(rng: np.random.Generator, spend: float) -> float:
    return spend * float(rng.uniform(0.5, 1.5))


Order = tuple[str, date, float]  # customer id, day, amount


def write_orders(path: Path, orders: Iterable[Order]) -> Path:
    """A CSV file of ``tailor train``'s input format, one row an order."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["customer_id", "date", "amount"])
        out.writerows([customer, day.isoformat(), f"{amount:.2f}"] for customer, day, amount in orders)
    return path


def shop(path: Path, customers: int = 240, start: date = date(2024, 1, 1), amount: Amount = _around) -> Path:
    """Customers who join over 13 weeks and buy at their own rate for 78 weeks (seeded: always the same file);
    each order's amount is ``amount(rng, the customer's typical spend)``."""
    return write_orders(path, _shop_orders(customers, start, amount))


def _shop_orders(customers: int, start: date, amount: Amount) -> Iterator[Order]:
    rng = np.random.default_rng(7)
    for i in range(customers):
        day = int(rng.integers(0, 91))
        rate = float(rng.choice([0.005, 0.02, 0.06]))
        life = int(rng.integers(30, 546))
        spend = float(rng.uniform(8, 120))
        while day < min(life, 546):
            yield f"c{i:04d}", start + timedelta(days=day), amount(rng, spend)
            day += 1 + int(rng.geometric(rate))


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
