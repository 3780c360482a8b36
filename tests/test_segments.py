"""Model segments: real ONNX models checked against their cards, features from attributes, lazy scoring."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.bundle.loader import load_bundle
from service.bundle.store import BundleStore
from service.bundle.yamlfile import parse_yaml
from service.core.decide import DecisionRequest, decide
from service.core.errors import BundleError
from service.core.models import FeatureSource, FeatureSpec, ModelCard, features_for
from service.segments.fake import FakeScorer
from service.segments.onnx import OnnxScorer

MODELS_BUNDLE = Path(__file__).parent / "bundles" / "models"
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
DAY = 86_400.0
LAPSED = {"last_purchase_at": "2026-01-20T12:00:00Z", "orders_total": 1, "spend_total": 30.0}  # 306 days ago
ACTIVE = {"last_purchase_at": "2026-11-12T12:00:00Z", "orders_total": 6, "spend_total": 420.0}  # 10 days ago


def _training_rows(n_features: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Active customers (recent, frequent) and lapsed ones (long gone, one order), with a churn outcome."""
    rng = np.random.default_rng(7)
    active = np.column_stack([rng.uniform(0, 60, 200), rng.integers(2, 12, 200), rng.uniform(3, 6, 200)])
    lapsed = np.column_stack([rng.uniform(200, 400, 200), rng.integers(1, 3, 200), rng.uniform(2, 5, 200)])
    rows = np.vstack([active, lapsed])
    if n_features > 3:
        rows = np.column_stack([rows, rng.uniform(0, 1, (len(rows), n_features - 3))])
    churned = (rows[:, 0] > 150).astype(int)
    return rows.astype(np.float32), churned


def _write_models(folder: Path, n_features: int = 3) -> tuple[Any, Any]:
    rows, churned = _training_rows(n_features)
    centers = np.array([[30, 6, 4.5, *[0.5] * (n_features - 3)], [300, 1.5, 3.5, *[0.5] * (n_features - 3)]])
    scaler = StandardScaler().fit(rows)
    rfm = make_pipeline(StandardScaler(), KMeans(2, init=scaler.transform(centers), n_init=1, random_state=0))
    rfm.fit(rows)
    churn = make_pipeline(StandardScaler(), LogisticRegression(random_state=0)).fit(rows, churned)
    (folder / "rfm.onnx").write_bytes(to_onnx(rfm, rows[:1], initial_types=None, target_opset=17).SerializeToString())
    churn_onnx = to_onnx(churn, rows[:1], options={id(churn): {"zipmap": False}}, target_opset=17)
    (folder / "churn.onnx").write_bytes(churn_onnx.SerializeToString())
    return rfm, churn


def _rename_input(folder: Path) -> None:
    """skl2onnx names the input 'X'; the cards say 'features'."""
    for card in folder.glob("*.yaml"):
        card.write_text(card.read_text().replace("name: features", "name: X"))


@pytest.fixture(scope="module")
def models_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    root = tmp_path_factory.mktemp("bundle") / "b"
    shutil.copytree(MODELS_BUNDLE, root)
    rfm, churn = _write_models(root / "models")
    _rename_input(root / "models")
    return root, rfm, churn


def _request(attributes: dict[str, Any], *, consent: bool = True, **extra: Any) -> DecisionRequest:
    return DecisionRequest("v-1", attributes, NOW, personalization=consent, **extra)


def test_a_lapsed_visitor_is_in_the_model_segment_and_gets_the_win_back(models_bundle: tuple[Path, Any, Any]) -> None:
    bundle = load_bundle(models_bundle[0])
    decision = decide(bundle, _request(LAPSED, placements=["hero"], explain=True))
    assert decision.placements["hero"].variant == "winback"
    assert decision.segments == ["lapsed"]
    assert decision.scores == {"rfm": "lapsed"}  # churn was never needed


def test_an_active_visitor_is_not_lapsed(models_bundle: tuple[Path, Any, Any]) -> None:
    bundle = load_bundle(models_bundle[0])
    decision = decide(bundle, _request({**ACTIVE, "country": "DE"}, explain=True))
    assert decision.placements["hero"].variant == "plain"
    assert decision.scores is not None
    assert decision.scores["rfm"] == "active"
    assert decision.scores["churn"] < 0.5  # type: ignore[operator]


def test_onnx_scores_equal_scikit_learn(models_bundle: tuple[Path, Any, Any]) -> None:
    root, rfm, churn = models_bundle
    cards = {name: ModelCard.model_validate(_yaml(root / "models" / f"{name}.yaml")) for name in ("rfm", "churn")}
    rows, _ = _training_rows()
    rfm_scorer = OnnxScorer(cards["rfm"], root / "models" / "rfm.onnx")
    churn_scorer = OnnxScorer(cards["churn"], root / "models" / "churn.onnx")
    assert np.array_equal(rfm_scorer.run_batch(rows), rfm.predict(rows))
    np.testing.assert_allclose(churn_scorer.run_batch(rows), churn.predict_proba(rows), atol=1e-5)
    labels = {0: "active", 1: "lapsed"}
    assert [rfm_scorer.score(row) for row in rows[:20]] == [labels[int(x)] for x in rfm.predict(rows[:20])]


def test_a_model_whose_input_disagrees_with_its_card_is_refused(tmp_path: Path) -> None:
    shutil.copytree(MODELS_BUNDLE, tmp_path / "b")
    _write_models(tmp_path / "b" / "models", n_features=4)
    _rename_input(tmp_path / "b" / "models")
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path / "b")
    assert [p.render() for p in caught.value.problems] == [
        "models/churn.yaml:6: file: the model's input 'X' has shape [None, 4], the card says [None, 3]",
        "models/rfm.yaml:6: file: the model's input 'X' has shape [None, 4], the card says [None, 3]",
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "models/rfm.yaml:6: file: model file rfm.onnx does not exist"),
        (lambda p: p.write_bytes(b"not a model"), "models/rfm.yaml:6: file: model file rfm.onnx cannot be loaded"),
    ],
    ids=["missing", "corrupt"],
)
def test_missing_or_corrupt_models_are_bundle_errors_and_the_last_good_bundle_stays(
    models_bundle: tuple[Path, Any, Any], tmp_path: Path, damage: Any, message: str
) -> None:
    store = BundleStore()
    assert store.load(models_bundle[0]).ok
    good = store.current
    shutil.copytree(models_bundle[0], tmp_path / "b")
    damage(tmp_path / "b" / "models" / "rfm.onnx")
    report = store.load(tmp_path / "b")
    assert not report.ok
    assert report.problems[0].render().startswith(message)
    assert store.current is good


def test_a_model_with_the_wrong_output_is_refused(models_bundle: tuple[Path, Any, Any], tmp_path: Path) -> None:
    shutil.copytree(models_bundle[0], tmp_path / "b")
    card = tmp_path / "b" / "models" / "rfm.yaml"
    card.write_text(card.read_text().replace("name: label, dtype: int64", "name: cluster, dtype: int64").replace(
        "tensor: label", "tensor: cluster"))  # fmt: skip
    with pytest.raises(BundleError, match="the model has no output 'cluster'"):
        load_bundle(tmp_path / "b")


# -- lazy, at most once, never without consent (fake scorers: we count their calls) ----------


def _fakes(root: Path = MODELS_BUNDLE) -> tuple[Any, dict[str, FakeScorer]]:
    fakes = {
        "rfm": FakeScorer(lambda row: "lapsed" if row[0] > 150 else "active"),
        "churn": FakeScorer(lambda row: 0.9 if row[0] > 100 else 0.1),
    }
    return load_bundle(root, open_model=lambda card, _path: fakes[card.name]), fakes


def test_models_run_only_for_placements_that_need_them() -> None:
    bundle, fakes = _fakes()
    decision = decide(bundle, _request({**LAPSED, "country": "DE"}, placements=["banner"]))
    assert decision.placements["banner"].variant == "retain"
    assert decision.segments == ["eu"]  # model segments are listed only when the decision needed them
    assert (fakes["rfm"].rows, fakes["churn"].rows) == ([], [])


def test_each_model_runs_at_most_once_per_request() -> None:
    bundle, fakes = _fakes()
    decision = decide(bundle, _request({**ACTIVE, "last_purchase_at": "2026-07-01T00:00:00Z", "country": "FR"}))
    assert decision.placements["hero"].variant == "retain"
    assert decision.segments == ["eu", "likely_churn", "churn_in_eu"]
    assert (len(fakes["rfm"].rows), len(fakes["churn"].rows)) == (1, 1)


def test_no_model_runs_without_consent() -> None:
    bundle, fakes = _fakes()
    decision = decide(bundle, _request(LAPSED, consent=False))
    assert {p.reason for p in decision.placements.values()} == {"no_consent"}
    assert (fakes["rfm"].rows, fakes["churn"].rows) == ([], [])


def test_features_come_from_the_attributes_as_the_card_says() -> None:
    bundle, fakes = _fakes()
    decide(bundle, _request(LAPSED, placements=["hero"]))
    recency, frequency, aov = fakes["rfm"].rows[0]
    assert recency == pytest.approx(306.0)
    assert frequency == 1.0
    assert aov == pytest.approx(np.log1p(30.0))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ("{ model: rfm, eq: lapsed }", None),
        ("{ model: rfmm, eq: lapsed }", "when.model: unknown model 'rfmm' (did you mean 'rfm'?)"),
        ("{ model: rfm, eq: lapsd }", "when.eq: model 'rfm' has no label 'lapsd' (did you mean 'lapsed'?)"),
        ("{ model: rfm, gte: 1 }", "when.gte: model 'rfm' gives a label; compare it with eq, ne, in or not_in"),
        ("{ model: churn, gte: high }", "when.gte: model 'churn' gives a probability: compare it with numbers"),
    ],
    ids=["valid", "unknown-model", "unknown-label", "label-compared-as-number", "probability-compared-as-text"],
)
def test_rules_on_models_are_checked_when_the_bundle_compiles(tmp_path: Path, edit: str, problem: str | None) -> None:
    shutil.copytree(MODELS_BUNDLE, tmp_path / "b")
    rules = tmp_path / "b" / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("{ model: rfm, eq: lapsed }", edit))
    if problem is None:
        _fakes(tmp_path / "b")
        return
    with pytest.raises(BundleError) as caught:
        _fakes(tmp_path / "b")
    assert [p.render() for p in caught.value.problems] == [f"rules/rules.yaml:5: segments.lapsed.{problem}"]


# -- feature assembly ------------------------------------------------------------------------


def _spec(source: dict[str, Any], **extra: Any) -> FeatureSpec:
    return FeatureSpec(name="f", unit="u", description="d", source=FeatureSource(**source), missing=-1.0, **extra)


@pytest.mark.parametrize(
    ("source", "attributes", "expected"),
    [
        ({"attr": "orders_total"}, {"orders_total": 4}, 4.0),
        ({"attr": "orders_total"}, {"orders_total": "4"}, -1.0),
        ({"attr": "orders_total"}, {"orders_total": True}, -1.0),
        ({"attr": "orders_total"}, {}, -1.0),
        ({"attr": "cart.value"}, {"cart": {"value": 12.5}}, 12.5),
        ({"days_since": "last"}, {"last": "2026-11-20T12:00:00Z"}, 2.0),
        ({"days_since": "last"}, {"last": NOW.timestamp() - 3 * DAY}, 3.0),
        ({"days_since": "last"}, {"last": "not a time"}, -1.0),
        ({"ratio": ["spend", "orders"]}, {"spend": 100, "orders": 4}, 25.0),
        ({"ratio": ["spend", "orders"]}, {"spend": 100, "orders": 0}, -1.0),
        ({"interval": ["first", "last", "n"]}, {"first": "2026-01-01", "last": "2026-01-31", "n": 4}, 10.0),
        ({"interval": ["first", "last", "n"]}, {"first": "2026-01-01", "last": "2026-01-31", "n": 1}, -1.0),
    ],
)
def test_feature_sources(source: dict[str, Any], attributes: dict[str, Any], expected: float) -> None:
    assert features_for([_spec(source)], attributes, NOW.timestamp()) == [pytest.approx(expected)]


def test_clip_then_transform() -> None:
    spec = _spec({"attr": "x"}, clip=(0.0, 99.0), transform="log1p")
    assert features_for([spec], {"x": 1000}, 0.0) == [pytest.approx(np.log1p(99.0))]
    assert features_for([spec], {"x": float("nan")}, 0.0) == [pytest.approx(0.0)]  # missing -1 clipped to 0


def _yaml(path: Path) -> Any:
    return parse_yaml(path.read_text()).data
