"""The committed models: valid cards that describe their ONNX files, trained on the committed data."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service.bundle.yamlfile import parse_yaml
from service.core.models import ModelCard
from service.core.spec import NAME_PATTERN
from service.training import train as train_module
from service.training.cards import SCHEMA_LINE, read_card
from service.training.export import Runner
from service.training.report import FIGURES
from service.training.train import TrainingRun, kernel_warnings, write_models

from .conftest import DATA, FULL_RUN, MODELS, ROOT

NAMES = ("rfm", "churn", "value", "purchases")
ORT_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "int64": "tensor(int64)"}


@pytest.fixture(scope="module")
def cards() -> dict[str, ModelCard]:
    return {name: read_card(MODELS / f"{name}.yaml") for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_card_validates_and_starts_with_the_schema_line(name: str, cards: dict[str, ModelCard]) -> None:
    text = (MODELS / f"{name}.yaml").read_text()
    assert text.splitlines()[0] == SCHEMA_LINE
    card = cards[name]
    assert card.name == name
    assert card.file == f"{name}.onnx"
    # The bundle loader reads cards with its YAML 1.2 reader: same card.
    assert ModelCard.model_validate(parse_yaml(text).data) == card


@pytest.mark.parametrize("name", NAMES)
def test_card_tensors_match_the_onnx_file(name: str, cards: dict[str, ModelCard]) -> None:
    card = cards[name]
    session = ort.InferenceSession(str(MODELS / card.file), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert (given.name, given.type) == (card.onnx_input.name, ORT_TYPES[card.onnx_input.dtype])
    assert [d if isinstance(d, int) else None for d in given.shape] == card.onnx_input.shape == [None, len(card.inputs)]
    outputs = {o.name: o for o in session.get_outputs()}
    assert set(outputs) == {t.name for t in card.onnx_outputs}
    for spec in card.onnx_outputs:
        actual = outputs[spec.name]
        assert actual.type == ORT_TYPES[spec.dtype]
        assert [d if isinstance(d, int) else None for d in actual.shape] == spec.shape
    assert card.output.tensor in outputs


@pytest.mark.parametrize("name", NAMES)
def test_models_were_trained_on_the_committed_data(name: str, cards: dict[str, ModelCard]) -> None:
    training = cards[name].training
    assert (ROOT / training.data).resolve() == DATA.resolve()
    assert training.sha256 == hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert (training.transactions, training.customers) == (69_659, 23_570)
    assert str(training.cutoff) == "1997-10-01"  # 1998-06-30 + 1 - the horizon
    assert training.outcome_window_days == 273


def test_cluster_names_are_unique_and_include_lapsed(cards: dict[str, ModelCard]) -> None:
    card = cards["rfm"]
    assert card.output.kind == "label"
    labels = card.output.labels or {}
    names = list(labels.values())
    assert len(set(names)) == len(names)
    assert "lapsed" in names
    assert all(name == name.lower() and parse_ok(name) for name in names)
    scores = next(t for t in card.onnx_outputs if t.name == "scores")
    assert sorted(labels) == list(range(scores.shape[-1] or 0))  # one name per cluster
    assert set(card.segments) == set(names)
    assert sum(card.segments.values()) == card.metrics["population"]


def parse_ok(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


TIMESTAMP = re.compile(r"^  trained_at: .*$", re.MULTILINE)


def _one_timestamp_out(text: str) -> str:
    """The card without its single ``training.trained_at`` line (the only field allowed to differ)."""
    without, count = TIMESTAMP.subn("  trained_at: <removed>", text)
    assert count == 1, "a card has exactly one trained_at"
    return without


def test_retraining_gives_the_committed_files_byte_for_byte(full_run: TrainingRun, tmp_path: Path) -> None:
    """Stale or irreproducible models fail here: `make train` after changing features or training code."""
    assert kernel_warnings() == [], "the committed models are what AVX2 kernels and loops give (make sets them)"
    written = write_models(full_run, tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in MODELS.iterdir())  # nothing missing, no extra
    for path in written:
        fresh, committed = path.read_bytes(), (MODELS / path.name).read_bytes()
        if path.suffix == ".onnx":
            assert fresh == committed, f"{path.name}: retraining gives different bytes"
        else:
            assert _one_timestamp_out(fresh.decode()) == _one_timestamp_out(committed.decode()), path.name


def test_committed_models_are_what_training_gives_now(full_run: TrainingRun, cards: dict[str, ModelCard]) -> None:
    """Scores agree too (a clearer message than differing bytes when features or training code changed)."""
    for name in NAMES:
        fresh = full_run.models[name]
        committed = cards[name]
        assert committed.inputs == fresh.card.inputs, name
        assert committed.output == fresh.card.output, name
        x = fresh.x[full_run.held_out]
        ours = Runner((MODELS / committed.file).read_bytes()).run(x)[committed.output.tensor]
        theirs = Runner(fresh.onnx).run(x)[committed.output.tensor]
        if committed.output.kind == "label":
            assert np.mean(ours == theirs) > 0.999, name
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4, err_msg=name)


def test_report_is_next_to_its_figures() -> None:
    report = ROOT / "docs" / "models" / "REPORT.md"
    text = report.read_text()
    for figure in FIGURES.values():
        assert (report.parent / figure).is_file()
        assert f"]({figure})" in text
    assert "**lapsed**" in text


def test_the_example_likely_churn_rule_uses_the_cards_threshold(cards: dict[str, ModelCard]) -> None:
    rules = parse_yaml((ROOT / "rules" / "segments.yaml").read_text()).data
    conditions = rules["segments"]["likely_churn"]["when"]["all"]
    (churn,) = [c for c in conditions if c.get("model") == "churn"]
    thresholds: Any = cards["churn"].metrics["thresholds"]
    assert churn["gte"] == thresholds["likely_churn"]


def test_personas_describe_every_cluster(cards: dict[str, ModelCard]) -> None:
    card = cards["rfm"]
    personas: Any = card.metrics["personas"]
    assert set(personas) == set(card.segments)
    assert sum(p["customers"] for p in personas.values()) == card.metrics["population"]
    assert abs(sum(p["share_of_spend"] for p in personas.values()) - 1) < 1e-3
    for name, p in personas.items():
        assert p["customers"] == card.segments[name]
        assert p["customers"] >= 100
        assert p["description"].startswith(name.replace("_", " ").capitalize() + ":")
        assert 0 <= p["churn_rate"] <= 1


def test_the_rfm_card_reports_the_algorithm_comparison(cards: dict[str, ModelCard]) -> None:
    metrics: Any = cards["rfm"].metrics
    comparison = metrics["algorithm_comparison"]
    assert metrics["algorithm"] in {"kmeans", "gmm"}
    for kind in ("kmeans", "gmm"):
        assert len(comparison[kind]["stability_ari"]) == 2  # fits at the cutoff, one and two quarters before
        assert all(-1 <= v <= 1 for v in comparison[kind]["stability_ari"])


def test_headline_figures_say_how_they_were_measured(cards: dict[str, ModelCard]) -> None:
    for name in ("value", "purchases"):
        assert str(cards[name].metrics["evaluation"]).startswith("out of time")
    churn: Any = cards["churn"].metrics
    assert str(churn["evaluation"]).startswith("out of time, backtest horizon 136 days")
    assert churn["backtest_horizon_days"] == 136  # min(273, 273 // 2): a 273-day backtest would fit before any data
    assert churn["fit_cutoff"] == "1997-05-18"
    assert str(churn["in_period"]["evaluation"]).startswith("in period")
    assert churn["baseline"]["model"].startswith("Pareto/NBD P(no purchase in 136 days)")
    baselines: Any = cards["value"].metrics["baselines"]
    assert set(baselines) == {"bg_nbd", "pareto_nbd", "glm_in_period", "glm_backtest", "past_spend", "zero"}


def test_the_value_card_records_the_choice_it_serves(cards: dict[str, ModelCard]) -> None:
    metrics: Any = cards["value"].metrics
    choice = metrics["choice"]
    assert metrics["served"] == choice["chosen"] in choice["candidates"]
    assert choice["q_days"] == 91
    tuning = {name: c["tuning"] for name, c in choice["candidates"].items() if name not in choice["not_servable"]}
    plain = tuning["bg_nbd"]
    costs = {name: t["mae"] / plain["mae"] + t["rmse"] / plain["rmse"] for name, t in tuning.items()}
    assert min(costs, key=lambda name: costs[name]) == choice["chosen"]
    assert metrics["parameters"]["spend_factor"] == choice["candidates"][choice["chosen"]]["factor"]
    assert cards["purchases"].metrics["served"] == choice["chosen"].split("+")[0]


def _benchmark_row(text: str, start: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(f"| {start}")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_benchmarks_page_quotes_the_cards(cards: dict[str, ModelCard]) -> None:
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    value: Any = cards["value"].metrics
    served = _benchmark_row(text, "served: ")
    assert served[1:] == [f"{value[k]:.2f}" for k in ("mae", "rmse")] + [
        f"{value[k]:.3f}" for k in ("spearman", "top_decile_share", "total_ratio")
    ]
    reference = _benchmark_row(text, "BG/NBD x Gamma-Gamma (the reference)")
    assert reference[1:3] == [f"{value['baselines']['bg_nbd'][k]:.2f}" for k in ("mae", "rmse")]
    churn: Any = cards["churn"].metrics
    backtest = _benchmark_row(text, "served model, backtest")
    assert backtest[1:] == [
        f"{churn['backtest_horizon_days']} days",
        f"{churn['roc_auc']:.4f}",
        f"{churn['brier']:.4f}",
    ]
    in_period = _benchmark_row(text, "served model, in period")
    assert in_period[2:] == [f"{churn['in_period'][k]:.4f}" for k in ("roc_auc", "brier")]


def test_the_committed_value_graph_is_the_compact_one() -> None:
    """Each node of the value graph costs a page view about a microsecond (cache-cold kernels): the served
    Pareto/NBD graph is 20 nodes (84 before its series were telescoped and batched)."""
    nodes = onnx.load(MODELS / "value.onnx").graph.node
    assert len(nodes) <= 20
    assert sum(node.op_type == "Exp" for node in nodes) == 1


HASWELL = [{"internal_api": "openblas", "architecture": "Haswell"}]
AVX2_LOOPS = {"exp": {"dd": {"current": "X86_V3"}}, "log1p": {"dd": {"current": "baseline(X86_V2)"}}}
KERNELS = [
    ("x86_64", HASWELL, AVX2_LOOPS, []),
    ("x86_64", [{"internal_api": "openblas", "architecture": "SkylakeX"}], AVX2_LOOPS, ["SkylakeX kernels"]),
    ("x86_64", [*HASWELL, {"internal_api": "openmp"}], AVX2_LOOPS, []),
    # An AVX-512 host where NPY_DISABLE_CPU_FEATURES is not set: numpy's exp and log run SVML.
    ("x86_64", HASWELL, {**AVX2_LOOPS, "log": {"dd": {"current": "X86_V4"}}}, ["loops built for X86_V4"]),
    ("x86_64", HASWELL, {"sort": {"d": {"current": "AVX512_ICL"}}}, ["loops built for AVX512_ICL"]),
    ("aarch64", [{"internal_api": "openblas", "architecture": "NEOVERSEN1"}], {}, []),  # nothing to pin there
]


@pytest.mark.parametrize(("machine", "libraries", "loops", "warned"), KERNELS)
def test_training_warns_when_it_runs_kernels_the_committed_models_were_not_made_with(
    machine: str,
    libraries: list[dict[str, str]],
    loops: dict[str, Any],
    warned: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fake threadpool_info and opt_func_info (the real ones are the byte-for-byte test's first assertion)."""
    monkeypatch.setattr("platform.machine", lambda: machine)
    monkeypatch.setattr(train_module, "threadpool_info", lambda: libraries)
    monkeypatch.setattr(train_module, "opt_func_info", lambda: loops)
    found = kernel_warnings()
    assert len(found) == len(warned)
    for warning, words in zip(found, warned, strict=True):
        assert words in warning
        assert "make sets it" in warning


def test_the_pinned_numpy_targets_are_ones_numpy_dispatches() -> None:
    """A name numpy does not dispatch would be ignored (an ImportWarning), and AVX-512 loops would run."""
    simd: Any = np.show_config(mode="dicts")["SIMD Extensions"]
    dispatched = {*simd["found"], *simd["not found"]}  # what numpy was built to dispatch, found on this CPU or not
    assert set(train_module.AVX512_TARGETS) <= dispatched


def test_make_pins_the_kernels_the_committed_models_were_made_with() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert f"export OPENBLAS_CORETYPE := {train_module.REPRODUCIBLE_KERNELS}\n" in makefile
    assert f"export NPY_DISABLE_CPU_FEATURES := {' '.join(train_module.AVX512_TARGETS)}\n" in makefile


def test_the_tests_of_the_full_training_run_first(request: pytest.FixtureRequest) -> None:
    uses = [FULL_RUN in getattr(item, "fixturenames", ()) for item in request.session.items]
    assert uses == sorted(uses, reverse=True)  # every one that trains before every one that does not
