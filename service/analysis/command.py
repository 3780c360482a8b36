"""``tailor analyze``: read event logs, print or write the results; exit 3 on a sample ratio mismatch."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from service.analysis import report, stats
from service.analysis.results import DEFAULT_TARGET_MDE, Design, Mode, Options, Results, analyze
from service.analysis.source import DEFAULT_WINDOW_DAYS, SourceError, open_events
from service.core.spec import MAX_PLANNED_DAYS, MAX_PLANNED_VISITORS

if TYPE_CHECKING:  # the bundle is loaded only when asked (see _designs)
    from service.core.compile import CompiledExperiment

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_SRM = 3  # distinct from a failure to run: CI can tell a broken experiment from a broken command


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if args.format == "html" and args.out is None:
        _complain("tailor analyze: --format html needs --out FILE")
        return EXIT_USAGE
    try:
        options = _options(args)
    except ValueError as exc:
        _complain(f"tailor analyze: {exc}")
        return EXIT_USAGE
    try:
        designs = _overridden(_designs(args.bundle), args) if args.bundle else {}
        events = open_events(args.events)
        results = analyze(events, options, designs, timeline=args.format == "html")
    except (SourceError, ValueError) as exc:
        _complain(f"tailor analyze: {exc}")
        return EXIT_PROBLEMS
    if args.experiment:
        unknown = _unknown_experiments(args.experiment, results, designs)
        if unknown:
            _complain(f"tailor analyze: {unknown}")
            return EXIT_USAGE
        results = _only(results, args.experiment)
    elif not results.experiments:  # a report of its header alone, with exit 0, read as "all is well"
        _complain(f"tailor analyze: no exposure of any experiment in {_named(args.events)}; nothing to report")
    _write(results, args.format, args.out)
    flagged = [e.key for e in results.experiments if e.srm]
    if flagged:
        _complain(f"tailor analyze: sample ratio mismatch in {', '.join(flagged)}")
        return EXIT_SRM
    return EXIT_OK


def _complain(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tailor analyze", description="Experiment results from event logs")
    parser.add_argument("events", nargs="+", type=Path, help="JSON-lines or Parquet files, or folders holding them")
    parser.add_argument("--bundle", type=Path, help="bundle folder: arm order (first = baseline) and weights")
    parser.add_argument("--experiment", action="append", help="only this experiment (repeat)")
    parser.add_argument("--window-days", type=float, default=DEFAULT_WINDOW_DAYS, help="attribution window (7)")
    # the test and the plan's length: flags given here override every experiment's 'analysis' plan
    parser.add_argument("--fixed", action="store_true", help="fixed-horizon test: one look at the end")
    parser.add_argument("--sequential", action="store_true", help="group-sequential test: safe to look once a day")
    parser.add_argument("--planned-days", type=float, help="length of a sequential test's plan (14)")
    parser.add_argument("--always-valid", action="store_true", help="confidence sequence: safe to look at any time")
    parser.add_argument(
        "--planned-visitors", type=int, help="visitors an always-valid test plans to reach, its tuning (from the pace)"
    )
    parser.add_argument("--no-cuped", action="store_true", help="do not adjust by the pre-exposure covariate")
    parser.add_argument("--alpha", type=float, default=stats.ALPHA, help="significance level (0.05)")
    parser.add_argument("--target-mde", type=float, default=DEFAULT_TARGET_MDE, help="lift for days left (0.05)")
    parser.add_argument("--format", choices=("text", "json", "html"), default="text", help="output (text)")
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")
    return parser


def _options(args: argparse.Namespace) -> Options:
    planned_days = stats.PLANNED_DAYS if args.planned_days is None else args.planned_days
    flags = _flags(args, planned_days)
    wrong = [f"{flag} {rule}, not {_shown(value)}" for flag, value, fits, rule in flags if not fits]
    if wrong:
        raise ValueError("; ".join(wrong))
    if args.fixed + args.sequential + args.always_valid > 1:
        raise ValueError("choose one of --fixed, --sequential and --always-valid")
    if args.planned_visitors is not None and (args.fixed or args.sequential):  # it would be ignored
        raise ValueError("--planned-visitors tunes an always-valid test, not a fixed or sequential one")
    mode: Mode = "sequential" if args.sequential else "always-valid" if args.always_valid else "fixed"
    return Options(
        window_days=args.window_days, mode=mode, cuped=not args.no_cuped, alpha=args.alpha,
        target_mde=args.target_mde, planned_days=planned_days, planned_visitors=args.planned_visitors,
    )  # fmt: skip


def _shown(value: float) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 20 else f"a number of {len(text)} digits"


def _flags(args: argparse.Namespace, planned_days: float) -> list[tuple[str, float, bool, str]]:
    """Each numeric flag: its value, whether it fits, and the rule it must follow (a plan's, as in a rule file).

    Finite first: nan passes no comparison but fails none either, inf is a plan with no end, and
    a 400-digit --planned-visitors is no float at all.
    """
    visitors = args.planned_visitors
    return [
        ("--alpha", args.alpha, math.isfinite(args.alpha) and 0 < args.alpha < 1, "must lie in (0, 1)"),
        ("--window-days", args.window_days, math.isfinite(args.window_days) and args.window_days > 0,
         "must be a positive number"),
        ("--target-mde", args.target_mde, math.isfinite(args.target_mde) and args.target_mde > 0,
         "must be a positive number"),
        ("--planned-days", planned_days, math.isfinite(planned_days) and 1 <= planned_days <= MAX_PLANNED_DAYS,
         f"must lie in [1, {MAX_PLANNED_DAYS}]"),
        ("--planned-visitors", visitors or 0, visitors is None or 2 <= visitors <= MAX_PLANNED_VISITORS,
         f"must lie in [2, {MAX_PLANNED_VISITORS}]"),
    ]  # fmt: skip


def _designs(bundle: Path) -> dict[str, Design]:
    """Arm order, weights and analysis plan from the bundle (only loaded when asked: analysis runs without one)."""
    from service.bundle.loader import load_bundle  # noqa: PLC0415
    from service.core.errors import BundleError  # noqa: PLC0415

    try:
        loaded = load_bundle(bundle)
    except BundleError as exc:
        raise ValueError(f"the bundle does not compile: {exc}") from exc
    return {key: _design(e) for key, e in loaded.experiments.items()}


def _design(e: CompiledExperiment) -> Design:
    arms = tuple(a.key for a in e.arms), tuple(float(a.weight) for a in e.arms)
    return Design(*arms, e.analysis_mode, e.planned_days, e.planned_visitors)


def _overridden(designs: dict[str, Design], args: argparse.Namespace) -> dict[str, Design]:
    """The plans with what the command line sets removed: a flag wins over every experiment's YAML."""
    mode_set = args.fixed or args.sequential or args.always_valid
    return {
        key: msgspec.structs.replace(
            d,
            mode=None if mode_set else d.mode,
            planned_days=None if args.planned_days is not None else d.planned_days,
            planned_visitors=None if args.planned_visitors is not None else d.planned_visitors,
        )
        for key, d in designs.items()
    }


def _unknown_experiments(keys: Sequence[str], results: Results, designs: dict[str, Design]) -> str:
    """Why a ``--experiment`` names nothing to report (a typo printed an empty report and exit 0)."""
    from service.core.compile import suggest  # noqa: PLC0415 - the compiler loads only with a bundle or an error

    seen = {e.key for e in results.experiments}
    for key in keys:
        if key in seen:
            continue
        if key in designs:
            _complain(f"tailor analyze: --experiment {key}: the bundle has it, the events have no exposure of it yet")
            continue
        where = "in the events or the bundle" if designs else "in the events (--bundle DIR also knows the bundle's)"
        return f"--experiment {key}: no experiment of that key {where}{suggest(key, seen | set(designs))}"
    return ""


def _named(paths: Sequence[Path]) -> str:
    return ", ".join(map(str, paths[:3])) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _only(results: Results, keys: Sequence[str]) -> Results:
    return msgspec.structs.replace(results, experiments=[e for e in results.experiments if e.key in keys])


def _write(results: Results, form: str, out: Path | None) -> None:
    if form == "json":
        data = report.to_json(results)
    else:
        data = (report.to_html(results) if form == "html" else report.to_text(results)).encode()
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.write_bytes(data)
