"""Transactions in, customers at a cutoff out: attributes before it, outcomes after it.

Two input forms:

* ``cdnow``: the CDNOW master file (``data/cdnow/CDNOW_master.txt``): whitespace separated,
  one header line, then ``customer_id date(YYYYMMDD) number_of_cds dollar_value``;
* ``csv``: a header ``customer_id,date,amount`` (other columns are ignored), ``date`` as
  ``YYYY-MM-DD``, ``amount`` in the shop's currency (zero allowed, negative or 10^15 and more refused).

Both are UTF-8 text; dates before 1970 are fine (their day numbers are negative).

Conventions, the same for both:

* an **order** is a distinct purchase day of a customer: the rows of one customer on one day
  are one order (the CDNOW README notes a customer may have several rows a day);
  ``orders_total`` counts purchase days and ``spend_total`` sums every row's amount;
* the **cutoff** is a date: features use the days strictly before it, the outcome window is the
  ``horizon`` days from it (``[cutoff, cutoff + horizon)``), whatever follows in the file, so
  "churn" means the same on a file of two years or of ten; serving's "now" for the features is
  the cutoff at 00:00 UTC;
* the **population** at a cutoff is every customer with at least one purchase before it;
* **churn** is no purchase (no row at all) in the outcome window;
* **held-out** customers (25 %) are chosen by a hash of the customer id alone, so the same
  customer is held out whatever the cutoff, the seed or the subset of the data.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from service.telemetry.events import MAX_OUTCOME_VALUE

Format = Literal["cdnow", "csv"]
FORMATS: tuple[Format, ...] = ("cdnow", "csv")

EPOCH_DAY = date(1970, 1, 1)
DEFAULT_HORIZON_DAYS = 273  # the 39 weeks of the CDNOW literature's hold-out period
HOLDOUT_PERCENT = 25
VALIDATION_PERCENT = 20  # of all customers, taken from the training customers, to choose features
_HOLDOUT_SALT = b"tailor-holdout-v1:"
_CDNOW_FIELDS = 4
# An amount is refused from 10^15 up, the bound outcome events have (ADR 0017): no purchase is worth that in
# any currency, and 1e308 passed a finite check to overflow the fits' sums, which then named no line.
MAX_AMOUNT = MAX_OUTCOME_VALUE
# Compressed files are refused by name: decoded as text they failed on a byte with no word of what the file is.
_COMPRESSED = (
    (b"\x1f\x8b", "a gzip"),
    (b"PK\x03\x04", "a zip"),
    (b"BZh", "a bzip2"),
    (b"\xfd7zXZ\x00", "an xz"),
    (b"\x28\xb5\x2f\xfd", "a zstd"),
)
_HEAD_BYTES = 64  # what is read for text after a magic number: "BZh" can also start a text file

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Transactions:
    """Every row of a transaction file: customer index, day number and amount, in file order."""

    source: str
    sha256: str
    customers: tuple[str, ...]
    customer: IntArray
    day: IntArray
    amount: FloatArray

    @property
    def rows(self) -> int:
        return int(self.customer.size)

    @property
    def first_day(self) -> date:
        return to_date(int(self.day.min()))

    @property
    def last_day(self) -> date:
        return to_date(int(self.day.max()))

    def only(self, keep: Collection[str]) -> Transactions:
        """The rows of the customers in ``keep`` (same source and checksum): small deterministic subsets."""
        wanted = set(keep)
        index = np.array([name in wanted for name in self.customers], dtype=np.bool_)
        rows = index[self.customer]
        kept = tuple(name for name in self.customers if name in wanted)
        renumber = np.cumsum(index) - 1
        return Transactions(
            self.source, self.sha256, kept, renumber[self.customer[rows]], self.day[rows], self.amount[rows]
        )


def to_day(value: date) -> int:
    return (value - EPOCH_DAY).days


def to_date(day: int) -> date:
    return EPOCH_DAY + timedelta(days=day)


def iso(day: int) -> str:
    """The attribute text serving receives for a day: ``YYYY-MM-DDT00:00:00Z``."""
    return f"{to_date(day).isoformat()}T00:00:00Z"


def epoch(day: date) -> float:
    """Epoch seconds of 00:00 UTC on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def detect_format(path: Path) -> Format:
    return "csv" if path.suffix.lower() == ".csv" else "cdnow"


def load(path: Path, fmt: Format | None = None, source: str | None = None) -> Transactions:
    """Read a transaction file; ``fmt`` defaults to ``csv`` for ``*.csv`` and ``cdnow`` otherwise."""
    raw = path.read_bytes()
    text = _text(raw, path)
    kind = fmt or detect_format(path)
    rows = _parse_cdnow(text, path) if kind == "cdnow" else _parse_csv(text, path)
    if not rows:
        raise ValueError(f"{path}: no transactions")
    names = sorted({name for name, _, _ in rows})
    number = {name: i for i, name in enumerate(names)}
    return Transactions(
        source=source if source is not None else path.as_posix(),
        sha256=hashlib.sha256(raw).hexdigest(),
        customers=tuple(names),
        customer=np.array([number[name] for name, _, _ in rows], dtype=np.int64),
        day=np.array([day for _, day, _ in rows], dtype=np.int64),
        amount=np.array([amount for _, _, amount in rows], dtype=np.float64),
    )


def _text(raw: bytes, path: Path) -> str:
    """The file as UTF-8 text (a byte order mark allowed); a compressed file or another encoding named at its line."""
    for magic, kind in _COMPRESSED:
        if raw.startswith(magic) and not _decodes(raw[:_HEAD_BYTES]):
            raise ValueError(f"{path}: {kind} file, not a text file: decompress it first")
    # The BOM is stripped here, not by "utf-8-sig": that codec counts exc.start after the BOM, so the error
    # named the byte 3 places early (and at a line's start, the line before). The BOM is on line 1.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise ValueError(f"{path}:{line_no}: byte 0x{byte} is not UTF-8: save the file as UTF-8 text") from None


def _decodes(head: bytes) -> bool:
    """Whether the first bytes are UTF-8 text (a character cut at the end allowed)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def _parse_cdnow(text: str, path: Path) -> list[tuple[str, int, float]]:
    rows: list[tuple[str, int, float]] = []
    days: dict[str, int] = {}  # a few hundred distinct dates: parse each once
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or (line_no == 1 and fields[0] == "customer_id"):
            continue
        if len(fields) != _CDNOW_FIELDS:
            raise ValueError(f"{path}:{line_no}: expected 4 fields (customer_id date cds dollars), got {len(fields)}")
        name, text_day, _cds, amount = fields
        day = days.get(text_day)
        if day is None:
            try:
                when = datetime.strptime(text_day, "%Y%m%d").replace(tzinfo=UTC).date()
            except ValueError:
                raise ValueError(f"{path}:{line_no}: date '{text_day}' is not YYYYMMDD") from None
            day = days[text_day] = to_day(when)
        rows.append((name, day, _amount(amount, path, line_no)))
    return rows


def _parse_csv(text: str, path: Path) -> list[tuple[str, int, float]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"customer_id", "date", "amount"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{path}:1: the header needs customer_id,date,amount (missing: {', '.join(sorted(missing))})")
    rows: list[tuple[str, int, float]] = []
    for record in reader:
        line_no = reader.line_num
        name = (record["customer_id"] or "").strip()
        if not name:
            raise ValueError(f"{path}:{line_no}: empty customer_id")
        text_day = (record["date"] or "").strip()
        try:
            when = date.fromisoformat(text_day)
        except ValueError:
            raise ValueError(f"{path}:{line_no}: date '{text_day}' is not YYYY-MM-DD") from None
        rows.append((name, to_day(when), _amount(record["amount"] or "", path, line_no)))
    return rows


def _amount(text: str, path: Path, line_no: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line_no}: amount '{text}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{path}:{line_no}: amount {text} must be a finite number >= 0 (net refunds out first)")
    if value >= MAX_AMOUNT:
        raise ValueError(f"{path}:{line_no}: amount {text} must be below 10^15 (a unit or a typo?)")
    return value


def default_cutoff(tx: Transactions, horizon_days: int = DEFAULT_HORIZON_DAYS) -> date:
    """The latest cutoff whose whole outcome window is in the data (CDNOW: 1998-06-30 + 1 - 273 days = 1997-10-01)."""
    try:
        return tx.last_day + timedelta(days=1 - horizon_days)
    except OverflowError:  # before 0001-01-01: no data can come before it
        raise ValueError(
            f"a horizon of {horizon_days} days back from the last day of the data, {tx.last_day}, is before year 1"
        ) from None


def first_and_last(tx: Transactions, rows: BoolArray) -> tuple[IntArray, IntArray]:
    """Each customer's first and last day among ``rows``; customers without a row keep the int64 extremes
    (read them only for customers with a row: a day of any year fits far inside the sentinels)."""
    n = len(tx.customers)
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, tx.customer[rows], tx.day[rows])
    np.maximum.at(last, tx.customer[rows], tx.day[rows])
    return first, last


def bucket(customer_id: str) -> int:
    """0..99 from a hash of the customer id: the held-out and validation split."""
    digest = hashlib.sha256(_HOLDOUT_SALT + customer_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True)
class Population:
    """Customers with a purchase before the cutoff: their attributes then, and what they did after."""

    cutoff: date
    horizon_days: int
    now: float
    first_day: date
    last_day: date
    ids: tuple[str, ...]
    attributes: tuple[dict[str, Any], ...]
    churned: BoolArray
    outcome_spend: FloatArray
    outcome_orders: IntArray
    held_out: BoolArray
    validation: BoolArray
    transactions_before: int
    customers_after_only: int

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def feature_days(self) -> int:
        """Days in the feature window: first day in the data .. the day before the cutoff."""
        return (self.cutoff - self.first_day).days

    @property
    def outcome_days(self) -> int:
        """Days in the outcome window: the horizon."""
        return self.horizon_days

    @property
    def training(self) -> BoolArray:
        return ~self.held_out

    def column(self, key: str) -> FloatArray:
        """One numeric attribute for every customer (0 when absent)."""
        return np.array([float(a.get(key, 0)) for a in self.attributes], dtype=np.float64)


def population_at(tx: Transactions, cutoff: date, horizon_days: int = DEFAULT_HORIZON_DAYS) -> Population:
    """Attributes at ``cutoff`` and outcomes in the ``horizon_days`` from it, for every earlier buyer."""
    if horizon_days < 1:
        raise ValueError(f"the horizon must be at least one day, not {horizon_days}")
    try:
        end = cutoff + timedelta(days=horizon_days - 1)
    except OverflowError:  # after 9999-12-31: no data can reach it
        raise ValueError(f"cutoff {cutoff} with a horizon of {horizon_days} days ends after the year 9999") from None
    if not tx.first_day < cutoff <= tx.last_day or end > tx.last_day:
        raise ValueError(
            f"cutoff {cutoff} with a horizon of {horizon_days} days needs data from before {cutoff} until {end}; "
            f"the data runs from {tx.first_day} to {tx.last_day}"
        )
    cut = to_day(cutoff)
    n = len(tx.customers)
    before = tx.day < cut
    after = (tx.day >= cut) & (tx.day < cut + horizon_days)
    first, last = first_and_last(tx, before)
    spend = np.bincount(tx.customer[before], weights=tx.amount[before], minlength=n)
    purchase_days = np.unique(np.stack([tx.customer[before], tx.day[before]], axis=1), axis=0)
    orders = np.bincount(purchase_days[:, 0], minlength=n)
    later = np.bincount(tx.customer[after], weights=tx.amount[after], minlength=n)
    active = np.bincount(tx.customer[after], minlength=n) > 0
    later_days = np.unique(np.stack([tx.customer[after], tx.day[after]], axis=1), axis=0)
    later_orders = np.bincount(later_days[:, 0], minlength=n)

    # Membership is "has a row before the cutoff", not a day >= 0: days before 1970 are negative, and a
    # sentinel of -1 for "never" dropped every customer whose last purchase was before 1970 (52 of 400 kept).
    members = np.flatnonzero(np.bincount(tx.customer[before], minlength=n) > 0)
    ids = tuple(tx.customers[i] for i in members)
    attributes = tuple(
        {
            "first_purchase_at": iso(int(first[i])),
            "last_purchase_at": iso(int(last[i])),
            "orders_total": int(orders[i]),
            "spend_total": round(float(spend[i]), 2),
        }
        for i in members
    )
    buckets = np.array([bucket(name) for name in ids], dtype=np.int64)
    return Population(
        cutoff=cutoff,
        horizon_days=horizon_days,
        now=epoch(cutoff),
        first_day=tx.first_day,
        last_day=tx.last_day,
        ids=ids,
        attributes=attributes,
        churned=~active[members],
        outcome_spend=np.round(later[members], 2),
        outcome_orders=later_orders[members].astype(np.int64),
        held_out=buckets < HOLDOUT_PERCENT,
        validation=(buckets >= HOLDOUT_PERCENT) & (buckets < HOLDOUT_PERCENT + VALIDATION_PERCENT),
        transactions_before=int(before.sum()),
        customers_after_only=n - int(members.size),
    )
