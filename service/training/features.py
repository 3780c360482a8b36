"""The candidate input features, as card ``FeatureSpec``s, and the feature matrix built from them.

Every value is computed by ``service.core.models.features_for`` from the card's inputs, the
attributes at the cutoff and the cutoff as "now", exactly as serving will compute it.

| feature | source | unit | missing | clip | transform |
|---|---|---|---|---|---|
| recency_days | days since last_purchase_at | days | W | [0, W] | none |
| frequency | orders_total | orders | 0 | [0, max] | log1p |
| monetary | spend_total | dollars | 0 | [0, max] | log1p |
| tenure_days | days since first_purchase_at | days | 0 | [0, W] | none |
| avg_order_value | spend_total / orders_total | dollars per order | 0 | [0, max] | log1p |
| interpurchase_days | (last - first) / (orders - 1) | days | W | [0, W] | none |

``W`` is the length of the feature window in days (CDNOW: 273), the longest recency seen in
training, so a visitor who never bought looks like the most lapsed customer on record and
one who bought longer ago than the data reaches is treated as that. ``max`` is the largest
value among the training customers (6 significant digits; for the raw ``orders`` and
``spend_per_order`` of the closed-form models, among all customers before the cutoff: the
BG/NBD and Gamma-Gamma forms grow linearly and were fitted without outcomes): a visitor beyond anything seen in
training (a test account, a bulk buyer) is scored as the largest customer seen, never
extrapolated. (A tighter clip at the 99.9th percentile flattened exactly the biggest
customers, whom the value model most needs to tell apart.) Skewed counts and amounts get
``log1p`` so the linear steps (scaler, k-means, logistic and Poisson regression) are not
driven by a few very large customers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from service.core.models import FeatureSource, FeatureSpec, features_for
from service.training.transactions import Population

RFM = ("recency_days", "frequency", "monetary")
EXTRAS = ("tenure_days", "avg_order_value", "interpurchase_days")
# The closed-form models (BG/NBD x Gamma-Gamma) read raw counts and amounts, in this order.
CLOSED_FORM = ("recency_days", "orders", "tenure_days", "spend_per_order")

Matrix = npt.NDArray[np.float32]


def significant(value: float, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits (stable text in cards and reports)."""
    return float(f"{value:.{digits}g}")


def candidate_specs(population: Population) -> dict[str, FeatureSpec]:
    """All candidate features, with missing values and clips taken from the training customers."""
    window = float(population.feature_days)
    train = population.training
    orders = population.column("orders_total")[train]
    spend = population.column("spend_total")[train]
    per_order = np.divide(spend, orders, out=np.zeros_like(spend), where=orders > 0)

    everyone = population.column("orders_total")  # features only, no outcome: the closed form may use them all
    every_spend = population.column("spend_total")
    every_per_order = np.divide(every_spend, everyone, out=np.zeros_like(every_spend), where=everyone > 0)

    def high(values: npt.NDArray[np.float64]) -> float:
        return significant(float(values.max())) if values.size else 1.0

    specs = [
        FeatureSpec(
            name="recency_days",
            unit="days",
            description="Days from the last purchase to now; no purchase counts as the whole feature window.",
            source=FeatureSource(days_since="last_purchase_at"),
            missing=window,
            clip=(0.0, window),
        ),
        FeatureSpec(
            name="frequency",
            unit="orders",
            description="Orders so far (an order is a distinct purchase day), log1p.",
            source=FeatureSource(attr="orders_total"),
            missing=0.0,
            clip=(0.0, max(high(orders), 1.0)),
            transform="log1p",
        ),
        FeatureSpec(
            name="monetary",
            unit="dollars",
            description="Total spend so far, log1p.",
            source=FeatureSource(attr="spend_total"),
            missing=0.0,
            clip=(0.0, max(high(spend), 1.0)),
            transform="log1p",
        ),
        FeatureSpec(
            name="tenure_days",
            unit="days",
            description="Days from the first purchase to now; 0 without a purchase.",
            source=FeatureSource(days_since="first_purchase_at"),
            missing=0.0,
            clip=(0.0, window),
        ),
        FeatureSpec(
            name="avg_order_value",
            unit="dollars per order",
            description="Spend per order (spend_total / orders_total), log1p; 0 without an order.",
            source=FeatureSource(ratio=("spend_total", "orders_total")),
            missing=0.0,
            clip=(0.0, max(high(per_order), 1.0)),
            transform="log1p",
        ),
        FeatureSpec(
            name="interpurchase_days",
            unit="days per order",
            description=(
                "Mean days between orders, (last - first) / (orders - 1); "
                "with fewer than two orders, the whole feature window."
            ),
            source=FeatureSource(interval=("first_purchase_at", "last_purchase_at", "orders_total")),
            missing=window,
            clip=(0.0, window),
        ),
        FeatureSpec(
            name="orders",
            unit="orders",
            description="Orders so far (an order is a distinct purchase day), as they are.",
            source=FeatureSource(attr="orders_total"),
            missing=0.0,
            clip=(0.0, max(high(everyone), 1.0)),
        ),
        FeatureSpec(
            name="spend_per_order",
            unit="dollars per order",
            description="Spend per order (spend_total / orders_total), as it is; 0 without an order.",
            source=FeatureSource(ratio=("spend_total", "orders_total")),
            missing=0.0,
            clip=(0.0, max(high(every_per_order), 1.0)),
        ),
    ]
    return {spec.name: spec for spec in specs}


def pick(specs: dict[str, FeatureSpec], names: Sequence[str]) -> list[FeatureSpec]:
    return [specs[name] for name in names]


def feature_matrix(specs: Sequence[FeatureSpec], population: Population) -> Matrix:
    """One float32 row per customer, computed by ``features_for`` as serving would."""
    rows = [features_for(specs, attributes, population.now) for attributes in population.attributes]
    return np.array(rows, dtype=np.float32).reshape(len(rows), len(specs))


def no_history_row(specs: Sequence[FeatureSpec], now: float) -> Matrix:
    """The row a visitor without any purchase attribute gets (every feature at its missing value)."""
    return np.array([features_for(specs, {}, now)], dtype=np.float32)
