"""Results of every experiment in the events: arms, SRM, and each arm against the baseline.

For each experiment: the visitors per arm with the sample-ratio-mismatch test (overall and per
segment), then each arm against the baseline for every segment (None: everyone), metric and kind
(conversion, value): lift, interval, p-value (fixed-horizon or sequential), the Bayesian
probability to beat the baseline and expected loss, the MDE and the days left, with
Benjamini-Hochberg adjusted p-values across the experiment's comparisons.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from service.analysis import stats
from service.analysis.source import DAY_SECONDS, DEFAULT_WINDOW_DAYS, Events

Kind = Literal["conversion", "value"]
Mode = Literal["fixed", "sequential", "always-valid"]
DEFAULT_TARGET_MDE = 0.05  # relative lift the days-left estimate aims to detect
MAX_LOOKS = 60  # daily points of the cumulative plot; a longer test is sampled evenly
BASELINE_NAMES = ("control", "default", "baseline")


class Design(msgspec.Struct, frozen=True):
    """What the bundle says about an experiment: its arms in order (the first is the baseline), weights,
    and its analysis plan where it declares one (None: the options' mode and planned days)."""

    arms: tuple[str, ...]
    weights: tuple[float, ...]
    mode: Mode | None = None
    planned_days: float | None = None
    planned_visitors: int | None = None


class Options(msgspec.Struct, frozen=True, kw_only=True):
    window_days: float = DEFAULT_WINDOW_DAYS
    mode: Mode = "fixed"
    cuped: bool = True
    alpha: float = stats.ALPHA
    power: float = stats.POWER
    target_mde: float = DEFAULT_TARGET_MDE
    planned_days: float = stats.PLANNED_DAYS  # the sequential plan: one look a day up to this many days
    planned_visitors: int | None = None  # the always-valid plan's size, fixed in advance (None: from the pace)


class MetricMean(msgspec.Struct, frozen=True):
    metric: str
    kind: Kind
    mean: float | None


class Arm(msgspec.Struct, frozen=True):
    key: str
    visitors: int
    share: float
    expected_share: float
    metrics: list[MetricMean]


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    arm: str
    baseline: str
    metric: str
    kind: Kind
    segment: str | None  # None: everyone
    visitors: int  # in the arm and the baseline together
    baseline_mean: float | None
    arm_mean: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None  # Benjamini-Hochberg across the experiment's comparisons
    prob_beat_baseline: float | None
    expected_loss: float | None
    mde: float | None
    days_left: float | None
    cuped: bool  # whether the pre-exposure covariate narrowed this comparison


class Point(msgspec.Struct, frozen=True):
    """One daily look at the cumulative lift of an arm, overall, for the cumulative plot."""

    day: int
    arm: str
    metric: str
    kind: Kind
    lift: float | None
    ci_low: float | None
    ci_high: float | None


class SegmentSrm(msgspec.Struct, frozen=True):
    segment: str
    visitors: list[int]
    srm_p: float
    srm: bool = False  # srm_p below SRM_THRESHOLD: this slice's assignment or logging is broken


class Experiment(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    baseline: str
    days: float
    srm_p: float
    srm: bool  # srm_p below SRM_THRESHOLD: assignment is broken, do not trust the comparisons
    mode: Mode = "fixed"  # the test this experiment was analysed with: its plan, or the command's flags
    planned_days: float | None = None  # the plan's length (None: a fixed test has none)
    planned_visitors: int | None = None  # the size an always-valid test is tuned to (None: from the pace so far)
    arms: list[Arm]
    segments: list[SegmentSrm]
    comparisons: list[Comparison]
    timeline: list[Point] = []


class Results(msgspec.Struct, frozen=True, kw_only=True):
    mode: Mode  # the default: each experiment's own plan (Experiment.mode) may differ
    alpha: float
    window_days: float
    cuped: bool
    srm_threshold: float = stats.SRM_THRESHOLD
    experiments: list[Experiment]


SumsKey = tuple[str, str | None, str, Kind]  # experiment, segment, metric, kind


def analyze(
    events: Events, options: Options, designs: Mapping[str, Design] | None = None, timeline: bool = False
) -> Results:
    """Every experiment in the events, with ``designs`` (from the bundle) where known."""
    designs = designs or {}
    events.look(options.window_days)
    counts = _arm_counts(events.rows("arm_visitors"))
    sums = _sums(events.rows("sufficient_statistics"))
    experiments = []
    for key, by_segment in sorted(counts.items()):
        design = _design(key, by_segment, designs)
        planned = _planned(options, design)
        at_plan_end = _at_plan_end(events, by_segment[None], planned)  # {} when nothing had happened by then
        experiment = _experiment(key, design, by_segment, sums if at_plan_end is None else at_plan_end, planned)
        if timeline:
            experiment = msgspec.structs.replace(experiment, timeline=_timeline(events, key, design, planned))
        experiments.append(experiment)
    return Results(
        mode=options.mode, alpha=options.alpha, window_days=options.window_days, cuped=options.cuped,
        experiments=experiments,
    )  # fmt: skip


class _Counts(msgspec.Struct):
    visitors: dict[str, int]
    first_ts: float
    last_ts: float


def _at_plan_end(events: Events, overall: _Counts, options: Options) -> dict[SumsKey, dict[str, stats.Sums]] | None:
    """The sums as of the last planned day of a sequential test that ran past it (else None)."""
    end = overall.first_ts + options.planned_days * DAY_SECONDS
    if options.mode != "sequential" or overall.last_ts <= end:
        return None
    events.look(options.window_days, as_of=end)
    sums = _sums(events.rows("sufficient_statistics"))
    events.look(options.window_days)
    return sums


def _arm_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str | None, _Counts]]:
    counts: dict[str, dict[str | None, _Counts]] = defaultdict(dict)
    for row in rows:
        entry = counts[row["experiment"]].setdefault(row["segment"], _Counts({}, math.inf, -math.inf))
        entry.visitors[row["arm"]] = int(row["visitors"])
        entry.first_ts = min(entry.first_ts, row["first_ts"])
        entry.last_ts = max(entry.last_ts, row["last_ts"])
    return counts


def _sums(rows: Sequence[Mapping[str, Any]]) -> dict[SumsKey, dict[str, stats.Sums]]:
    found: dict[SumsKey, dict[str, stats.Sums]] = defaultdict(dict)
    for row in rows:
        key = (row["experiment"], row["segment"], row["metric"], row["kind"])
        found[key][row["arm"]] = stats.Sums(
            float(row["visitors"]), row["sum"], row["sum_squares"],
            row["pre_sum"], row["pre_sum_squares"], row["sum_products"],
        )  # fmt: skip
    return found


def _planned(options: Options, design: Design) -> Options:
    """The options with the experiment's own plan where it has one."""
    mode = design.mode or options.mode
    return msgspec.structs.replace(
        options, mode=mode, planned_days=design.planned_days or options.planned_days,
        planned_visitors=(design.planned_visitors or options.planned_visitors) if mode == "always-valid" else None,
    )  # fmt: skip


def _design(key: str, by_segment: Mapping[str | None, _Counts], designs: Mapping[str, Design]) -> Design:
    """The bundle's design; without one, the arms seen, a 'control' first, with equal weights."""
    seen = sorted(by_segment[None].visitors)
    known = designs.get(key)
    if known is not None:
        extra = [arm for arm in seen if arm not in known.arms]  # arms the bundle no longer has
        return msgspec.structs.replace(
            known, arms=known.arms + tuple(extra), weights=known.weights + (0.0,) * len(extra)
        )
    baseline = next((name for name in BASELINE_NAMES if name in seen), seen[0])
    arms = (baseline, *(arm for arm in seen if arm != baseline))
    return Design(arms, (1.0,) * len(arms))


def _experiment(
    key: str,
    design: Design,
    by_segment: Mapping[str | None, _Counts],
    sums: Mapping[SumsKey, Mapping[str, stats.Sums]],
    options: Options,
) -> Experiment:
    overall = by_segment[None]
    days = max((overall.last_ts - overall.first_ts) / DAY_SECONDS, 1 / 24)
    total = sum(overall.visitors.values())
    weights = np.asarray(design.weights)
    visitors = [overall.visitors.get(arm, 0) for arm in design.arms]
    srm_p = float(stats.srm_p_value(visitors, weights))
    comparisons = _comparisons(key, design, sums, options, _read_days(days, options))
    if options.mode == "sequential" and days >= options.planned_days:  # its looks are over: no day is left to run
        comparisons = [msgspec.structs.replace(c, days_left=None) for c in comparisons]
    return Experiment(
        key=key, baseline=design.arms[0], days=days, srm_p=srm_p, srm=srm_p < stats.SRM_THRESHOLD,
        mode=options.mode, planned_days=None if options.mode == "fixed" else options.planned_days,
        planned_visitors=options.planned_visitors,
        arms=[
            Arm(arm, count, count / total, float(weights[i] / weights.sum()), _means(key, arm, sums))
            for i, (arm, count) in enumerate(zip(design.arms, visitors, strict=True))
        ],
        segments=[
            _segment_srm(segment, [entry.visitors.get(arm, 0) for arm in design.arms], weights)
            for segment, entry in sorted((s, e) for s, e in by_segment.items() if s is not None)
        ],
        comparisons=comparisons,
    )  # fmt: skip


def _segment_srm(segment: str, counts: list[int], weights: stats.Num) -> SegmentSrm:
    p = float(stats.srm_p_value(counts, weights))
    return SegmentSrm(segment, counts, p, p < stats.SRM_THRESHOLD)


def _read_days(days: float, options: Options) -> float:
    """The days the sums cover: a sequential test past its plan is read as of its last planned day."""
    return min(days, options.planned_days) if options.mode == "sequential" else days


def _means(key: str, arm: str, sums: Mapping[SumsKey, Mapping[str, stats.Sums]]) -> list[MetricMean]:
    return [
        MetricMean(metric, kind, _number(by_arm[arm].mean) if arm in by_arm else None)
        for (experiment, segment, metric, kind), by_arm in sorted(sums.items(), key=lambda item: item[0][2:])
        if experiment == key and segment is None
    ]


def _comparisons(
    key: str, design: Design, sums: Mapping[SumsKey, Mapping[str, stats.Sums]], options: Options, days: float
) -> list[Comparison]:
    baseline = design.arms[0]
    shares = _pair_shares(design)
    found = [
        _compare(by_arm[baseline], by_arm[arm], options, days, shares[arm], arm, baseline, metric, kind, segment)
        for (experiment, segment, metric, kind), by_arm in sorted(sums.items(), key=_order)
        if experiment == key and baseline in by_arm
        for arm in design.arms[1:]
        if arm in by_arm
    ]
    # the family: every comparison with a p-value (one that could not be computed is no test)
    tested = [i for i, c in enumerate(found) if c.p_value is not None]
    adjusted = stats.benjamini_hochberg([found[i].p_value for i in tested])
    for i, p in zip(tested, adjusted, strict=True):
        found[i] = msgspec.structs.replace(found[i], p_adjusted=float(p))
    return found


def _pair_shares(design: Design) -> dict[str, float]:
    """Per arm, the share of the experiment's visitors that it and the baseline get by their weights.

    Where weights say nothing (arms of weight 0, such as arms the bundle no longer has), the whole.
    """
    baseline = design.weights[0]
    total = sum(design.weights)
    shares = [(baseline + weight) / total if total > 0 else 0.0 for weight in design.weights]
    return {arm: share if share > 0 else 1.0 for arm, share in zip(design.arms, shares, strict=True)}


def _order(item: tuple[SumsKey, object]) -> tuple[bool, str, str, str]:
    _, segment, metric, kind = item[0]
    return segment is not None, segment or "", metric, kind


def _compare(
    a: stats.Sums, b: stats.Sums, options: Options, days: float, pair_share: float, *labels: Any
) -> Comparison:
    arm, baseline, metric, kind, segment = labels
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # undefined statistics become None
        estimates = stats.cuped(a, b) if options.cuped else (stats.plain(a), stats.plain(b))
        adjusted = options.cuped and bool(estimates[0].variance < stats.plain(a).variance)
        lift = stats.relative_lift(*estimates)
        interval = _interval(lift, a.n + b.n, options, days, pair_share)
        posterior = stats.bayesian(lift, options.alpha)
        mde = stats.mde(lift, options.alpha, options.power)
        left = stats.days_left(mde, options.target_mde, a.n + b.n, days)
    return Comparison(
        arm=arm, baseline=baseline, metric=metric, kind=kind, segment=segment, visitors=int(a.n + b.n),
        baseline_mean=_number(a.mean), arm_mean=_number(b.mean), lift=_number(lift.lift),
        ci_low=_number(interval.low), ci_high=_number(interval.high), p_value=_number(interval.p_value),
        p_adjusted=None, prob_beat_baseline=_number(posterior.probability_to_beat),
        expected_loss=_number(posterior.expected_loss), mde=_number(mde), days_left=_number(left), cuped=adjusted,
    )  # fmt: skip


def _interval(lift: stats.Lift, n: Any, options: Options, days: float, pair_share: float) -> stats.Interval:
    if options.mode == "sequential":
        return stats.group_sequential(lift, look_shares(days, options.planned_days), options.alpha)
    if options.mode == "always-valid":
        return stats.confidence_sequence(lift, n, _tuning(n, options, days, pair_share), options.alpha)
    return stats.fixed_horizon(lift, options.alpha)


def _tuning(n: Any, options: Options, days: float, pair_share: float) -> Any:
    """The size a confidence sequence is tightest at: the plan's, for the two arms compared, when it has one.

    A tuning fixed before the first look keeps the sequence one martingale at every look, as its
    guarantee assumes. Without a plan, the visitors so far at the pace so far times the planned
    days stand in: steady traffic keeps that nearly constant, but it moves with the pace.
    """
    if options.planned_visitors is not None:  # a segment is tuned to it too: valid, only wider
        return options.planned_visitors * pair_share
    return n * max(options.planned_days / days, 1.0)


def look_shares(days: float, planned_days: float) -> tuple[float, ...]:
    """The shares of the plan at each look: the end of every whole day so far, and now.

    Past the plan no alpha is left: the looks stop at its last day (``analyze`` then reads the
    outcomes as of that day, so running the test longer adds no look).
    """
    whole = [day / planned_days for day in range(1, math.floor(min(days, planned_days)) + 1)]
    now = min(days, planned_days) / planned_days
    # a look within minutes of the day's end is that day's look (and would need a grid too fine to integrate)
    return (*whole, now) if not whole or now > whole[-1] + 1e-4 else tuple(whole)


def _number(value: Any) -> float | None:
    """A finite float, or None where the statistic is undefined (a baseline mean of 0, one visitor …)."""
    number = float(value)
    return number if math.isfinite(number) else None


def _timeline(events: Events, key: str, design: Design, options: Options) -> list[Point]:
    """The cumulative lift at the end of each day since the first exposure (overall only)."""
    start, end = _span(events, key)
    days = max(1, math.ceil((end - start) / DAY_SECONDS))
    if options.mode == "sequential":  # a sequential test ends with its plan
        days = min(days, math.ceil(options.planned_days))
    looks = sorted({round(day) for day in np.linspace(1, days, min(days, MAX_LOOKS))})
    points: list[Point] = []
    for day in looks:
        events.look(options.window_days, as_of=start + day * DAY_SECONDS)
        sums = _sums(events.rows("sufficient_statistics"))
        points.extend(
            Point(day, c.arm, c.metric, c.kind, c.lift, c.ci_low, c.ci_high)
            for c in _comparisons(key, design, sums, options, float(day))
            if c.segment is None
        )
    events.look(options.window_days)
    return points


def _span(events: Events, key: str) -> tuple[float, float]:
    row = events.connection.execute(
        "SELECT MIN(ts), MAX(ts) FROM decisions WHERE experiment = ? AND reason = 'experiment'", [key]
    ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])
