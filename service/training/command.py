"""``tailor train``: retrain the rfm, churn and value models, write them with their cards and the report.

    tailor train [--data PATH] [--format cdnow|csv] [--out models] [--report docs/models]
                 [--horizon DAYS] [--cutoff YYYY-MM-DD] [--seed N]

Paths are relative to the current directory. ``trained_at`` is the current time, or
``SOURCE_DATE_EPOCH`` when set (then two runs write identical cards too).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.arguments import whole_number
from service.training.transactions import DEFAULT_HORIZON_DAYS, FORMATS, Format, default_cutoff, load

if TYPE_CHECKING:
    from service.training.train import TrainingRun

EXIT_OK = 0
EXIT_PROBLEMS = 1
# --horizon: a day to a century. A larger number is a typo, and overflowed the date arithmetic (10^8 days)
# or the C int of the fits (10^12) with a traceback; 0 or less failed only after the data had loaded.
HORIZON_RANGE = (1, 36_500)
SEED_RANGE = (0, 2**32 - 1)  # what scikit-learn's random_state takes
DEFAULT_DATA = Path("data/cdnow/CDNOW_master.txt")
# The optional `training` dependencies (pyproject.toml); `make run` installs only the serving ones.
TRAINING_MODULES = frozenset({"sklearn", "skl2onnx", "onnx", "matplotlib", "threadpoolctl", "scipy", "numpy"})
MISSING_TRAINING = (
    "tailor train: the training dependencies are not installed (no module named '{module}'). "
    "Run `make train`, which installs them into .venv and trains, or install them into this environment "
    "with `pip install -r requirements/dev.lock` (or `pip install -e '.[training]'`).\n"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tailor train",
        description="Retrain the segment models (rfm, churn, value) from transactions; write ONNX, cards and report.",
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"transactions file (default: {DEFAULT_DATA})")
    p.add_argument(
        "--format", choices=FORMATS, help="cdnow (whitespace, YYYYMMDD) or csv (customer_id,date,amount); "
        "default: csv for *.csv, else cdnow"
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("models"), help="folder for <name>.onnx and <name>.yaml")
    p.add_argument("--report", type=Path, default=Path("docs/models"), help="folder for REPORT.md and its figures")
    p.add_argument(
        "--horizon", type=whole_number(*HORIZON_RANGE), default=DEFAULT_HORIZON_DAYS,
        help=f"days the models forecast, {HORIZON_RANGE[0]} to {HORIZON_RANGE[1]:,}: churn = no purchase in them "
        f"(default: {DEFAULT_HORIZON_DAYS})",
    )  # fmt: skip
    p.add_argument(
        "--cutoff", type=date.fromisoformat,
        help="first day of the outcome window (default: the last day of the data + 1 - the horizon)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=whole_number(*SEED_RANGE), default=0,
        help=f"random seed, {SEED_RANGE[0]} to {SEED_RANGE[1]} (default: 0)",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    # Imported here so `tailor train --help` is quick and argument errors need no scikit-learn.
    try:
        from service.training.report import write_report  # noqa: PLC0415
        from service.training.train import train, write_models  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        if module not in TRAINING_MODULES:
            raise
        sys.stderr.write(MISSING_TRAINING.format(module=module))
        return EXIT_PROBLEMS
    fmt: Format | None = args.format
    created: list[Path] = []
    try:
        tx = load(args.data, fmt, source=_display(args.data))
        cutoff = args.cutoff or default_cutoff(tx, args.horizon)
        # Before the training: a folder that cannot be written failed after it, with --out already written.
        for folder in (args.out, args.report):
            created += writable(folder)
        run = train(tx, cutoff, horizon_days=args.horizon, seed=args.seed, trained_at=_trained_at())
        written = write_models(run, args.out)
        written += write_report(run, args.report, command=_command(argv))
    except (OSError, ValueError) as exc:
        _remove_empty(created)
        sys.stderr.write(f"tailor train: {exc}\n")
        return EXIT_PROBLEMS
    sys.stdout.write(summary(run, written, time.perf_counter() - started))
    return EXIT_OK


def writable(folder: Path) -> list[Path]:
    """Create ``folder`` and write a file in it, or raise OSError with "cannot write <folder>: <reason>".
    Returns the folders it created, for ``_remove_empty``."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(f"cannot write {folder.as_posix()}: {_reason(folder, exc)}") from None
    return missing


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a failed run created, deepest first, if still empty: a failed run leaves nothing."""
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (a write failed part way) or already gone
            folder.rmdir()


def _reason(folder: Path, exc: OSError) -> str:
    """Why: a file where a folder should be is named (the system says "Not a directory" or "File exists")."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{blocker.as_posix()} is a file, not a folder"
    return (exc.strerror or str(exc)).lower()


def summary(run: TrainingRun, written: Sequence[Path], seconds: float) -> str:
    """The short summary ``main`` prints: k and why, AUC and Brier, MAE and RMSE, warnings."""
    pop = run.population
    choice = run.rfm.choice
    c, cb = run.churn.metrics, run.churn.baseline_metrics
    v, vb = run.value.metrics, run.value.baseline_metrics
    best_silhouette = choice.ks[max(range(len(choice.ks)), key=lambda i: choice.silhouette[i])]
    lines = [
        (f"data {run.tx.source}: {run.tx.rows} transactions, {len(run.tx.customers)} customers; cutoff {pop.cutoff}, "
        f"features {pop.feature_days} days, outcome {pop.outcome_days} days; {pop.size} customers "
        f"({int(pop.held_out.sum())} held out)"),
        f"rfm:   k={run.rfm.k} (elbow k={choice.elbow}; best silhouette at or after it within 0.01{_lowered(run)}; "
        f"silhouette {choice.silhouette[choice.ks.index(run.rfm.k)]:.3f}, alone it would pick k={best_silhouette}); "
        + ", ".join(f"{name} {count}" for name, count in run.models["rfm"].card.segments.items()),
        (f"churn: ROC AUC {_figure(c['roc_auc'])} vs Pareto/NBD {_reference_auc(cb)}; Brier {c['brier']:.4f} "
        f"vs {_number(cb['brier'], 4)} ({_churn_kind(run)}); likely_churn "
        f"{run.models['churn'].card.segments['likely_churn']}"),
        (f"value (out of time): MAE {v['mae']:.2f} RMSE {v['rmse']:.2f} top decile {v['top_decile_share']:.3f} "
        f"total/actual {v['total_ratio']:.3f} (served {run.value.choice.chosen}); BG/NBD x GG "
        f"MAE {_number(vb['bg_nbd']['mae'])} RMSE {_number(vb['bg_nbd']['rmse'])}; zero MAE {vb['zero']['mae']:.2f} "
        f"RMSE {vb['zero']['rmse']:.2f}; high_value {run.models['value'].card.segments['high_value']}"),
        "features: churn " + ", ".join(s.name for s in run.models["churn"].specs)
        + "; value, purchases " + ", ".join(s.name for s in run.models["value"].specs),
    ]  # fmt: skip
    lines += [f"WARNING: {w}" for w in run.warnings] or ["warnings: none"]
    lines.append(f"wrote {len(written)} files in {seconds:.1f} s: " + ", ".join(p.as_posix() for p in written))
    return "\n".join(lines) + "\n"


def _lowered(run: TrainingRun) -> str:
    """The minimum cluster's part of the k line: the report said k was lowered, the summary did not."""
    metrics: Any = run.models["rfm"].card.metrics  # JSON: the card's shape, as the report reads it
    minimum = metrics["minimum_cluster"]
    lowered = minimum["lowered_from"]
    return "" if lowered is None else f", lowered from {lowered}: a cluster was under {minimum['customers']} customers"


def _figure(value: float | None) -> str:
    """A ROC AUC to 4 digits, or "n/a" where it is undefined: held-out customers with one outcome give nan
    (the card holds null), and "ROC AUC nan" read as a broken run."""
    return "n/a (one outcome among the held-out customers)" if value is None or math.isnan(value) else f"{value:.4f}"


def _reference_auc(metrics: dict[str, float]) -> str:
    """The reference's ROC AUC; a reference whose scores were not finite has no Brier either (the warning says why)."""
    return "n/a (its scores are not finite)" if math.isnan(metrics["brier"]) else _figure(metrics["roc_auc"])


def _number(value: float, digits: int = 2) -> str:
    """A reference's figure, or n/a where its scores were not finite ("nan" read as a broken run)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _churn_kind(run: TrainingRun) -> str:
    backtest = run.churn.backtest
    return f"out of time, backtest horizon {backtest.b} days" if backtest else "in period"


def _display(path: Path) -> str:
    """The data path as the card records it: relative to the current directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _trained_at() -> datetime:
    fixed = os.environ.get("SOURCE_DATE_EPOCH")
    if fixed:
        return datetime.fromtimestamp(int(fixed), tz=UTC)
    return datetime.now(UTC).replace(microsecond=0)


def _command(argv: Sequence[str] | None) -> str:
    return " ".join(["tailor train", *(argv or [])])


if __name__ == "__main__":
    raise SystemExit(main())
