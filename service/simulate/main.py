"""Run a simulation: load the bundle with its ONNX models, read the population, decide, report."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import msgspec

from service.core.errors import BundleError
from service.simulate.html import html_report
from service.simulate.population import PopulationError, read_population
from service.simulate.report import Report, build_report
from service.simulate.scoring import load_with_models
from service.simulate.tally import simulate
from service.simulate.text import text_report

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def main(args: argparse.Namespace) -> int:
    try:
        bundle, models = load_with_models(args.bundle)
    except BundleError as exc:
        for problem in exc.problems:
            print(problem.render())
        print(f"tailor: the bundle in {args.bundle} has {len(exc.problems)} error(s)", file=sys.stderr)
        return EXIT_PROBLEMS
    now = _now(args.now)
    try:
        context = {key: value for key, value in (("locale", args.locale), ("page", args.page)) if value}
        tally = simulate(bundle, models, read_population(args.population, args.consent), now, context)
        report = build_report(
            bundle,
            tally,
            args.population.name,
            now,
            baseline=args.baseline,
            mde=args.mde,
            daily_visitors=args.daily_visitors,
        )
    except (PopulationError, ValueError) as exc:
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _write(args, _rendered(report, args.format))
    return EXIT_OK


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _rendered(report: Report, kind: str) -> str:
    if kind == "json":
        return msgspec.json.encode(report).decode() + "\n"
    if kind == "html":
        return html_report(report)
    return text_report(report)


def _write(args: argparse.Namespace, text: str) -> None:
    if args.out is None:
        sys.stdout.write(text)
        return
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
