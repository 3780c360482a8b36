"""Synthetic event logs with a planted effect, written with the real event types and encoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np

from service.telemetry import DecisionEvent, Event, OutcomeEvent

START = datetime(2026, 11, 2, tzinfo=UTC)
EXPERIMENT = "hero_layout_test"  # the example bundle's experiment: arms control, bold at 50/50


@dataclass(frozen=True)
class Plan:
    visitors: int = 4000
    days: int = 14
    base_rate: float = 0.10
    lift: float = 1.0  # relative lift of "bold" in the planted segment
    planted_segment: str = "vip"
    bold_kept: float = 1.0  # share of bold's exposures that reach the log (below 1: a broken assignment)
    lost_in: str | None = None  # lose them only in this segment (a redirect that breaks for one kind of visitor)
    seed: int = 5
    segments: tuple[str, ...] = field(default=("vip", "lapsed"))


def events(plan: Plan) -> list[Event]:
    rng = np.random.default_rng(plan.seed)
    found: list[Event] = []
    for number in range(plan.visitors):
        visitor = f"{number:032x}"  # stands for a pseudonym
        arm = "bold" if rng.random() < 0.5 else "control"
        lost = arm == "bold" and rng.random() > plan.bold_kept  # the same draws as before lost_in
        if lost and plan.lost_in is None:
            continue
        segment = rng.choice([*plan.segments, ""], p=[0.3] * len(plan.segments) + [1 - 0.3 * len(plan.segments)])
        if lost and segment == plan.lost_in:
            continue
        segments = (str(segment),) if segment else ()
        seen = START + timedelta(days=float(rng.uniform(0, plan.days)))
        found += [_decision(visitor, arm, seen, segments, True, number)]
        if rng.random() < 0.3:  # a later page view: logged, but not a new exposure
            found += [_decision(visitor, arm, seen + timedelta(hours=2), segments, False, number)]
        rate = plan.base_rate * (1 + plan.lift if arm == "bold" and segment == plan.planted_segment else 1)
        if rng.random() < rate:
            spent = float(rng.gamma(2.0, 20.0))
            found.append(OutcomeEvent(time=seen + timedelta(days=float(rng.uniform(0, 5))), visitor=visitor,
                                      metric="purchase", value=round(spent, 2)))  # fmt: skip
        if rng.random() < 0.2:  # bought before the test: the covariate
            found.append(OutcomeEvent(time=seen - timedelta(days=float(rng.uniform(1, 6))), visitor=visitor,
                                      metric="purchase", value=round(float(rng.gamma(2.0, 20.0)), 2)))  # fmt: skip
    return found


def _decision(visitor: str, arm: str, at: datetime, segments: tuple[str, ...], exposure: bool, n: int) -> Event:
    return DecisionEvent(
        decision_id=f"d-{n}-{int(exposure)}", time=at, revision="r", placement="home_hero",
        variant="hero_bold" if arm == "bold" else "hero_default", reason="experiment", experiment=EXPERIMENT,
        arm=arm, bucket=n % 10_000, segments=segments, visitor=visitor, exposure=exposure,
    )  # fmt: skip


def write(folder: Path, plan: Plan, workers: int = 2) -> Path:
    """The events spread over ``workers`` files, time-ordered within each, as real workers write them."""
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(events(plan), key=lambda e: e.time)
    for worker in range(workers):
        lines = b"".join(msgspec.json.encode(e) + b"\n" for e in ordered[worker::workers])
        (folder / f"decisions.{1000 + worker}.jsonl").write_bytes(lines)
    return folder
