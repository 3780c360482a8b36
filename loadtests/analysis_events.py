"""Synthetic decision and outcome logs at scale, for benchmarking ``tailor analyze``.

The events are the service's own types (``DecisionEvent``, ``OutcomeEvent``) encoded the way the
log's sinks encode them, laid out the way a deployment leaves them: several replicas with several
workers each, every worker with its own file (``decisions.<pid>.jsonl``) rotated into
``.jsonl.1``, ``.jsonl.2`` … when it passes ``--max-mb``. With ``--parquet`` the same events are
also written as one Parquet file of decisions and one of outcomes (through DuckDB).

The traffic follows the example bundle: every page view decides ``home_hero`` and
``promo_banner``; targeted visitors (vip, lapsed, eu_visitor) get their rule, the others fall into
``hero_layout_test`` (control/bold, 50/50, half the hero layer) or the default. One in ten
visitors gives no analytics consent (events tied to nobody), a few are in the holdout, most come
back for more page views (logged, not new exposures), and some buy (``purchase`` with a value)
or click; purchases before the first page view are the CUPED covariate. ``bold`` lifts purchases
by ``--lift`` among electronics fans only.

    .venv/bin/python loadtests/analysis_events.py --events 10000000 --out /tmp/analysis-events --parquet
    .venv/bin/tailor analyze /tmp/analysis-events/jsonl --format json --out /dev/null
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from service.telemetry import DecisionEvent, Event, OutcomeEvent
from service.telemetry.events import Pseudonymizer

START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
DAY = 86_400.0
EXPERIMENT = "hero_layout_test"
EVENTS_PER_VISITOR = 5.8  # measured: ~2.7 page views x 2 placements + ~0.4 outcomes
CHUNK = 200_000  # events encoded per step: bounds memory whatever the total
KEY = b"benchmark-pseudonym-key-0123456789"
# segment sets a visitor may have, with their shares; the first three are targeted by home_hero rules
SEGMENT_SETS: tuple[tuple[str, ...], ...] = (
    (), ("repeat_visitor",), ("electronics_fan",), ("electronics_fan", "repeat_visitor"),
    ("cart_abandoner",), ("likely_churn",), ("modern_app",), ("vip", "repeat_visitor"), ("lapsed",),
    ("eu_visitor",), ("eu_visitor", "valuable_in_eu"),
)  # fmt: skip
SEGMENT_SHARES = np.array([0.22, 0.18, 0.10, 0.06, 0.08, 0.06, 0.10, 0.05, 0.06, 0.06, 0.03])
TARGETED = {
    "vip": ("vip_offer", "hero_vip"),
    "lapsed": ("win_back", "hero_winback"),
    "eu_visitor": ("eu_localized", "hero_eu"),
}
BANNERS = {
    "cart_abandoner": ("cart_reminder", "banner_free_shipping"),
    "electronics_fan": ("electronics_promo", "banner_electronics"),
}
NO_CONSENT = 0.10
HOLDOUT = 0.05
IN_LAYER = 0.5  # hero_layout_test holds half the hero layer


@dataclass(frozen=True)
class Plan:
    visitors: int
    days: int = 28
    replicas: int = 2
    workers: int = 4
    max_bytes: int = 256 * 1024 * 1024
    lift: float = 0.10
    seed: int = 12


class Visitors(msgspec.Struct):
    """One row per visitor, as columns."""

    pseudonym: list[str | None]
    segments: np.ndarray  # index into SEGMENT_SETS
    arm: np.ndarray  # 0 control, 1 bold, -1 not in the experiment
    reason: np.ndarray  # home_hero's reason code, see HERO_REASONS
    first: np.ndarray  # seconds since the epoch of the first page view
    views: np.ndarray  # page views


HERO_REASONS = ("experiment", "targeting_match", "default", "holdout", "no_consent")


def visitors(plan: Plan, rng: np.random.Generator) -> Visitors:
    n = plan.visitors
    pseudonymize = Pseudonymizer(KEY)
    consent = rng.random(n) >= NO_CONSENT
    segments = rng.choice(len(SEGMENT_SETS), size=n, p=SEGMENT_SHARES / SEGMENT_SHARES.sum())
    targeted = np.array([any(s in TARGETED for s in SEGMENT_SETS[i]) for i in range(len(SEGMENT_SETS))])[segments]
    holdout = rng.random(n) < HOLDOUT
    in_layer = rng.random(n) < IN_LAYER
    reason = np.select(
        [~consent, holdout, targeted, in_layer], [4, 3, 1, 0], default=2
    )  # fmt: skip
    arm = np.where(reason == 0, rng.integers(0, 2, n), -1)
    # arrivals grow a little over the test, as a campaign ramps up
    first = START + plan.days * DAY * np.sqrt(rng.random(n))
    return Visitors(
        pseudonym=[pseudonymize(f"visitor-{i}") if consent[i] else None for i in range(n)],
        segments=segments, arm=arm, reason=reason, first=first, views=1 + rng.geometric(0.6, n),
    )  # fmt: skip


def decision_events(who: Visitors, i: int, rng: np.random.Generator) -> Iterator[Event]:
    segments = SEGMENT_SETS[who.segments[i]]
    visitor = who.pseudonym[i]
    at = who.first[i]
    for view in range(int(who.views[i])):
        if view:
            at += float(rng.exponential(2 * DAY))
        when = datetime.fromtimestamp(at, UTC)
        decision_id = f"{i:x}-{view}"
        yield _hero(who, i, visitor, segments if visitor else (), when, decision_id, exposure=view == 0)
        yield _banner(visitor, segments if visitor else (), when, decision_id)


def _hero(
    who: Visitors,
    i: int,
    visitor: str | None,
    segments: tuple[str, ...],
    when: datetime,
    decision_id: str,
    exposure: bool,
) -> DecisionEvent:
    reason = HERO_REASONS[who.reason[i]]
    common = {"decision_id": decision_id, "time": when, "revision": "b3f1c2d4", "placement": "home_hero"}
    if reason == "experiment":
        arm = ("control", "bold")[who.arm[i]]
        return DecisionEvent(
            **common, variant="hero_bold" if arm == "bold" else "hero_default", reason="experiment", rule="hero_ab",
            experiment=EXPERIMENT, arm=arm, bucket=(i * 7919) % 10_000, segments=segments, visitor=visitor,
            exposure=exposure,
        )  # fmt: skip
    if reason == "targeting_match":
        rule, variant = next(TARGETED[s] for s in segments if s in TARGETED)
        return DecisionEvent(**common, variant=variant, reason=reason, rule=rule, segments=segments, visitor=visitor)
    return DecisionEvent(**common, variant="hero_default", reason=reason, segments=segments, visitor=visitor)


def _banner(visitor: str | None, segments: tuple[str, ...], when: datetime, decision_id: str) -> DecisionEvent:
    common = {"decision_id": decision_id, "time": when, "revision": "b3f1c2d4", "placement": "promo_banner"}
    for segment in segments:
        if segment in BANNERS:
            rule, variant = BANNERS[segment]
            return DecisionEvent(**common, variant=variant, reason="targeting_match", rule=rule, segments=segments,
                                 visitor=visitor)  # fmt: skip
    return DecisionEvent(**common, variant="banner_newsletter", reason="default", segments=segments, visitor=visitor)


def outcome_events(who: Visitors, i: int, plan: Plan, rng: np.random.Generator) -> Iterator[Event]:
    visitor = who.pseudonym[i]
    if visitor is None:
        return  # no consent: outcomes are dropped at the door
    planted = who.arm[i] == 1 and "electronics_fan" in SEGMENT_SETS[who.segments[i]]
    loyal = float(rng.gamma(1.0, 1.0))  # shared by the pre-period and the test: CUPED has a covariate
    if rng.random() < 0.15 * loyal:
        yield _outcome(visitor, who.first[i] - float(rng.uniform(0.1, 6.9)) * DAY, "purchase", rng)
    if rng.random() < 0.08 * loyal * (1 + plan.lift if planted else 1):
        yield _outcome(visitor, who.first[i] + float(rng.uniform(0, 6.9)) * DAY, "purchase", rng)
    if rng.random() < 0.25:
        yield OutcomeEvent(time=datetime.fromtimestamp(who.first[i] + float(rng.uniform(0, 3600)), UTC),
                           visitor=visitor, metric="hero_click")  # fmt: skip


def _outcome(visitor: str, at: float, metric: str, rng: np.random.Generator) -> OutcomeEvent:
    value = round(float(rng.gamma(2.0, 25.0)), 2)
    return OutcomeEvent(time=datetime.fromtimestamp(at, UTC), visitor=visitor, metric=metric, value=value)


class Files:
    """One rotated JSON-lines file per worker, as the file sink leaves them."""

    def __init__(self, folder: Path, plan: Plan) -> None:
        self.plan = plan
        self.paths = [
            folder / f"replica-{r}" / f"decisions.{4100 + w}.jsonl"
            for r in range(plan.replicas)
            for w in range(plan.workers)
        ]
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        self.sizes = [0] * len(self.paths)
        self.rotations = [0] * len(self.paths)

    def write(self, worker: int, lines: bytes) -> None:
        if self.sizes[worker] + len(lines) > self.plan.max_bytes:
            self._rotate(worker)
        with self.paths[worker].open("ab") as out:
            out.write(lines)
        self.sizes[worker] += len(lines)

    def _rotate(self, worker: int) -> None:
        path = self.paths[worker]
        self.rotations[worker] += 1
        for index in range(self.rotations[worker], 1, -1):  # .1 → .2 …, like the sink
            path.with_name(f"{path.name}.{index - 1}").rename(path.with_name(f"{path.name}.{index}"))
        path.rename(path.with_name(f"{path.name}.1"))
        path.write_bytes(b"")
        self.sizes[worker] = 0


def generate(plan: Plan, folder: Path) -> int:
    """Write the logs under ``folder``; the number of events written."""
    rng = np.random.default_rng(plan.seed)
    who = visitors(plan, rng)
    files = Files(folder, plan)
    order = np.argsort(who.first)  # workers write in time order, roughly: by first page view
    encoder = msgspec.json.Encoder()
    total = 0
    batch: list[Event] = []
    for n, i in enumerate(order):
        batch.extend(decision_events(who, int(i), rng))
        batch.extend(outcome_events(who, int(i), plan, rng))
        if len(batch) >= CHUNK or n == len(order) - 1:
            total += _spread(files, batch, encoder, rng)
            batch = []
    return total


def _spread(files: Files, batch: list[Event], encoder: msgspec.json.Encoder, rng: np.random.Generator) -> int:
    """A load balancer's view: each event goes to a random worker of a random replica."""
    workers = rng.integers(0, len(files.paths), len(batch))
    for worker in range(len(files.paths)):
        lines = bytearray()
        for k in np.flatnonzero(workers == worker):
            lines += encoder.encode(batch[k])
            lines += b"\n"
        files.write(worker, bytes(lines))
    return len(batch)


def to_parquet(jsonl: Path, folder: Path) -> None:
    """The same events as Parquet: decisions and outcomes apart, each with its own columns."""
    import duckdb  # noqa: PLC0415 -- an analysis dependency, only needed for this step

    folder.mkdir(parents=True, exist_ok=True)
    source = f"read_json('{jsonl}/**/*.jsonl*', format = 'newline_delimited', union_by_name = true)"
    with duckdb.connect() as connection:
        connection.execute("SET preserve_insertion_order = false")
        connection.execute(
            f"COPY (SELECT schema, CAST(time AS TIMESTAMPTZ) AS time, decision_id, revision, placement, variant,"
            f" reason, rule, experiment, arm, bucket, segments, visitor, exposure FROM {source}"
            f" WHERE schema LIKE 'tailor.decision/%') TO '{folder / 'decisions.parquet'}' (FORMAT parquet)"
        )  # fmt: skip
        connection.execute(
            f"COPY (SELECT schema, CAST(time AS TIMESTAMPTZ) AS time, visitor, metric, value FROM {source}"
            f" WHERE schema LIKE 'tailor.outcome/%') TO '{folder / 'outcomes.parquet'}' (FORMAT parquet)"
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="about this many events in all")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--max-mb", type=int, default=256, help="a worker's file rotates past this size")
    parser.add_argument("--parquet", action="store_true", help="also write the events as Parquet")
    args = parser.parse_args()
    plan = Plan(visitors=int(args.events / EVENTS_PER_VISITOR), days=args.days, max_bytes=args.max_mb * 1024 * 1024)
    shutil.rmtree(args.out, ignore_errors=True)
    written = generate(plan, args.out / "jsonl")
    print(f"{written} events from {plan.visitors} visitors in {args.out / 'jsonl'}")
    if args.parquet:
        to_parquet(args.out / "jsonl", args.out / "parquet")
        print(f"the same events as Parquet in {args.out / 'parquet'}")


if __name__ == "__main__":
    main()
