"""Tailor's decision core next to GrowthBook's Python SDK on one 20-flag workload, in one process.

Run from the repository root (``make compare``)::

    .venv/bin/python loadtests/compare_growthbook.py [--rounds 7] [--visitors 1000]

The workload: 20 flags, flag_NN for visitors of one country (US, DE, FR by NN % 3), each a
50/50 experiment between on and off, bucketed by the visitor id. Four implementations
decide it for the same visitors ("visitor-{i}", countries cycling), timed in alternation
within each round so that a noisy neighbour hits them alike:

* lower bound: the workload written by hand in plain Python (xxh3 bucket per flag);
* Tailor: ``DecisionRequest`` + ``decide()`` on tests/bench/flags20 (loaded with load_bundle);
* GrowthBook per request: ``GrowthBook(attributes=..., features=FEATURES)`` per visitor with
  the features parsed once (``Feature(**f)``), then ``eval_feature`` for all 20 flags: the
  SDK's documented pattern for a server handling one request per instance;
* GrowthBook reused: one instance, ``set_attributes`` per visitor, then the 20 evaluations:
  the cheapest way to use the SDK, for fairness.

It prints the machine, the versions and a Markdown table of min and median µs per visitor
with the ratio to the lower bound, then a sanity check: the share of flags that target a
visitor must be the same everywhere (same conditions), and about half of those must be on
(GrowthBook hashes differently, so only the rates agree, not the arms).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from growthbook import Feature, GrowthBook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared workload lives in tests/bench

from harness import cpu_model  # loadtests/ is on the path when this runs as a script

from service.bundle.loader import load_bundle
from service.core.decide import DecisionRequest, decide
from tests.bench.workload import COUNTRIES, FLAGS, FLAGS20, lower_bound

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TIME_BUDGET_S = 50.0  # stop adding rounds past this (after at least MIN_ROUNDS): the script stays near a minute
MIN_ROUNDS = 3

# The same 20 flags as GrowthBook features (the JSON its API serves), parsed once.
FEATURES_JSON: dict[str, dict[str, Any]] = {
    name: {
        "defaultValue": False,
        "rules": [
            {
                "key": prefix.rstrip(":"),
                "condition": {"country": country},
                "variations": [False, True],
                "weights": [0.5, 0.5],
                "hashAttribute": "id",
            }
        ],
    }
    for name, country, prefix in FLAGS
}
FEATURES = {name: Feature(**spec) for name, spec in FEATURES_JSON.items()}
FEATURE_KEYS = tuple(FEATURES)

Answers = list[tuple[int, tuple[str, ...]]]  # per visitor: (how many flags target the visitor, the flags on)


def build_runners(visitors: int) -> dict[str, tuple[Callable[[], object], Callable[[], Answers]]]:
    """Per implementation: a timed run over every visitor, and an untimed one returning answers."""
    ids = [f"visitor-{i}" for i in range(visitors)]
    countries = [COUNTRIES[i % 3] for i in range(visitors)]
    plain = [{"country": c} for c in countries]  # what the storefront sends about a visitor
    with_id = [{"id": vid, "country": c} for vid, c in zip(ids, countries, strict=True)]  # GrowthBook wants the id in
    pairs = list(zip(ids, plain, strict=True))
    bundle = load_bundle(FLAGS20)

    def run_lower_bound() -> object:
        for vid, attrs in pairs:
            lower_bound(vid, attrs)
        return None

    def answers_lower_bound() -> Answers:
        out = []
        for vid, attrs in pairs:
            answer = lower_bound(vid, attrs)
            out.append(
                (sum(c == attrs["country"] for _, c, _ in FLAGS), tuple(k for k, v in answer.items() if v == "flag_on"))
            )
        return out

    def run_tailor() -> object:
        for vid, attrs in pairs:
            decide(bundle, DecisionRequest(vid, attrs, NOW, personalization=True))
        return None

    def answers_tailor() -> Answers:
        out = []
        for vid, attrs in pairs:
            placed = decide(bundle, DecisionRequest(vid, attrs, NOW, personalization=True)).placements
            targeted = sum(p.reason == "experiment" for p in placed.values())
            out.append((targeted, tuple(k for k, p in placed.items() if p.variant == "flag_on")))
        return out

    def run_gb_per_request() -> object:
        for attrs in with_id:
            gb = GrowthBook(attributes=attrs, features=FEATURES)
            for key in FEATURE_KEYS:
                gb.eval_feature(key)
        return None

    def answers_gb(reuse: bool) -> Answers:
        out = []
        shared = GrowthBook(features=FEATURES)
        for attrs in with_id:
            if reuse:
                shared.set_attributes(attrs)
                gb = shared
            else:
                gb = GrowthBook(attributes=attrs, features=FEATURES)
            results = {key: gb.eval_feature(key) for key in FEATURE_KEYS}
            targeted = sum(r.source == "experiment" for r in results.values())
            out.append((targeted, tuple(k for k, r in results.items() if r.value is True)))
        return out

    reused = GrowthBook(features=FEATURES)

    def run_gb_reused() -> object:
        for attrs in with_id:
            reused.set_attributes(attrs)
            for key in FEATURE_KEYS:
                reused.eval_feature(key)
        return None

    return {
        "Hand-written lower bound": (run_lower_bound, answers_lower_bound),
        "Tailor `DecisionRequest` + `decide()`": (run_tailor, answers_tailor),
        "GrowthBook 4.0.0, instance per request": (run_gb_per_request, lambda: answers_gb(reuse=False)),
        "GrowthBook 4.0.0, one instance + `set_attributes`": (run_gb_reused, lambda: answers_gb(reuse=True)),
    }


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per implementation (default 7)")
    parser.add_argument("--visitors", type=int, default=1000, help="visitors per round (default 1000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("growthbook").setLevel(logging.WARNING)

    started = time.perf_counter()
    runners = build_runners(args.visitors)
    answers = {name: answers_of() for name, (_, answers_of) in runners.items()}  # doubles as the warm-up

    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_no in range(args.rounds):
        if round_no >= MIN_ROUNDS and time.perf_counter() - started > TIME_BUDGET_S:
            print(f"(stopped after {round_no} rounds: time budget of {TIME_BUDGET_S:g} s)", file=sys.stderr)
            break
        order = list(runners.items())
        order = order[round_no % len(order) :] + order[: round_no % len(order)]  # rotate who goes first
        for name, (run, _) in order:
            gc.collect()
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) / args.visitors * 1e6)

    print_report(args, times, answers, time.perf_counter() - started)


def print_report(
    args: argparse.Namespace, times: dict[str, list[float]], answers: dict[str, Answers], elapsed: float
) -> None:
    names = list(times)
    base_min, base_median = min(times[names[0]]), statistics.median(times[names[0]])
    rounds = len(times[names[0]])
    print("## Decision core: 20 conditional 50/50 flags, one visitor\n")
    print(f"- command: `.venv/bin/python loadtests/compare_growthbook.py --rounds {args.rounds}`")
    print(f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {rounds} rounds of {args.visitors} visitors each")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} cores (shared); {platform.system()} {platform.release()}")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()})")
    packages = ("growthbook", "xxhash", "msgspec", "pydantic")
    print("- packages: " + ", ".join(f"{p} {version(p)}" for p in packages))
    print()
    print("| Implementation | min µs/visitor | median µs/visitor | x lower bound (min) | x lower bound (median) |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        low, mid = min(times[name]), statistics.median(times[name])
        print(f"| {name} | {low:.1f} | {mid:.1f} | {low / base_min:.1f} | {mid / base_median:.1f} |")
    print()
    print("Sanity check over the same visitors (per visitor: flags that target them, flags on):\n")
    print("| Implementation | targeted share of flags | on share of targeted | mean flags on |")
    print("|---|---:|---:|---:|")
    for name in names:
        pairs = answers[name]
        targeted = sum(t for t, _ in pairs)
        on = sum(len(o) for _, o in pairs)
        print(f"| {name} | {targeted / (20 * len(pairs)):.3f} | {on / targeted:.3f} | {on / len(pairs):.2f} |")
    lower, tailor, gb_new, gb_reused = (answers[n] for n in names)
    print()
    print(f"- Tailor serves exactly the lower bound's flags to every visitor (same hash): {tailor == lower}")
    same_targets = [t for t, _ in tailor] == [t for t, _ in gb_new]
    print(f"- Tailor and GrowthBook target as many flags for every visitor: {same_targets}")
    flag_on = [(set(a), set(b)) for (_, a), (_, b) in zip(tailor, gb_new, strict=True)]
    overlap = sum(len(a & b) for a, b in flag_on) / max(1, sum(len(a) for a, _ in flag_on))
    print(f"- of the flags Tailor turns on, GrowthBook turns on {overlap:.2f} (about 0.5: the hashes are independent)")
    print(f"- both GrowthBook patterns give the same answers: {gb_new == gb_reused}")
    print(f"- total run time {elapsed:.1f} s")
    if not (tailor == lower and same_targets and gb_new == gb_reused):
        sys.exit("the implementations disagree: the comparison is not of the same workload")


if __name__ == "__main__":
    main()
