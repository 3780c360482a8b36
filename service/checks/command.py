"""``tailor test [DIR] [FILE...]``: run the checks, print failures, coverage, and ``N passed, M failed``.

Exit status: 0 when every test passes, 1 when one fails, 2 when the bundle or a check
file is invalid (every problem printed as ``file:line: path: message``, as ``validate``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from service.arguments import add_bundle_flag, bundle_of
from service.bundle.loader import load_bundle
from service.checks import coverage
from service.checks.files import CHECKS_DIR, check_files, read_checks
from service.checks.junit import write_junit
from service.checks.runner import Outcome, Reach, run_check
from service.core.compile import Bundle
from service.core.errors import BundleError, Problem

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    test = commands.add_parser("test", help="run the bundle's rule tests (checks/**/*.yaml)")
    test.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="DIR_OR_FILE",
        help="the bundle folder first (default: .), then check files (default: every checks/**/*.yaml)",
    )
    add_bundle_flag(test)
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    test.add_argument("--coverage", action="store_true", help="list what no test reaches; a percentage per placement")
    test.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    root, files = _split(args)
    bundle = _load(root)
    if bundle is None:
        return EXIT_INVALID
    paths = [(f, _shown(root, f)) for f in files] or [(f, _shown(root, f)) for f in check_files(root)]
    if not paths:
        print(f"tailor: no check files in {root / CHECKS_DIR} (checks/**/*.yaml)", file=sys.stderr)
        return EXIT_INVALID
    checks, problems = read_checks(paths, bundle)
    if problems:
        _print_problems(problems)
        print(f"tailor: {len(problems)} error(s) in the check files; no test was run", file=sys.stderr)
        return EXIT_INVALID
    outcomes = [run_check(bundle, check) for check in checks]
    for outcome in outcomes:
        for failure in outcome.failures:
            print(failure.render())
    if args.coverage:
        _print_coverage(root, bundle, outcomes)
    if args.junit is not None:
        write_junit(args.junit, outcomes)
    failed = sum(1 for o in outcomes if o.failures)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_PASSED


def _split(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """``[DIR] [FILE...]``: the first path is the bundle folder unless it is a file (or ``--bundle`` names it)."""
    paths: list[Path] = args.paths
    if paths and paths[0].is_dir():
        return bundle_of(args, paths[0]), paths[1:]
    return bundle_of(args, None), paths


def _shown(root: Path, path: Path) -> str:
    """A check file as messages name it: relative to the bundle, prefixed with the folder as given."""
    try:
        inside = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
    return inside if str(root) in ("", ".") else (root / inside).as_posix()


def _load(root: Path) -> Bundle | None:
    try:
        return load_bundle(root)
    except BundleError as exc:
        shown = exc.problems if str(root) in ("", ".") else [_under(root, p) for p in exc.problems]
        _print_problems(shown)
        print(f"tailor: the bundle in {root} has {len(exc.problems)} error(s); no test was run", file=sys.stderr)
        return None


def _under(root: Path, problem: Problem) -> Problem:
    return replace(problem, file=(root / problem.file).as_posix())


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line or 0)):
        print(problem.render())


def _print_coverage(root: Path, bundle: Bundle, outcomes: Sequence[Outcome]) -> None:
    reach = Reach()
    for outcome in outcomes:
        reach.add(outcome.reach)
    found = coverage.items(bundle, reach)
    for located in coverage.locate(root, [item for item in found if not item.reached]):
        shown = located if str(root) in ("", ".") else replace(located, file=(root / located.file).as_posix())
        print(shown.render())
    for placement, (reached, total) in coverage.percentages(found).items():
        print(f"coverage {placement}: {reached}/{total} ({coverage.PERCENT * reached // total} %)")
    print(_summary(found))


def _summary(found: Sequence[coverage.Item]) -> str:
    parts = []
    for kind in ("rule", "segment", "variant", "arm"):
        mine = [item for item in found if item.kind == kind]
        parts.append(f"{kind}s {sum(i.reached for i in mine)}/{len(mine)}")
    return "coverage: " + ", ".join(parts)
