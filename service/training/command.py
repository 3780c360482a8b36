"""``tailor train``: retrain the rfm, churn and value models, write them with their cards and the report.

    tailor train [--data PATH] [--format cdnow|csv] [--out models] [--report docs/models]
                 [--horizon DAYS] [--cutoff YYYY-MM-DD] [--seed N]

Paths are relative to the current directory. ``trained_at`` is the current time, or
``SOURCE_DATE_EPOCH`` when set (then two runs write identical cards too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from service.training.transactions import DEFAULT_HORIZON_DAYS, FORMATS, Format, default_cutoff, load

if TYPE_CHECKING:
    from service.training.train import TrainingRun

EXIT_OK = 0
EXIT_PROBLEMS = 1
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
        "--horizon", type=int, default=DEFAULT_HORIZON_DAYS,
        help=f"days the models forecast: churn = no purchase in them (default: {DEFAULT_HORIZON_DAYS})",
    )  # fmt: skip
    p.add_argument(
        "--cutoff", type=date.fromisoformat,
        help="first day of the outcome window (default: the last day of the data + 1 - the horizon)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
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
    try:
        tx = load(args.data, fmt, source=_display(args.data))
        cutoff = args.cutoff or default_cutoff(tx, args.horizon)
        run = train(tx, cutoff, horizon_days=args.horizon, seed=args.seed, trained_at=_trained_at())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"tailor train: {exc}\n")
        return EXIT_PROBLEMS
    written = write_models(run, args.out)
    written += write_report(run, args.report, command=_command(argv))
    sys.stdout.write(summary(run, written, time.perf_counter() - started))
    return EXIT_OK


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
        f"rfm:   k={run.rfm.k} (elbow k={choice.elbow}; best silhouette at or after it within 0.01; "
        f"silhouette {choice.silhouette[choice.ks.index(run.rfm.k)]:.3f}, alone it would pick k={best_silhouette}); "
        + ", ".join(f"{name} {count}" for name, count in run.models["rfm"].card.segments.items()),
        (f"churn: ROC AUC {c['roc_auc']:.4f} vs Pareto/NBD {cb['roc_auc']:.4f}; Brier {c['brier']:.4f} "
        f"vs {cb['brier']:.4f} ({_churn_kind(run)}); likely_churn {run.models['churn'].card.segments['likely_churn']}"),
        (f"value (out of time): MAE {v['mae']:.2f} RMSE {v['rmse']:.2f} top decile {v['top_decile_share']:.3f} "
        f"total/actual {v['total_ratio']:.3f} (served {run.value.choice.chosen}); BG/NBD x GG "
        f"MAE {vb['bg_nbd']['mae']:.2f} RMSE {vb['bg_nbd']['rmse']:.2f}; zero MAE {vb['zero']['mae']:.2f} "
        f"RMSE {vb['zero']['rmse']:.2f}; high_value {run.models['value'].card.segments['high_value']}"),
        "features: churn " + ", ".join(s.name for s in run.models["churn"].specs)
        + "; value, purchases " + ", ".join(s.name for s in run.models["value"].specs),
    ]  # fmt: skip
    lines += [f"WARNING: {w}" for w in run.warnings] or ["warnings: none"]
    lines.append(f"wrote {len(written)} files in {seconds:.1f} s: " + ", ".join(p.as_posix() for p in written))
    return "\n".join(lines) + "\n"


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
