"""Build the example population (examples/population.parquet) from the CDNOW customers.

Each of the 23,570 CDNOW customers becomes one visitor with their real purchase history
as of the last day of the data (1998-06-30): orders (distinct purchase days) and spend in
total and in the last 365 days, first and last purchase. The dates are moved forward so
that this day is 2026-12-01, the time to simulate at. The attributes CDNOW does not have
(country, sessions, electronics views, cart, app version, consent) are drawn from a
seeded random generator, so the same command always writes the same rows.

    python examples/population.py                     # examples/population.parquet
    python examples/population.py --visitors 1000000 --out /tmp/population-1m.parquet

With ``--visitors`` larger than the customer count, customers repeat with new ids and
newly drawn synthesized attributes. Needs the ``simulate`` extra (DuckDB).
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "cdnow" / "CDNOW_master.txt"
OUT = ROOT / "examples" / "population.parquet"
AS_OF = date(1998, 6, 30)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHIFT = NOW - datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC) - timedelta(days=1)  # end of AS_OF
SEED = 20261201
YEAR_DAYS = 365

COUNTRIES = {"US": 62, "CA": 6, "GB": 7, "DE": 8, "FR": 5, "NL": 3, "ES": 3, "IT": 3, "SE": 1, "JP": 2}
APP_VERSIONS = ("3.8.2", "3.9.1", "4.0.0", "4.1.3", "4.2.0")
COLUMNS = (
    "id", "country", "orders_total", "spend_total", "first_purchase_at", "last_purchase_at", "orders_12m",
    "spend_12m", "sessions_7d", "views.electronics_7d", "cart.items", "cart.updated_at", "app_version", "consent",
)  # fmt: skip
TYPES = {
    "id": "VARCHAR", "country": "VARCHAR", "orders_total": "INTEGER", "spend_total": "DOUBLE",
    "first_purchase_at": "TIMESTAMP", "last_purchase_at": "TIMESTAMP", "orders_12m": "INTEGER",
    "spend_12m": "DOUBLE", "sessions_7d": "INTEGER", "views.electronics_7d": "INTEGER", "cart.items": "INTEGER",
    "cart.updated_at": "TIMESTAMP", "app_version": "VARCHAR", "consent": "BOOLEAN",
}  # fmt: skip

HISTORY = """
WITH raw AS (
    SELECT string_split_regex(trim(line), '\\s+') AS f FROM read_csv(?, header = true, columns = {'line': 'VARCHAR'},
                                                                     delim = '|', quote = '', escape = '')
), orders AS (
    SELECT f[1] AS customer, strptime(f[2], '%Y%m%d')::DATE AS day, CAST(f[4] AS DOUBLE) AS dollars FROM raw
)
SELECT customer,
       count(DISTINCT day) AS orders_total,
       round(sum(dollars), 2) AS spend_total,
       min(day) AS first_day,
       max(day) AS last_day,
       count(DISTINCT day) FILTER (WHERE day > ?::DATE - INTERVAL (?) DAY) AS orders_12m,
       round(coalesce(sum(dollars) FILTER (WHERE day > ?::DATE - INTERVAL (?) DAY), 0), 2) AS spend_12m
FROM orders WHERE day <= ?::DATE GROUP BY customer ORDER BY customer
"""


def histories() -> list[tuple[Any, ...]]:
    """Per customer: orders, spend, first and last purchase day, orders and spend in the last year."""
    params = [str(DATA), AS_OF, YEAR_DAYS, AS_OF, YEAR_DAYS, AS_OF]
    with duckdb.connect() as connection:
        return connection.execute(HISTORY, params).fetchall()


def _moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC) + SHIFT


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def visitor(history: tuple[Any, ...], copy: int, rng: random.Random) -> list[object]:
    """One visitor: the customer's history and synthesized attributes."""
    customer, orders, spend, first, last, orders_12m, spend_12m = history
    recent = (AS_OF - last).days < 90
    cart_items = rng.randint(1, 4) if rng.random() < 0.12 else None
    cart_at = NOW - timedelta(hours=rng.uniform(1, 96)) if cart_items else None
    views = rng.randint(1, 6) if rng.random() < 0.18 else 0
    return [
        f"c-{customer}" if copy == 0 else f"c-{customer}-{copy}",
        rng.choices(list(COUNTRIES), weights=list(COUNTRIES.values()))[0],
        orders,
        spend,
        _stamp(_moment(first)),
        _stamp(_moment(last)),
        orders_12m,
        spend_12m,
        rng.choice((2, 3, 4, 5)) if recent and rng.random() < 0.5 else rng.choice((0, 0, 1, 1, 2, 3)),
        views,
        "" if cart_items is None else cart_items,
        _stamp(cart_at),
        rng.choice(APP_VERSIONS) if rng.random() < 0.3 else "",
        "true" if rng.random() < 0.9 else "false",
    ]


def visitors(count: int | None) -> Iterator[list[object]]:
    rng = random.Random(SEED)  # noqa: S311 - synthesized attributes, drawn the same on every run
    rows = histories()
    total = len(rows) if count is None else count
    for n in range(total):
        yield visitor(rows[n % len(rows)], n // len(rows), rng)


def write(out: Path, count: int | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / "population.csv"
        with staged.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(visitors(count))
        types = "{" + ", ".join(f"'{k}': '{v}'" for k, v in TYPES.items()) + "}"
        with duckdb.connect() as connection:
            connection.execute(
                f"COPY (SELECT * FROM read_csv(?, header = true, types = {types})) TO '{out}' "  # noqa: S608 - constants
                "(FORMAT parquet, COMPRESSION zstd)",
                [str(staged)],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--visitors", type=int, help="rows to write (default: one per customer, 23,570)")
    parser.add_argument("--out", type=Path, default=OUT, help="Parquet file (default: examples/population.parquet)")
    args = parser.parse_args()
    write(args.out, args.visitors)
    print(f"wrote {args.out}")  # noqa: T201 - a command


if __name__ == "__main__":
    main()
