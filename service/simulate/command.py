"""``tailor simulate --population FILE [DIR]``: the argument parser; the work is imported when it runs.

DuckDB and the report are imported only by ``run``: the ``tailor`` command (and serving)
must not load them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from service.arguments import add_bundle_flag, bundle_of


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = commands.add_parser("simulate", help="decide a population file and report segment sizes, overlaps, reach")
    sim.add_argument("bundle", nargs="?", type=Path, metavar="DIR", help="bundle folder (default: .)")
    add_bundle_flag(sim)
    sim.add_argument(
        "--population", type=Path, required=True, metavar="FILE", help="CSV, JSON lines or Parquet: one visitor a row"
    )
    sim.add_argument("--now", help="decide as of this ISO 8601 time (default: now)")
    sim.add_argument("--locale", help="decide everyone with this context.locale, e.g. de-DE (default: none)")
    sim.add_argument("--page", help="decide everyone with this context.page, e.g. /cart (default: none)")
    sim.add_argument("--consent", metavar="COLUMN", help="a true/false column for consent (default: everyone consents)")
    sim.add_argument("--format", choices=("text", "json", "html"), default="text", help="report format (default: text)")
    sim.add_argument("--out", type=Path, metavar="FILE", help="write the report here (default: standard output)")
    sim.add_argument("--daily-visitors", type=int, metavar="N", help="visitors a day, for days to reach sample size")
    sim.add_argument("--baseline", type=float, default=0.05, help="baseline conversion rate (default: 0.05)")
    sim.add_argument("--mde", type=float, default=0.10, help="minimum detectable effect, relative (default: 0.10)")
    sim.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from service.simulate.main import main  # noqa: PLC0415 - DuckDB loads only when simulating

    args.bundle = bundle_of(args, args.bundle)
    code: int = main(args)
    return code
