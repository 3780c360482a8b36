"""``tailor simulate``: a small population's whole report, and the example population decided in batches."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from itertools import islice
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import pytest
import yaml
from scipy.stats import norm

from service.bundle.loader import load_bundle
from service.core.bucketing import bucket_of
from service.core.conditions import Facts
from service.core.decide import DecisionRequest, decide
from service.core.models import ModelCard
from service.segments.onnx import OnnxScorer
from service.simulate.population import read_population
from service.simulate.scoring import BatchScores, Models, load_with_models
from service.simulate.stats import days_to_reach, sample_size
from service.simulate.tally import DEFAULT, simulate

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
POPULATION = ROOT / "examples" / "population.parquet"
NOW = "2026-12-01T00:00:00Z"


def _tailor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "simulate", *args], capture_output=True, text=True, check=False, cwd=ROOT
    )


def _rows(query: str) -> list[tuple[Any, ...]]:
    """The rows of a SELECT (duckdb.sql gives None only for a statement that returns nothing)."""
    relation = duckdb.sql(query)
    assert relation is not None
    return relation.fetchall()


def test_the_small_population_gives_the_expected_report() -> None:
    """Ten visitors, each there for a reason: the report is tests/simulate/expected.json to the last figure."""
    done = _tailor(
        "tests/checks/bundle", "--population", "tests/simulate/population.csv", "--consent", "consent",
        "--now", "2026-12-01T12:00:00Z", "--daily-visitors", "2000", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((HERE / "expected.json").read_text())


def test_a_rule_behind_a_broader_one_is_reported_with_the_rule_that_shadows_it() -> None:
    expected = json.loads((HERE / "expected.json").read_text())
    assert expected["unreached"] == [
        {
            "placement": "hero",
            "rule": "win_back",
            "targeted": 3,
            "why": "every visitor it matches is taken by an earlier rule, most by gold_for_big",
            "shadowed_by": "gold_for_big",
        }
    ]


def test_batched_decisions_equal_decisions_one_visitor_at_a_time() -> None:
    """The first 3,000 example visitors: the same placements and segments as the real models give per visitor."""
    bundle, models = load_with_models(ROOT)
    plain = load_bundle(ROOT)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    batches = list(islice(read_population(POPULATION, "consent", rows=1000), 3))
    tally = simulate(bundle, models, batches, now)
    rules: Counter[str] = Counter()
    sizes = Counter[str]()
    for batch in batches:
        for visitor_id, attributes, consent in zip(batch.ids, batch.attributes, batch.consent, strict=True):
            decision = decide(plain, DecisionRequest(visitor_id, attributes, now, personalization=consent))
            rules.update(f"{name}/{p.rule or DEFAULT}" for name, p in decision.placements.items())
            if consent:
                facts = Facts(attributes, {}, now.timestamp(), plain.segments, plain.model_runners)
                sizes.update(name for name in plain.segments if facts.segment(name))
    batched = Counter({f"{name}/{rule}": n for name, t in tally.placements.items() for rule, n in t.rules.items()})
    assert batched == rules
    assert dict(zip(tally.segments, tally.sizes.tolist(), strict=True)) == {s: sizes[s] for s in plain.segments}
    assert sizes["likely_churn"] > 0
    assert sizes["predicted_lapsed"] > 0


def test_batch_scores_equal_one_row_scores() -> None:
    bundle, models = load_with_models(ROOT)
    (batch,) = islice(read_population(POPULATION, rows=500), 1)
    now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    scores = BatchScores(bundle, models)
    scores.score(batch.attributes, now)
    for name, model in bundle.models.items():
        one_by_one = [model.run(Facts(a, {}, now, {})) for a in batch.attributes]
        if model.card.output.kind == "label":
            assert scores.scores[name] == one_by_one
        else:
            # float32 kernels sum in another order for a batch: equal to the last few bits
            # (not a label, so both hold floats only)
            batched, single = cast(list[float], scores.scores[name]), cast(list[float], one_by_one)
            np.testing.assert_allclose(batched, single, rtol=0, atol=1e-6)


class _BatchOnly(OnnxScorer):
    """The real ONNX scorer, counting its batch runs and refusing to score one visitor.

    A subclass, not a wrapper, so that it fits ``Models.scorers`` (a dict of OnnxScorer)."""

    def __init__(self, card: ModelCard, model: bytes) -> None:
        super().__init__(card, model)
        self.calls = 0

    def score(self, row: Sequence[float]) -> str | float:
        raise AssertionError("a model ran for one visitor")

    def score_batch(self, rows: np.ndarray) -> list[str | float]:
        self.calls += 1
        return super().score_batch(rows)


def test_models_run_once_per_batch_and_never_per_visitor() -> None:
    models = Models()
    bundle = load_bundle(
        ROOT, open_model=lambda card, model: models.scorers.setdefault(card.name, _BatchOnly(card, model))
    )
    batches = list(islice(read_population(POPULATION, rows=400), 3))
    tally = simulate(bundle, models, batches, datetime(2026, 12, 1, tzinfo=UTC))
    # the isinstance is for mypy: a scorer that is not a _BatchOnly would be missing from the dict
    calls = {name: scorer.calls for name, scorer in models.scorers.items() if isinstance(scorer, _BatchOnly)}
    assert calls == dict.fromkeys(bundle.models, 3)
    assert tally.sizes.sum() > 0


def test_the_example_population_report(tmp_path: Path) -> None:
    done = _tailor("--population", "examples/population.parquet", "--now", NOW, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["visitors"] == report["consented"] == 23_570
    for placement in report["placements"]:
        assert sum(r["visitors"] for r in placement["rules"]) == 23_570
        assert sum(r["visitors"] for r in placement["reasons"]) == 23_570
    holdout = load_bundle(ROOT).holdout
    assert holdout is not None
    ids = [row[0] for row in _rows(f"SELECT id FROM '{POPULATION}'")]
    assert report["held_out"] == sum(bucket_of(holdout.prefix, i) < holdout.buckets for i in ids)
    assert 0.04 < report["held_out_share"] < 0.06
    sizes = {s["name"]: s["visitors"] for s in report["segments"]}
    assert all(f"segment {name} has" in " ".join(report["warnings"]) for name, n in sizes.items() if n < 100)
    counts = report["overlap"]["counts"]
    assert [counts[i][i] for i in range(len(counts))] == list(sizes.values())
    _assert_personas_beside_shares(report)


def _card_personas() -> dict[str, Any]:
    """The rfm card's personas as PyYAML reads them, in the card's order."""
    card = yaml.safe_load((ROOT / "models" / "rfm.yaml").read_text(encoding="utf-8"))
    return dict(card["metrics"]["personas"])


def _assert_personas_beside_shares(report: dict[str, Any]) -> None:
    (rfm,) = report["models"]  # the one cluster model of the example bundle
    assert rfm["name"] == "rfm"
    personas = _card_personas()
    assert [c["name"] for c in rfm["clusters"]] == list(personas)  # the card writes them in label order
    assert sum(c["visitors"] for c in rfm["clusters"]) == report["consented"]
    for cluster in rfm["clusters"]:
        assert cluster["share"] == cluster["visitors"] / report["consented"]
        assert cluster["persona"] == personas[cluster["name"]]
    sizes = {s["name"]: s["visitors"] for s in report["segments"]}
    lapsed = next(c for c in rfm["clusters"] if c["name"] == "lapsed")
    assert lapsed["visitors"] == sizes["predicted_lapsed"]  # every example visitor has bought: segment = cluster


def test_clusters_count_the_visitors_who_consent_as_their_model_scores_each_one() -> None:
    bundle, models = load_with_models(ROOT)
    plain = load_bundle(ROOT)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    batches = list(islice(read_population(POPULATION, "consent", rows=1000), 3))
    tally = simulate(bundle, models, batches, now)
    one_by_one: Counter[str] = Counter()
    for batch in batches:
        for attributes, consent in zip(batch.attributes, batch.consent, strict=True):
            if consent:
                one_by_one[str(plain.models["rfm"].run(Facts(attributes, {}, now.timestamp(), {})))] += 1
    assert tally.clusters == {"rfm": one_by_one}
    assert sum(one_by_one.values()) == sum(sum(b.consent) for b in batches) < 3000  # some do not consent


def test_text_and_html_reports(tmp_path: Path) -> None:
    text = _tailor("--population", "examples/population.parquet", "--now", NOW, "--daily-visitors", "5000")
    assert text.returncode == 0, text.stderr
    for heading in ("segments (", "overlap (", "placement home_hero", "rules no visitor reaches", "experiments ("):
        assert heading in text.stdout
    assert "days to 31234 per arm" in text.stdout
    lines = text.stdout.splitlines()
    for name, p in _card_personas().items():  # the share it gets, then the persona's figures, then its line
        (at,) = [i for i, line in enumerate(lines) if line.lstrip().startswith(f"{name} ") and "persona:" in line]
        figures = (
            f"persona: {p['customers']} customers ({p['share_of_customers']:.1%}".replace("%", " %")
            + f"), {p['share_of_spend'] * 100:.1f} % of spend; median recency {p['median_recency_days']:g} days, "
        )
        assert re.fullmatch(rf"    {name} +\d+ +\d+\.\d %  {re.escape(figures)}.*", lines[at]), lines[at]
        assert f"churn rate {p['churn_rate'] * 100:.1f} %" in lines[at]
        assert lines[at + 1].strip() == p["description"]
    out = tmp_path / "report.html"
    html = _tailor("--population", "examples/population.parquet", "--now", NOW, "--format", "html", "--out", str(out))
    assert html.returncode == 0, html.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    plots = re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL)
    assert len(plots) == 3
    for plot in plots:  # each plot is well-formed SVG with something drawn in it
        svg = ET.fromstring(plot)
        assert len(svg.findall(".//{http://www.w3.org/2000/svg}rect")) >= 10
    assert "<script" not in page
    for p in _card_personas().values():
        assert f"<td>{escape(p['description'])}</td></tr>" in page
        assert f"<td>{p['customers']}</td>" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch: it opens offline


def test_a_broken_population_is_exit_status_2(tmp_path: Path) -> None:
    done = _tailor("--population", str(tmp_path / "nobody.csv"))
    assert done.returncode == 2
    assert done.stderr == f"tailor: {tmp_path}/nobody.csv: no such file\n"


def test_the_committed_population_is_what_the_script_builds(tmp_path: Path) -> None:
    out = tmp_path / "population.parquet"
    subprocess.run(
        [sys.executable, "examples/population.py", "--out", str(out)], check=True, cwd=ROOT, capture_output=True
    )
    new, old = f"FROM '{out}'", f"FROM '{POPULATION}'"
    differ = f"SELECT count(*) FROM (({new} EXCEPT ALL {old}) UNION ALL ({old} EXCEPT ALL {new}))"
    assert _rows(differ) == [(0,)]
    totals = f"SELECT count(*), round(sum(spend_total)) FROM '{POPULATION}'"
    assert _rows(totals) == [(23_570, 2_500_316)]


@pytest.mark.parametrize(("baseline", "mde", "expected"), [(0.10, 0.20, 3841), (0.05, 0.10, 31234)])
def test_sample_size_of_two_proportions(baseline: float, mde: float, expected: int) -> None:
    assert sample_size(baseline, mde) == expected


@pytest.mark.parametrize(("baseline", "mde"), [(0.01, 0.5), (0.05, 0.1), (0.2, 0.05), (0.5, -0.2), (0.9, 0.1)])
def test_sample_size_is_the_smallest_with_the_power(baseline: float, mde: float) -> None:
    """Checked against the power function itself: n reaches 80 % power and n - 1 does not."""
    p1, p2 = baseline, baseline * (1 + mde)
    pooled = (p1 + p2) / 2

    def power(n: int) -> float:
        null_sd = np.sqrt(2 * pooled * (1 - pooled) / n)
        alt_sd = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
        return float(norm.cdf((abs(p2 - p1) - norm.ppf(0.975) * null_sd) / alt_sd))

    n = sample_size(baseline, mde)
    assert power(n) >= 0.8 > power(n - 1)


def test_days_to_reach_are_set_by_the_smallest_arm() -> None:
    assert days_to_reach(1000, 100, [0.5, 0.25]) == 40
    assert days_to_reach(1000, 100, [0.5, 0.0]) is None
    with pytest.raises(ValueError, match="not a rate"):
        sample_size(0.9, 0.2)


def test_locale_and_page_decide_everyone_in_that_context(tmp_path: Path) -> None:
    """Segments on context.locale or context.page counted 0: a population has no request context."""
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "rules" / "context.yaml").write_text(
        "version: 1\nsegments:\n  german:\n    when: { context: locale, eq: de-DE }\n"
        "  on_cart:\n    when: { context: page, starts_with: /cart }\n"
    )
    population = tmp_path / "people.csv"
    population.write_text("id,country\nv1,DE\nv2,FR\n")

    def sizes(*options: str) -> dict[str, int]:
        done = _tailor(str(tmp_path), "--population", str(population), "--format", "json", *options)
        assert done.returncode == 0, done.stderr
        return {
            s["name"]: s["visitors"] for s in json.loads(done.stdout)["segments"] if s["name"] in ("german", "on_cart")
        }

    assert sizes() == {"german": 0, "on_cart": 0}
    assert sizes("--locale", "de-DE", "--page", "/cart/items") == {"german": 2, "on_cart": 2}


def test_a_population_of_nobody_is_reported_in_every_format(tmp_path: Path) -> None:
    """A CSV of a header alone: counts of 0 everywhere, and the text report failed on its empty placements."""
    (tmp_path / "nobody.csv").write_text("id,country\n")
    for form in ("text", "json"):
        done = _tailor("--population", str(tmp_path / "nobody.csv"), "--now", NOW, "--format", form)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert "0 visitors" in done.stdout if form == "text" else json.loads(done.stdout)["visitors"] == 0
