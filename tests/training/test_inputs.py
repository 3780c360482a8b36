"""`tailor train` on the inputs an outside tester found: each is trained correctly or refused, saying what and where."""

from __future__ import annotations

import codecs
import gzip
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.core.models import features_for
from service.segments.onnx import OnnxScorer
from service.training.cards import read_card
from service.training.command import HORIZON_RANGE, SEED_RANGE, _figure, main, parser
from service.training.reference import GG_MIN_Q, GammaGamma, rfm_at
from service.training.train import MIN_CUSTOMERS, _servable, likely_churn_text
from service.training.transactions import HOLDOUT_PERCENT, bucket, default_cutoff, load, population_at

from .conftest import shop

HEADER = "customer_id,date,amount\n"


def _no_held_out(path: Path) -> None:
    """``MIN_CUSTOMERS`` customers whose ids all fall outside the held-out share."""
    ids = [f"k{i}" for i in range(10 * MIN_CUSTOMERS) if bucket(f"k{i}") >= HOLDOUT_PERCENT][:MIN_CUSTOMERS]
    days = ("2024-01-05", "2024-03-01", "2025-06-01")
    path.write_text(HEADER + "".join(f"{c},{day},{10 + i}\n" for i, c in enumerate(ids) for day in days))


def _text(data: bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(data)


def _shop_with(row: str) -> Callable[[Path], object]:
    """The generated shop with ``row`` as its line 3 (a customer's second order)."""

    def write(path: Path) -> None:
        lines = shop(path).read_text().splitlines(keepends=True)
        path.write_text("".join([*lines[:2], f"{lines[1].split(',')[0]},2024-12-31,{row}\n", *lines[2:]]))

    return write


def _nothing(rng: np.random.Generator, spend: float) -> float:
    del rng, spend
    return 0.0


def _everyone_once(path: Path) -> None:
    """300 customers who buy once in 2024, and one who buys in mid-2025 so that the data reach a cutoff."""
    rows = [f"c{i},2024-{1 + i % 12:02d}-{1 + i % 27:02d},{10 + i % 7}\n" for i in range(300)]
    path.write_text(HEADER + "".join(rows) + "zz,2025-06-30,5\n")


LATIN1 = (HEADER + "c1,2024-01-05,10\n").encode() + "café,2024-01-06,10\n".encode("latin-1")
# A byte order mark before the header: the bad byte is still named, on its line (0x30, the "0" 3 bytes before
# it, was named, and a bad byte starting line 3 was put on line 2).
BOM_MID_LINE = codecs.BOM_UTF8 + f"{HEADER}c1,2024-01-0".encode() + b"\xff,10\n"
BOM_LINE_START = codecs.BOM_UTF8 + f"{HEADER}c1,2024-01-05,10\n".encode() + b"\xffc2,2024-01-06,10\n"
ONE = f"{HEADER}c1,2024-01-05,10\n"
# file name, what writes it, how stderr starts after "tailor train: " ({file}: the path given)
BAD_FILES = [
    ("latin1.csv", _text(LATIN1), "{file}:3: byte 0xe9 is not UTF-8: save the file as UTF-8 text"),
    ("bom_mid.csv", _text(BOM_MID_LINE), "{file}:2: byte 0xff is not UTF-8: save the file as UTF-8 text"),
    ("bom_start.csv", _text(BOM_LINE_START), "{file}:3: byte 0xff is not UTF-8: save the file as UTF-8 text"),
    ("shop.csv.gz", _text(gzip.compress(ONE.encode(), mtime=0)), "{file}: a gzip file, not a text file"),
    ("big.csv", _shop_with("1e308"), "{file}:3: amount 1e308 must be below 10^15"),
    ("e39.csv", _shop_with("1e39"), "{file}:3: amount 1e39 must be below 10^15 (a unit or a typo?)"),
    ("e15.csv", _shop_with("1000000000000000"), "{file}:3: amount 1000000000000000 must be below 10^15"),
    ("tiny.csv", lambda path: shop(path, customers=6),
     f"too few customers: 6 before the cutoff 2024-09-02, need at least {MIN_CUSTOMERS}"),
    ("none.csv", _no_held_out, f"no held-out customer among the {MIN_CUSTOMERS} before the cutoff"),
    ("once.csv", _everyone_once,
     "every training customer made no purchase in the 273 days from the cutoff 2024-10-01: the churn model needs both"),
    ("zero.csv", lambda path: shop(path, amount=_nothing),
     "every amount before the cutoff 2024-09-23 is 0: there is no spend to learn the value model from"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "write", "message"), BAD_FILES, ids=[row[0] for row in BAD_FILES])
def test_a_bad_file_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, write: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / name
    write(path)
    out, report = tmp_path / "out" / "models", tmp_path / "report"
    assert main(["--data", str(path), "--out", str(out), "--report", str(report)]) == 1
    assert capsys.readouterr().err.startswith("tailor train: " + message.format(file=path))
    assert not (tmp_path / "out").exists()  # a failed run leaves no folder behind
    assert not report.exists()


@pytest.mark.parametrize(("amount", "accepted"), [("999999999999999", True), ("1e15", False), ("inf", False)])
def test_amounts_are_bounded_below_10_to_the_15(tmp_path: Path, amount: str, accepted: bool) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(f"{HEADER}c1,2024-01-05,{amount}\n")
    if accepted:
        assert load(path).amount[0] == float(amount)
    else:
        with pytest.raises(ValueError, match=r"shop\.csv:2: amount"):
            load(path)


# the arguments, what argparse says after "argument <flag>: " (service.arguments.whole_number, the settings' wording)
BAD_ARGUMENTS = [
    (["--horizon", "0"], "'0' is below 1"),
    (["--horizon", "-5"], "'-5' is below 1"),
    (["--horizon", "36501"], "'36501' is above 36500"),
    (["--horizon", "100000000"], "'100000000' is above 36500"),
    (["--horizon", "999999999999"], "'999999999999' is above 36500"),
    (["--horizon", "1.5"], "'1.5' is not a whole number"),
    (["--seed", "-1"], "'-1' is below 0"),
    (["--seed", "4294967296"], "'4294967296' is above 4294967295"),
    (["--seed", "x"], "'x' is not a whole number"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGUMENTS, ids=[" ".join(row[0]) for row in BAD_ARGUMENTS])
def test_bad_horizon_or_seed_exits_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert f"argument {args[0]}: {message}\n" in capsys.readouterr().err


def test_the_ends_of_the_ranges_are_accepted() -> None:
    for horizon, seed in zip(HORIZON_RANGE, SEED_RANGE, strict=True):
        args = parser().parse_args(["--horizon", str(horizon), "--seed", str(seed)])
        assert (args.horizon, args.seed) == (horizon, seed)


@pytest.mark.parametrize(("cutoff", "horizon"), [("9999-06-01", "273"), ("9999-12-31", "36500")])
def test_a_cutoff_whose_horizon_ends_after_9999_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cutoff: str, horizon: str
) -> None:
    path = tmp_path / "shop.csv"
    shop(path)
    args = ["--data", str(path), "--cutoff", cutoff, "--horizon", horizon, "--out", str(tmp_path / "m")]
    assert main([*args, "--report", str(tmp_path / "r")]) == 1
    assert f"cutoff {cutoff} with a horizon of {horizon} days ends after the year 9999" in capsys.readouterr().err


# --out or --report under a regular file: refused before any training, nothing written
UNWRITABLE = [("afile/models", "report"), ("models", "afile/report"), ("afile", "report")]


@pytest.mark.parametrize(("out", "report"), UNWRITABLE)
def test_an_output_folder_that_cannot_be_written_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, report: str
) -> None:
    data = shop(tmp_path / "shop.csv")
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "rfm.onnx").write_text("the models of the last training")
    args = ["--data", str(data), "--out", str(tmp_path / out), "--report", str(tmp_path / report)]
    assert main(args) == 1
    bad = out if "afile" in out else report
    reason = f"{tmp_path}/afile is a file, not a folder"
    assert capsys.readouterr().err == f"tailor train: cannot write {tmp_path}/{bad}: {reason}\n"
    assert (tmp_path / "models" / "rfm.onnx").read_text() == "the models of the last training"
    assert not (tmp_path / "report").exists()


# (first purchases from, cutoff): every customer who bought before the cutoff counts, before 1970 too
EPOCHS = [
    (date(2024, 1, 1), None),
    (date(1969, 3, 1), None),
    (date(1950, 1, 1), None),
    (date(1969, 3, 1), date(1969, 10, 1)),
]


@pytest.mark.parametrize(("start", "cutoff"), EPOCHS)
def test_customers_before_1970_count(tmp_path: Path, start: date, cutoff: date | None) -> None:
    tx = load(shop(tmp_path / "shop.csv", start=start))
    at = cutoff or default_cutoff(tx)
    before = {tx.customers[c] for c in np.unique(tx.customer[tx.day < (at - date(1970, 1, 1)).days])}
    population = population_at(tx, at)
    assert set(population.ids) == before
    assert rfm_at(tx, at).x.size == len(before)
    assert population.customers_after_only == len(tx.customers) - len(before)


def test_a_shop_from_1969_trains_like_the_same_shop_in_2024(tmp_path: Path) -> None:
    """The same purchases moved back 55 years: the same customers, the same segments."""
    cards = {}
    for start in (date(1969, 3, 1), date(2024, 3, 1)):
        data = shop(tmp_path / f"{start.year}.csv", start=start)
        out = tmp_path / str(start.year)
        assert main(["--data", str(data), "--out", str(out), "--report", str(out / "report")]) == 0
        cards[start.year] = {name: read_card(out / f"{name}.yaml") for name in ("rfm", "churn", "value")}
    for name in ("rfm", "churn", "value"):
        assert cards[1969][name].segments == cards[2024][name].segments
    customers = len(load(tmp_path / "1969.csv").customers)
    assert cards[1969]["rfm"].metrics["population"] == cards[2024]["rfm"].metrics["population"] == customers


def _pareto_spend(rng: np.random.Generator, spend: float) -> float:
    """Order amounts with a Pareto tail of index 0.7 (no finite mean): Gamma-Gamma's unbounded fit gives q = 0.87."""
    del spend
    return 5 * (1 + float(rng.pareto(0.7)))


# (orders, mean spend per order) of the customers a Gamma-Gamma is fitted on
GG_DATA = [
    ("heavy tail", np.array([1.0, 1, 2, 3, 1, 2, 5, 1]), np.array([3.0, 25, 9, 40, 12000, 4, 60000, 7])),
    ("no spend", np.array([1.0, 2, 3]), np.zeros(3)),
    ("one customer", np.array([2.0]), np.array([30.0])),
]


@pytest.mark.parametrize(("n", "m"), [row[1:] for row in GG_DATA], ids=[row[0] for row in GG_DATA])
def test_gamma_gamma_keeps_q_above_1(n: np.ndarray, m: np.ndarray) -> None:
    """Its expected spend per order is a mean only for q > 1: below it a visitor without orders got < 0 or inf."""
    for weights in (None, n):
        gg = GammaGamma.fit(n, m, weights)
        assert gg.q >= GG_MIN_Q
        expected = gg.expected(np.array([0.0, 1, 2, 10]), np.array([0.0, 5, 50, 500]))
        assert np.isfinite(expected).all()
        assert (expected > 0).all()


def test_the_value_model_on_heavy_tailed_spend_scores_finite_non_negative_values(tmp_path: Path) -> None:
    """Scored as serving scores: the card's features from attributes, then the ONNX graph (it gave -13.9)."""
    data = shop(tmp_path / "shop.csv", amount=_pareto_spend)
    out = tmp_path / "models"
    assert main(["--data", str(data), "--out", str(out), "--report", str(tmp_path / "report")]) == 0
    now = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
    visitors: list[dict[str, Any]] = [{}] + [
        {
            "first_purchase_at": f"{first}T00:00:00Z",
            "last_purchase_at": f"{last}T00:00:00Z",
            "orders_total": orders,
            "spend_total": spend,
        }
        for first in ("2023-01-01", "2024-06-01")
        for last in ("2024-06-01", "2025-05-31")
        for orders in (1, 2, 7, 80)
        for spend in (0, 1.5, 300, 10**7)
    ]
    for name in ("value", "purchases"):
        card = read_card(out / f"{name}.yaml")
        scorer = OnnxScorer(card, out / card.file)
        scores = [scorer.score(features_for(card.inputs, visitor, now)) for visitor in visitors]
        assert all(isinstance(s, float) and np.isfinite(s) and s >= 0 for s in scores), (name, min(scores))


# (flagged training customers, the words of the card's likely_churn description)
FLAGGED = [
    ([True, False, False, False], "the 25% of training customers most likely to churn"),
    ([True, True, True, False, False, False, False, False, False, False], "the 30% of training customers most"),
    ([False, False, False], "no training customer: no step of 0.01 flags a share nearer 25%"),
]


@pytest.mark.parametrize(("flagged", "text"), FLAGGED)
def test_the_likely_churn_description_says_the_share_it_flags(flagged: list[bool], text: str) -> None:
    assert text in likely_churn_text(np.array(flagged))


# (purchases and value of the customers, of a visitor without orders; what the refusal says, or None)
FORECASTS = [
    ([1.0, 0.0], [1.5, 0.2], None),
    ([1.0, np.nan], [1.5, 0.2], "the fitted purchases model forecasts nan for 1 of 2 rows"),
    ([1.0, 0.1], [1.5, np.inf], "the fitted value model forecasts inf for 1 of 2 rows"),
    ([1.0, 0.1], [-1.26, 0.2], "the fitted value model forecasts -1.26 for 1 of 2 rows"),
]


@pytest.mark.parametrize(("purchases", "value", "message"), FORECASTS)
def test_a_value_graph_forecasting_nan_inf_or_less_than_0_is_refused(
    purchases: list[float], value: list[float], message: str | None
) -> None:
    out = {"purchases": np.array([[purchases[0]]]), "value": np.array([[value[0]]])}
    blank = {"purchases": np.array([[purchases[1]]]), "value": np.array([[value[1]]])}
    if message is None:
        _servable(out, blank, MIN_CUSTOMERS)
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            _servable(out, blank, MIN_CUSTOMERS)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.81234, "0.8123"), (float("nan"), "n/a (one outcome among the held-out customers)"), (None, "n/a (one")],
)
def test_an_undefined_roc_auc_is_printed_as_such(value: float | None, shown: str) -> None:
    assert _figure(value).startswith(shown)  # `--horizon 1` printed "ROC AUC nan vs Pareto/NBD nan"
