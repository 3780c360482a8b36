"""From transactions to attributes to features: the same numbers serving computes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from service.core.models import features_for
from service.training.features import EXTRAS, RFM, candidate_specs, feature_matrix, no_history_row
from service.training.transactions import Transactions, bucket, default_cutoff, detect_format, load, population_at

CSV = """customer_id,date,amount
a,2024-01-01,10.00
a,2024-01-01,5.50
a,2024-01-11,20.00
a,2024-02-03,7.25
b,2024-01-20,99.99
c,2024-02-10,12.00
d,2023-12-01,0
d,2024-01-31,40.00
d,2024-03-01,15.00
d,2024-03-01,1.00
"""
CDNOW = """ customer_id  date number_of_cds  dollar_value
 00001 19970101  1   11.77
 00002 19970112  1   12.00
 00002 19970112  5   77.00
 00003 19970201  1    5.00
"""


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.csv"
    path.write_text(CSV)
    return path


def test_attributes_and_outcomes_at_the_cutoff(csv_file: Path) -> None:
    tx = load(csv_file)
    assert (tx.rows, tx.customers) == (10, ("a", "b", "c", "d"))
    pop = population_at(tx, date(2024, 2, 1), 30)
    assert pop.now == datetime(2024, 2, 1, tzinfo=UTC).timestamp()
    assert pop.ids == ("a", "b", "d")  # c first bought after the cutoff
    assert pop.customers_after_only == 1
    assert pop.attributes == (
        {  # two rows on 2024-01-01 are one order
            "first_purchase_at": "2024-01-01T00:00:00Z",
            "last_purchase_at": "2024-01-11T00:00:00Z",
            "orders_total": 2,
            "spend_total": 35.5,
        },
        {
            "first_purchase_at": "2024-01-20T00:00:00Z",
            "last_purchase_at": "2024-01-20T00:00:00Z",
            "orders_total": 1,
            "spend_total": 99.99,
        },
        {  # a zero-dollar row is still a purchase day
            "first_purchase_at": "2023-12-01T00:00:00Z",
            "last_purchase_at": "2024-01-31T00:00:00Z",
            "orders_total": 2,
            "spend_total": 40.0,
        },
    )
    assert pop.churned.tolist() == [False, True, False]
    assert pop.outcome_spend.tolist() == [7.25, 0.0, 16.0]
    assert (pop.feature_days, pop.outcome_days) == (62, 30)  # 2023-12-01..2024-01-31, 2024-02-01..2024-03-01


def test_feature_matrix_is_features_for_on_hand_made_attributes(csv_file: Path) -> None:
    pop = population_at(load(csv_file), date(2024, 2, 1), 30)
    specs = list(candidate_specs(pop).values())
    assert [s.name for s in specs] == [*RFM, *EXTRAS, "orders", "spend_per_order"]
    hand_made = {
        "first_purchase_at": "2024-01-01T00:00:00Z",
        "last_purchase_at": "2024-01-11T00:00:00Z",
        "orders_total": 2,
        "spend_total": 35.5,
    }
    now = datetime(2024, 2, 1, tzinfo=UTC).timestamp()
    expected = np.array(features_for(specs, hand_made, now), dtype=np.float32)
    np.testing.assert_array_equal(feature_matrix(specs, pop)[0], expected)
    # and the numbers themselves: 21 days since the last order, log1p(2) orders, log1p(35.5) dollars,
    # 31 days since the first, log1p(17.75) per order, 10 days between the two orders
    np.testing.assert_allclose(
        expected, [21, np.log1p(2), np.log1p(35.5), 31, np.log1p(17.75), 10, 2, 17.75], rtol=1e-6
    )


def test_a_visitor_without_history_gets_the_missing_values(csv_file: Path) -> None:
    pop = population_at(load(csv_file), date(2024, 2, 1), 30)
    specs = list(candidate_specs(pop).values())
    row = no_history_row(specs, pop.now)[0]
    assert row.tolist() == [62.0, 0.0, 0.0, 0.0, 0.0, 62.0, 0.0, 0.0]  # recency = interpurchase = the feature window


def test_clips_stop_at_the_largest_training_value(csv_file: Path) -> None:
    pop = population_at(load(csv_file), date(2024, 2, 1), 30)
    specs = candidate_specs(pop)
    train = pop.training
    assert specs["recency_days"].clip == (0.0, 62.0)
    assert specs["frequency"].clip == (0.0, max(1.0, float(pop.column("orders_total")[train].max())))
    assert specs["monetary"].clip == (0.0, max(1.0, float(pop.column("spend_total")[train].max())))


def test_cdnow_format_and_format_detection(tmp_path: Path) -> None:
    path = tmp_path / "cdnow.txt"
    path.write_text(CDNOW)
    assert detect_format(path) == "cdnow"
    assert detect_format(tmp_path / "x.CSV") == "csv"
    tx = load(path)
    assert tx.customers == ("00001", "00002", "00003")  # zero-padded ids stay text
    assert tx.amount.tolist() == [11.77, 12.0, 77.0, 5.0]
    assert default_cutoff(tx, 20) == date(1997, 1, 13)  # the last 20 days are the outcome window
    pop = population_at(tx, date(1997, 1, 13), 20)
    assert pop.attributes[1]["orders_total"] == 1  # two rows, one day


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("customer_id,day,amount\na,2024-01-01,1\n", "missing: date"),
        ("customer_id,date,amount\na,01/02/2024,1\n", "shop.csv:2: date '01/02/2024' is not YYYY-MM-DD"),
        ("customer_id,date,amount\na,2024-01-01,-5\n", "must be a finite number >= 0"),
        ("customer_id,date,amount\n", "no transactions"),
    ],
)
def test_bad_csv_files_are_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(path)


def test_cutoff_must_leave_data_on_both_sides(csv_file: Path) -> None:
    tx = load(csv_file)
    with pytest.raises(ValueError, match="the data runs from 2023-12-01 to 2024-03-01"):
        population_at(tx, date(2024, 3, 2), 1)
    with pytest.raises(
        ValueError, match="with a horizon of 31 days needs data from before 2024-02-01 until 2024-03-02"
    ):
        population_at(tx, date(2024, 2, 1), 31)


def test_the_outcome_window_is_the_horizon_whatever_follows(csv_file: Path) -> None:
    """Churn and spend count the horizon's days only: a longer file does not change what churn means."""
    pop = population_at(load(csv_file), date(2024, 2, 1), 3)  # 2024-02-01 .. 2024-02-03
    assert pop.outcome_days == 3
    assert pop.churned.tolist() == [False, True, True]  # d's purchase on 2024-03-01 is after the window
    assert pop.outcome_spend.tolist() == [7.25, 0.0, 0.0]


def test_the_default_cutoff_leaves_one_horizon_at_the_end(cdnow: Transactions) -> None:
    assert default_cutoff(cdnow) == date(1997, 10, 1)  # 1998-06-30 + 1 - 273 days
    assert default_cutoff(cdnow, 91) == date(1998, 4, 1)


def test_held_out_split_is_by_customer_and_about_a_quarter(cdnow: Transactions) -> None:
    held = [bucket(i) < 25 for i in cdnow.customers]
    assert 0.23 < np.mean(held) < 0.27
    subset = cdnow.only(cdnow.customers[::7])  # a customer is held out whatever data surrounds them
    pop = population_at(subset, default_cutoff(subset))
    assert pop.held_out.tolist() == [bucket(i) < 25 for i in pop.ids]
