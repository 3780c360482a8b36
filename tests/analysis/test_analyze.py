"""``tailor analyze`` on synthetic logs with a planted lift: found where planted, not elsewhere."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from service.analysis import stats
from service.analysis.command import EXIT_PROBLEMS, EXIT_SRM, EXIT_USAGE
from service.analysis.results import Mode, Options
from service.bundle.loader import load_bundle
from service.cli import main
from service.core.decide import DecisionRequest, decide
from service.core.spec import AnalysisMode
from service.telemetry import DecisionEvent
from tests.analysis.logs import EXPERIMENT, Plan, write
from tests.analysis.logs import START as T0

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("planted"), Plan())


def analyze_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["analyze", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def comparisons(report: dict[str, Any], **match: object) -> list[dict[str, Any]]:
    [experiment] = report["experiments"]
    return [c for c in experiment["comparisons"] if all(c[k] == v for k, v in match.items())]


def test_the_planted_lift_is_found_in_its_segment_only(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = analyze_json(capsys, str(planted), "--bundle", str(ROOT))
    assert code == 0
    by_segment = {c["segment"]: c for c in comparisons(report, metric="purchase", kind="conversion")}
    assert set(by_segment) == {None, "vip", "lapsed"}
    vip, lapsed = by_segment["vip"], by_segment["lapsed"]
    assert vip["ci_low"] > 0  # planted: +100 % conversion for bold among vips
    assert vip["p_adjusted"] < 0.05
    assert vip["prob_beat_baseline"] > 0.99
    assert lapsed["ci_low"] < 0 < lapsed["ci_high"]  # nothing planted
    assert 0.5 < vip["lift"] < 1.6


def test_the_json_report_has_the_documented_fields(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, report = analyze_json(capsys, str(planted), "--bundle", str(ROOT))
    [experiment] = report["experiments"]
    assert experiment["key"] == EXPERIMENT
    assert 0 <= experiment["srm_p"] <= 1
    assert [a["key"] for a in experiment["arms"]] == ["control", "bold"]  # the bundle's order: control first
    assert {"key", "visitors", "metrics"} <= set(experiment["arms"][0])
    assert {"metric", "kind", "mean"} <= set(experiment["arms"][0]["metrics"][0])
    fields = {"arm", "baseline", "metric", "segment", "lift", "ci_low", "ci_high", "p_value", "prob_beat_baseline"}
    assert all(fields <= set(c) for c in experiment["comparisons"])
    assert {c["baseline"] for c in experiment["comparisons"]} == {"control"}


def test_a_sample_ratio_mismatch_fails_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(tmp_path / "broken", Plan(bold_kept=0.85))  # 15 % of bold's exposures never logged
    assert main(["analyze", str(broken)]) == EXIT_SRM
    captured = capsys.readouterr()
    assert "SAMPLE RATIO MISMATCH" in captured.out
    assert f"sample ratio mismatch in {EXPERIMENT}" in captured.err


def test_sequential_intervals_are_wider_than_fixed_ones(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """14 daily looks of a 14-day plan cost the group-sequential interval about a tenth (1.09 here);
    the confidence sequence, safe at any moment, costs half (1.55)."""
    runs = [analyze_json(capsys, str(planted), *flags)[1] for flags in ([], ["--sequential"], ["--always-valid"])]
    fixed, sequential, always = (
        next(c["ci_high"] - c["ci_low"] for c in comparisons(r, segment=None, kind="conversion")) for r in runs
    )
    assert 1.05 * fixed < sequential < 1.2 * fixed
    assert always > 1.5 * fixed
    assert [r["mode"] for r in runs] == ["fixed", "sequential", "always-valid"]


def test_a_sequential_test_past_its_plan_is_read_at_its_last_planned_day(
    planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 14-day log read with a 7-day plan: its lifts count only visitors exposed in the first 7 days."""
    _, whole = analyze_json(capsys, str(planted), "--sequential")
    _, planned = analyze_json(capsys, str(planted), "--sequential", "--planned-days", "7")
    visitors = [comparisons(r, segment=None, kind="conversion")[0]["visitors"] for r in (whole, planned)]
    assert 0.4 * visitors[0] < visitors[1] < 0.6 * visitors[0]
    assert main(["analyze", str(planted), "--sequential", "--always-valid"]) == EXIT_USAGE
    assert main(["analyze", str(planted), "--planned-days", "0.5"]) == EXIT_USAGE
    assert "--planned-days must lie in [1, 3650], not 0.5" in capsys.readouterr().err


def test_a_sequential_test_past_its_plan_has_no_days_left(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Past its plan a sequential test adds no look, so running it longer cannot shrink its MDE."""
    _, past = analyze_json(capsys, str(planted), "--sequential", "--planned-days", "7")
    _, within = analyze_json(capsys, str(planted), "--sequential", "--planned-days", "28")
    assert all(c["days_left"] is None for c in comparisons(past))
    assert all(c["days_left"] is not None for c in comparisons(within) if c["mde"] is not None)
    assert comparisons(within)


def test_a_plan_that_ends_before_anything_happened_is_read_as_of_its_end(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One exposure 89 days before the rest (a wrong clock, a test visit) starts the plan, which is over
    with nothing to compare by its last day: no comparison, rather than all the data at the last look."""
    early = tmp_path / "early"
    shutil.copytree(planted, early)
    first = {"schema": "tailor.decision/1", "time": (T0 - timedelta(days=89)).isoformat(), "experiment": EXPERIMENT,
             "arm": "control", "visitor": "early-visitor", "reason": "experiment"}  # fmt: skip
    (early / "early.jsonl").write_text(json.dumps(first) + "\n")
    _, report = analyze_json(capsys, str(early), "--sequential")
    [experiment] = report["experiments"]
    assert experiment["days"] > 89
    assert experiment["comparisons"] == []
    _, whole = analyze_json(capsys, str(early))  # a fixed test reads all of it
    assert whole["experiments"][0]["comparisons"]


def test_the_html_report_opens_offline_with_its_plots(planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["analyze", str(planted), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    labels = re.findall(r'aria-label="([^"]+)"', page)
    assert {"cumulative lift over time", "forest plot of the lift per segment"} <= set(labels)
    assert "arm shares and the sample ratio mismatch test" in labels
    assert "<script" not in page
    ids = re.findall(r'id="([^"]+)"', page)
    assert ids
    assert len(ids) == len(set(ids))  # each plot clips to its own area
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg")


def test_the_text_report_names_every_comparison(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(planted)]) == 0
    out = capsys.readouterr().out
    assert f"experiment {EXPERIMENT}" in out
    assert len(re.findall(r"^  bold ", out, flags=re.MULTILINE)) == 3 * 2  # 3 segments, 2 kinds of purchase


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "missing")]) == EXIT_PROBLEMS
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path), "--format", "html"]) == EXIT_USAGE
    assert "needs --out" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path), "--alpha", "1.5"]) == EXIT_USAGE
    assert "--alpha must lie in (0, 1)" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "rules.yaml").write_text("version: 1\nplacements: {}\nexperiments: {}\n")
    assert main(["analyze", str(tmp_path), "--bundle", str(tmp_path / "broken")]) == EXIT_PROBLEMS
    assert "the bundle does not compile" in capsys.readouterr().err


UNKNOWN_EXPERIMENTS = [
    ([f"--experiment={EXPERIMENT[:-1]}"], EXIT_USAGE, "no experiment of that key in the events (--bundle DIR also"),
    ([f"--experiment={EXPERIMENT[:-1]}"], EXIT_USAGE, f"(did you mean '{EXPERIMENT}'?)"),
    (["--experiment=nope", "--bundle", str(ROOT)], EXIT_USAGE, "nope: no experiment of that key in the events or the"),
    (["--experiment=hero_copy_test", "--bundle", str(ROOT)], 0, "the events have no exposure of it yet"),
]


@pytest.mark.parametrize(("flags", "code", "message"), UNKNOWN_EXPERIMENTS)
def test_an_experiment_named_that_nothing_knows_is_a_usage_error(
    flags: list[str], code: int, message: str, planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in --experiment printed an empty report and exit 0: a CI job read it as a pass."""
    assert main(["analyze", str(planted), *flags]) == code
    assert message in capsys.readouterr().err


def test_the_defaults_are_those_docs_analysis_md_names() -> None:
    options = Options()
    assert (options.window_days, options.alpha, options.target_mde, options.power) == (7.0, 0.05, 0.05, 0.8)
    assert (options.mode, options.cuped, options.planned_days, stats.SRM_THRESHOLD) == ("fixed", True, 14.0, 0.001)


@pytest.mark.parametrize(
    ("seen", "baseline"),
    [
        (["b", "a"], "a"),
        (["bold", "control"], "control"),
        (["default", "x"], "default"),
        (["z", "baseline"], "baseline"),
    ],
)
def test_without_a_bundle_the_baseline_is_control_or_else_the_first_by_name(
    seen: list[str], baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [exposure(f"v-{i}", arm) for i, arm in enumerate(seen * 5)]
    (tmp_path / "log.jsonl").write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in lines))
    _, report = analyze_json(capsys, str(tmp_path))
    [experiment] = report["experiments"]
    assert experiment["baseline"] == baseline
    assert [a["expected_share"] for a in experiment["arms"]] == [0.5, 0.5]


def exposure(visitor: str, arm: str) -> DecisionEvent:
    return DecisionEvent(
        decision_id=visitor, time=T0, revision="r", placement="p", variant=arm, reason="experiment",
        experiment="x", arm=arm, visitor=visitor, exposure=True,
    )  # fmt: skip


def test_an_experiment_with_one_arm_seen_so_far_has_no_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [exposure(f"v-{i}", "control") for i in range(5)]
    (tmp_path / "log.jsonl").write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in lines))
    code, report = analyze_json(capsys, str(tmp_path))
    [experiment] = report["experiments"]
    assert (code, experiment["srm_p"], experiment["comparisons"]) == (0, 1.0, [])


TWO_PLANS = """\
version: 1
placements:
  home_hero:
    default: hero_default
    rules:
      - { segment: vip, experiment: hero_layout_test }
      - { experiment: fixed_twin }
segments:
  vip:
    when: { attr: tier, eq: vip }
experiments:
  hero_layout_test:
    status: running
    arms: [{ key: control, variant: hero_default }, { key: bold, variant: hero_bold }]
    analysis: { mode: sequential, planned_days: 7 }
  fixed_twin:
    status: running
    arms: [{ key: control, variant: hero_default }, { key: bold, variant: hero_bold }]
"""


@pytest.fixture(scope="module")
def two_plans(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The planted log twice, the second copy under another experiment key, and a bundle whose first
    experiment plans a 7-day sequential test while its twin declares no plan: same data, two tests."""
    folder = tmp_path_factory.mktemp("two_plans")
    for log in sorted(planted.glob("*.jsonl")):
        text = log.read_text()
        (folder / log.name).write_text(text)
        key = f'"experiment":"{EXPERIMENT}"'
        twin = "".join(line.replace(key, '"experiment":"fixed_twin"') for line in text.splitlines(True) if key in line)
        (folder / f"twin.{log.name}").write_text(twin)  # the exposures again; the outcomes are shared
    bundle = tmp_path_factory.mktemp("bundle")
    (bundle / "rules").mkdir()
    (bundle / "rules" / "home.yaml").write_text(TWO_PLANS)
    shutil.copytree(ROOT / "content", bundle / "content")
    return folder, bundle


def overall_widths(report: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {
        e["key"]: next(
            c["ci_high"] - c["ci_low"] for c in e["comparisons"] if c["segment"] is None and c["kind"] == "conversion"
        )
        for e in report["experiments"]
    }


def plans(report: dict) -> dict[str, tuple[str, float | None]]:  # type: ignore[type-arg]
    return {e["key"]: (e["mode"], e["planned_days"]) for e in report["experiments"]}


def test_each_experiment_is_analysed_with_its_own_plan(
    two_plans: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, bundle = two_plans
    _, report = analyze_json(capsys, str(log), "--bundle", str(bundle))
    assert plans(report) == {EXPERIMENT: ("sequential", 7.0), "fixed_twin": ("fixed", None)}
    assert report["mode"] == "fixed"  # the default, for experiments without a plan
    # the 7-day plan reads the first 7 days only, with 7 looks: a wider interval than the whole log's fixed one
    widths = overall_widths(report)
    assert widths[EXPERIMENT] > 1.3 * widths["fixed_twin"]
    _, alone = analyze_json(capsys, str(log), "--sequential", "--planned-days", "7", "--experiment", EXPERIMENT)
    assert overall_widths(alone)[EXPERIMENT] == pytest.approx(widths[EXPERIMENT], rel=1e-9)
    main(["analyze", str(log), "--bundle", str(bundle)])
    text = capsys.readouterr().out
    assert text.startswith("mode: each experiment's own, alpha 0.05")
    assert f"experiment {EXPERIMENT} (14.0 days, baseline control; sequential test, 7-day plan)" in text
    assert "experiment fixed_twin (14.0 days, baseline control; fixed test)" in text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--fixed"], {EXPERIMENT: ("fixed", None), "fixed_twin": ("fixed", None)}),
        (["--always-valid"], {EXPERIMENT: ("always-valid", 7.0), "fixed_twin": ("always-valid", 14.0)}),
        (["--planned-days", "10"], {EXPERIMENT: ("sequential", 10.0), "fixed_twin": ("fixed", None)}),
        (["--sequential", "--planned-days", "5"], {EXPERIMENT: ("sequential", 5.0), "fixed_twin": ("sequential", 5.0)}),
    ],
)
def test_command_line_flags_override_every_experiments_plan(
    flags: list[str], expected: dict[str, tuple[str, float | None]], two_plans: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    log, bundle = two_plans
    _, report = analyze_json(capsys, str(log), "--bundle", str(bundle), *flags)
    assert plans(report) == expected
    if flags == ["--fixed"]:  # same data, same test: the twins' intervals agree
        widths = overall_widths(report)
        assert widths[EXPERIMENT] == pytest.approx(widths["fixed_twin"], rel=1e-9)


def test_the_html_report_shows_each_experiments_plan(two_plans: tuple[Path, Path], tmp_path: Path) -> None:
    log, bundle = two_plans
    out = tmp_path / "report.html"
    assert main(["analyze", str(log), "--bundle", str(bundle), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    assert "<b>sequential</b> test with a 7-day plan" in page
    assert "<b>fixed</b> test" in page


def test_an_analysis_plan_changes_no_decision(two_plans: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = two_plans
    plain = tmp_path / "plain"
    shutil.copytree(bundle, plain)
    rules = plain / "rules" / "home.yaml"
    rules.write_text(rules.read_text().replace("    analysis: { mode: sequential, planned_days: 7 }\n", ""))
    with_plan, without = load_bundle(bundle), load_bundle(plain)
    assert with_plan.experiments[EXPERIMENT].analysis_mode == "sequential"
    assert without.experiments[EXPERIMENT].analysis_mode is None
    arms = set()
    for number in range(300):
        attributes = {"tier": "vip" if number % 2 else "new"}
        request = DecisionRequest(f"v-{number}", attributes, T0, personalization=True)
        decision = decide(with_plan, request)
        assert decision.placements == decide(without, request).placements
        held = decision.placements["home_hero"].experiment
        arms.add(None if held is None else (held.key, held.arm))
    assert {(EXPERIMENT, "bold"), ("fixed_twin", "control")} <= arms  # both experiments took visitors in


def test_the_rule_files_modes_are_the_commands_modes() -> None:
    assert get_args(AnalysisMode) == get_args(Mode)


def overall(report: dict[str, Any]) -> dict[str, Any]:
    return comparisons(report, segment=None, kind="conversion", metric="purchase")[0]


def test_an_always_valid_test_is_tuned_to_its_planned_visitors(
    planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tuned to the size the pace stands in for, the sequence is the pace's; tuned elsewhere, it moves.

    The planted log covers 14 days; with a 13-day plan the pace stands in for the visitors so far.
    """
    _, paced = analyze_json(capsys, str(planted), "--always-valid", "--planned-days", "13")
    [experiment] = paced["experiments"]
    assert experiment["planned_visitors"] is None
    visitors = overall(paced)["visitors"]
    assert experiment["days"] >= 13
    _, same = analyze_json(capsys, str(planted), "--always-valid", "--planned-visitors", str(visitors))
    assert same["experiments"][0]["planned_visitors"] == visitors
    # both arms are the whole of a 50/50 experiment, so its two arms are tuned to all of the plan
    assert overall(same)["ci_low"] == pytest.approx(overall(paced)["ci_low"], rel=1e-9)
    _, larger = analyze_json(capsys, str(planted), "--always-valid", "--planned-visitors", str(100 * visitors))
    assert overall(larger)["ci_high"] - overall(larger)["ci_low"] > overall(same)["ci_high"] - overall(same)["ci_low"]
    assert main(["analyze", str(planted), "--always-valid", "--planned-visitors", "1"]) == EXIT_USAGE
    assert "--planned-visitors must lie in [2, 1000000000000], not 1" in capsys.readouterr().err
    assert main(["analyze", str(planted), "--sequential", "--planned-visitors", "5000"]) == EXIT_USAGE
    assert "tunes an always-valid test" in capsys.readouterr().err


def test_a_planned_size_is_the_tuning_whatever_the_pace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Halfway through a 14-day plan the pace stands in for twice the visitors so far; a planned size
    replaces that stand-in, and nothing else in the sequence changes."""
    week = write(tmp_path / "week", Plan(days=7))
    _, paced = analyze_json(capsys, str(week), "--always-valid")
    _, planned = analyze_json(capsys, str(week), "--always-valid", "--planned-visitors", "50000")
    n, days = overall(paced)["visitors"], paced["experiments"][0]["days"]
    assert days < 7.0
    widths = [overall(r)["ci_high"] - overall(r)["ci_low"] for r in (paced, planned)]
    expected = _width(n, 50000) / _width(n, n * stats.PLANNED_DAYS / days)
    assert widths[1] / widths[0] == pytest.approx(expected, rel=1e-6)
    assert overall(planned)["lift"] == overall(paced)["lift"]


def _width(n: float, tuning: float) -> float:
    """The width of a confidence sequence at size n, tuned to ``tuning``, for a lift of standard error 1/√n
    (the width scales with the standard error, so a ratio of widths at one n depends on the tunings only)."""
    interval = stats.confidence_sequence(stats.Lift(0.0, 1 / n**0.5, n), n, tuning)
    return float(interval.high - interval.low)


def test_a_plan_declares_its_planned_visitors(
    two_plans: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, bundle = two_plans
    tuned = tmp_path / "tuned"
    shutil.copytree(bundle, tuned)
    rules = tuned / "rules" / "home.yaml"
    old = "    analysis: { mode: sequential, planned_days: 7 }\n"
    rules.write_text(rules.read_text().replace(old, "    analysis: { mode: always-valid, planned_visitors: 40000 }\n"))
    _, report = analyze_json(capsys, str(log), "--bundle", str(tuned))
    found = {e["key"]: (e["mode"], e["planned_visitors"]) for e in report["experiments"]}
    assert found == {EXPERIMENT: ("always-valid", 40000), "fixed_twin": ("fixed", None)}
    _, flagged = analyze_json(capsys, str(log), "--bundle", str(tuned), "--planned-visitors", "9000")
    assert {e["key"]: e["planned_visitors"] for e in flagged["experiments"]} == {EXPERIMENT: 9000, "fixed_twin": None}
    main(["analyze", str(log), "--bundle", str(tuned), "--experiment", EXPERIMENT])
    assert "always-valid test, 14-day plan, tuned to 40,000 planned visitors" in capsys.readouterr().out


def test_events_with_no_exposure_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty log printed a report of its header alone and exit 0, which reads as "all is well"."""
    (tmp_path / "decisions.jsonl").write_text("")
    assert main(["analyze", str(tmp_path / "decisions.jsonl")]) == 0
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"tailor analyze: no exposure of any experiment in {tmp_path}/decisions.jsonl; nothing to report\n"
    )
    assert captured.out.startswith("mode: fixed")


def test_a_segment_with_a_sample_ratio_mismatch_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ANALYSIS.md: flagged per segment, the exit status by the overall test. The JSON had no segment flag."""
    log = write(tmp_path, Plan(bold_kept=0.7, lost_in="vip"))  # bold's exposures of vips get lost
    code, report = analyze_json(capsys, str(log), "--bundle", str(ROOT))
    [experiment] = report["experiments"]
    flags = {s["segment"]: (s["srm"], s["srm_p"] < stats.SRM_THRESHOLD) for s in experiment["segments"]}
    assert flags == {"vip": (True, True), "lapsed": (False, False)}
    assert (experiment["srm"], code) == (False, 0)  # overall the split holds: a segment's flag leaves the exit alone
