"""Bucketing, version 1: frozen vectors, statistics, stickiness and determinism.

The spec these tests hold the code to is docs/bucketing.md. The vectors in
tests/vectors/ are append-only: a failing vector means visitors moved, which needs
HASH_VERSION + 1, an ADR and a new vectors file, never an edit of the old one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from service.core import bucketing
from service.core.bucketing import (
    BUCKETS,
    HASH_VERSION,
    arm_bounds,
    arm_index,
    bucket,
    bucket_of,
    hash_prefix,
    percent_to_buckets,
)
from service.core.compile import Bundle, compile_bundle
from service.core.decide import Decision, DecisionRequest, decide
from service.core.errors import BundleError
from service.core.spec import ContentFile, RulesFile
from service.render.blocks import compile_blocks

TESTS = Path(__file__).parent
ROOT = TESTS.parent
VECTORS = json.loads((TESTS / "vectors" / "bucketing-v1.json").read_text(encoding="utf-8"))

N_IDS = 100_000  # statistical tests
N_VISITORS = 20_000  # decisions through real bundles
P_MIN = 0.001
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

# database=None: these properties write no example database (Hypothesis may still cache in .hypothesis/).
PROPERTY = settings(max_examples=300, deadline=None, database=None)


def _short(text: str, size: int = 24) -> str:
    return text if len(text) <= size else f"{text[:size]}...({len(text)})"


# --- frozen vectors -------------------------------------------------------------------------------


def test_vectors_are_for_this_hash_version() -> None:
    assert VECTORS["hash_version"] == HASH_VERSION == 1
    assert VECTORS["buckets"] == BUCKETS == 10_000


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param(v, id=f"{i}-{_short(v['salt'])!r}-{_short(v['unit'])!r}")
        for i, v in enumerate(VECTORS["bucket_vectors"])
    ],
)
def test_bucket_vector(vector: dict[str, Any]) -> None:
    salt, unit = vector["salt"], vector["unit"]
    assert bucket(salt, unit) == vector["bucket"]
    assert bucket_of(hash_prefix(salt), unit) == vector["bucket"]


@pytest.mark.parametrize(
    "vector",
    [pytest.param(v, id=f"{i}-{v['weights']}") for i, v in enumerate(VECTORS["bounds_vectors"])],
)
def test_bounds_vector(vector: dict[str, Any]) -> None:
    assert arm_bounds(vector["weights"]) == tuple(vector["bounds"])


@pytest.mark.parametrize(
    "vector",
    [pytest.param(v, id=f"{i}-{v['weights']}@{v['bucket']}") for i, v in enumerate(VECTORS["arm_vectors"])],
)
def test_arm_vector(vector: dict[str, Any]) -> None:
    assert arm_index(arm_bounds(vector["weights"]), vector["bucket"]) == vector["arm"]


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param(v, id=f"{i}-{_short(v['salt'])!r}-{_short(v['unit'])!r}@{v['traffic_percent']}%")
        for i, v in enumerate(VECTORS["assignment_vectors"])
    ],
)
def test_assignment_vector(vector: dict[str, Any]) -> None:
    salt, unit = vector["salt"], vector["unit"]
    entry = bucket(f"{salt}/traffic", unit)  # the entry-draw salt convention of bucketing.py
    assert entry == vector["entry_bucket"]
    assert (entry < percent_to_buckets(vector["traffic_percent"])) is vector["in_experiment"]
    assert bucket(salt, unit) == vector["arm_bucket"]


def test_assignment_vectors_match_a_compiled_experiment() -> None:
    """The vectors' entry rule is the compiler's: same prefixes, same entry range."""
    for vector in VECTORS["assignment_vectors"]:
        bundle = _experiment_bundle(traffic=vector["traffic_percent"], salt=vector["salt"])
        experiment = bundle.experiments["exp"]
        low, high = experiment.entry_range
        inside = low <= bucket_of(experiment.entry_prefix, vector["unit"]) < high
        assert inside is vector["in_experiment"]
        assert bucket_of(experiment.arm_prefix, vector["unit"]) == vector["arm_bucket"]


def test_hash_is_xxh3_64_of_utf8_salt_colon_unit() -> None:
    """A re-implementation from the spec alone gives the same buckets."""
    for vector in VECTORS["bucket_vectors"]:
        text = vector["salt"] + ":" + vector["unit"]
        assert xxhash.xxh3_64_intdigest(text.encode("utf-8"), seed=0) % 10_000 == vector["bucket"]


# --- uniformity -----------------------------------------------------------------------------------


@cache
def _buckets(salt: str) -> tuple[int, ...]:
    """Buckets of visitor-0 ... visitor-99999 under one salt, computed once per module."""
    prefix = hash_prefix(salt)
    return tuple(bucket_of(prefix, f"visitor-{i}") for i in range(N_IDS))


def _arms(salt: str, weights: Sequence[int]) -> list[int]:
    bounds = arm_bounds(weights)
    return [arm_index(bounds, b) for b in _buckets(salt)]


def test_buckets_are_uniform() -> None:
    bins = Counter(b // 100 for b in _buckets("uniformity"))  # 100 equal bins of 100 buckets
    observed = [bins[i] for i in range(100)]
    assert sum(observed) == N_IDS
    assert stats.chisquare(observed).pvalue > P_MIN


@pytest.mark.parametrize("weights", [[1, 1], [1, 1, 2]], ids=str)
def test_arm_shares_follow_weights(weights: list[int]) -> None:
    counts = Counter(_arms("arm-shares", weights))
    observed = [counts[i] for i in range(len(weights))]
    expected = [N_IDS * w / sum(weights) for w in weights]
    assert stats.chisquare(observed, expected).pvalue > P_MIN


# --- independence ---------------------------------------------------------------------------------


def _contingency(rows: Sequence[int], cols: Sequence[int]) -> list[list[int]]:
    table = [[0] * (max(cols) + 1) for _ in range(max(rows) + 1)]
    for r, c in zip(rows, cols, strict=True):
        table[r][c] += 1
    return table


def test_experiments_with_different_salts_are_independent() -> None:
    first = _arms("experiment-one", [1, 1, 2])
    second = _arms("experiment-two", [1, 1])
    assert stats.chi2_contingency(_contingency(first, second)).pvalue > P_MIN
    # finer: deciles of the two draws
    deciles = stats.chi2_contingency(
        _contingency([b // 1000 for b in _buckets("experiment-one")], [b // 1000 for b in _buckets("experiment-two")])
    )
    assert deciles.pvalue > P_MIN


def test_entry_draw_is_independent_of_arm_draw() -> None:
    """Who enters (salt/traffic) says nothing about which arm they get (salt)."""
    entered = [int(b < percent_to_buckets(30)) for b in _buckets("experiment-one/traffic")]
    arms = _arms("experiment-one", [1, 1])
    assert stats.chi2_contingency(_contingency(entered, arms)).pvalue > P_MIN
    deciles = stats.chi2_contingency(
        _contingency(
            [b // 1000 for b in _buckets("experiment-one/traffic")], [b // 1000 for b in _buckets("experiment-one")]
        )
    )
    assert deciles.pvalue > P_MIN


# --- stickiness through real bundles --------------------------------------------------------------

CONTENT = ContentFile.model_validate(
    {
        "version": 1,
        "variants": {name: {"content": {"name": name}} for name in ("control", "va", "vb", "vc", "wa", "wb")},
    }
)


def _arm_specs(prefix: str, weights: Sequence[int]) -> list[dict[str, Any]]:
    keys = ("a", "b", "c")
    return [{"key": keys[i], "variant": f"{prefix}{keys[i]}", "weight": w} for i, w in enumerate(weights)]


def _compile(rules: dict[str, Any]) -> Bundle:
    content = [("content/test.yaml", CONTENT)]
    blocks = partial(compile_blocks, content_files=content, locale_files=[], templates=[])
    return compile_bundle([("rules/test.yaml", RulesFile.model_validate(rules))], content, "t", blocks=blocks)


def _experiment_bundle(traffic: float | None = None, salt: str | None = None, **extra: Any) -> Bundle:
    experiment: dict[str, Any] = {"status": "running", "arms": _arm_specs("v", [1, 1, 2]), **extra}
    if traffic is not None:
        experiment["traffic"] = traffic
    if salt is not None:
        experiment["salt"] = salt
    return _compile(
        {
            "version": 1,
            "placements": {"hero": {"default": "control", "rules": [{"name": "test", "experiment": "exp"}]}},
            "experiments": {"exp": experiment},
        }
    )


def _layer_bundle(first_slice: tuple[float, float]) -> Bundle:
    return _compile(
        {
            "version": 1,
            "placements": {
                "hero": {"default": "control", "rules": [{"experiment": "first"}]},
                "footer": {"default": "control", "rules": [{"experiment": "second"}]},
            },
            "experiments": {
                "first": {
                    "status": "running",
                    "arms": _arm_specs("v", [1, 1, 2]),
                    "layer": "home",
                    "layer_slice": list(first_slice),
                },
                "second": {
                    "status": "running",
                    "arms": _arm_specs("w", [1, 1]),
                    "layer": "home",
                    "layer_slice": [50, 100],
                },
            },
        }
    )


def _request(visitor_id: str | None, attributes: dict[str, Any] | None = None) -> DecisionRequest:
    return DecisionRequest(visitor_id=visitor_id, attributes=attributes or {}, now=NOW, personalization=True)


def _arms_by_visitor(bundle: Bundle, placement: str) -> dict[str, str]:
    """visitor id → arm key, for the visitors who entered the placement's experiment."""
    entered = {}
    for i in range(N_VISITORS):
        visitor = f"visitor-{i}"
        decided = decide(bundle, _request(visitor)).placements[placement]
        if decided.reason == "experiment":
            assert decided.experiment is not None
            entered[visitor] = decided.experiment.arm
        else:
            assert decided.reason == "default"
            assert decided.variant == "control"
    return entered


def _assert_share(entered: int, percent: float) -> None:
    assert abs(entered / N_VISITORS - percent / 100) < 0.015, (entered, percent)


def test_raising_traffic_keeps_every_visitor_in_the_same_arm() -> None:
    by_traffic = {traffic: _arms_by_visitor(_experiment_bundle(traffic), "hero") for traffic in (10, 30, 100)}
    for traffic, entered in by_traffic.items():
        _assert_share(len(entered), traffic)
    assert len(by_traffic[100]) == N_VISITORS
    for low, high in ((10, 30), (30, 100), (10, 100)):
        before, after = by_traffic[low], by_traffic[high]
        assert before.keys() <= after.keys()
        assert all(after[visitor] == arm for visitor, arm in before.items())
    # and the arms still follow the weights [1, 1, 2] at every traffic
    for entered in by_traffic.values():
        counts = Counter(entered.values())
        expected = [len(entered) * w / 4 for w in (1, 1, 2)]
        assert stats.chisquare([counts["a"], counts["b"], counts["c"]], expected).pvalue > P_MIN


def test_widening_a_layer_slice_keeps_arms_and_never_overlaps() -> None:
    narrow, wide = _layer_bundle((0, 20)), _layer_bundle((0, 50))
    first_narrow, second_narrow = _arms_by_visitor(narrow, "hero"), _arms_by_visitor(narrow, "footer")
    first_wide, second_wide = _arms_by_visitor(wide, "hero"), _arms_by_visitor(wide, "footer")

    assert not first_narrow.keys() & second_narrow.keys()
    assert not first_wide.keys() & second_wide.keys()
    _assert_share(len(first_narrow), 20)
    _assert_share(len(first_wide), 50)
    _assert_share(len(second_narrow), 50)

    assert first_narrow.keys() <= first_wide.keys()
    assert all(first_wide[visitor] == arm for visitor, arm in first_narrow.items())
    assert second_narrow == second_wide  # the other experiment of the layer does not move at all


# --- properties -----------------------------------------------------------------------------------

weight_lists = st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=10).filter(
    lambda weights: sum(weights) > 0
)


@PROPERTY
@given(salt=st.text(), unit=st.text())
def test_bucket_is_in_range_and_deterministic(salt: str, unit: str) -> None:
    first = bucket(salt, unit)
    assert 0 <= first < BUCKETS
    assert bucket(salt, unit) == first
    assert bucket_of(hash_prefix(salt), unit) == first
    assert first == xxhash.xxh3_64_intdigest((salt + ":" + unit).encode("utf-8")) % BUCKETS


@PROPERTY
@given(weights=weight_lists)
def test_arm_bounds_are_proportional(weights: list[int]) -> None:
    bounds = arm_bounds(weights)
    assert len(bounds) == len(weights)
    assert bounds[-1] == BUCKETS
    assert all(0 <= a <= b for a, b in zip((0, *bounds), bounds, strict=False))
    total = sum(weights)
    for low, high, weight in zip((0, *bounds), bounds, weights, strict=False):
        assert abs((high - low) - Fraction(BUCKETS * weight, total)) < 1
        if weight == 0:
            assert high == low


@PROPERTY
@given(weights=weight_lists, value=st.integers(min_value=0, max_value=BUCKETS - 1))
def test_arm_index_picks_the_owner_and_never_a_zero_weight_arm(weights: list[int], value: int) -> None:
    bounds = arm_bounds(weights)
    arm = arm_index(bounds, value)
    assert 0 <= arm < len(weights)
    assert weights[arm] > 0
    assert (0 if arm == 0 else bounds[arm - 1]) <= value < bounds[arm]


@PROPERTY
@given(weights=weight_lists)
def test_every_bucket_has_an_arm_with_weight(weights: list[int]) -> None:
    bounds = arm_bounds(weights)
    owners = Counter(arm_index(bounds, value) for value in range(0, BUCKETS, 7))
    assert all(weights[arm] > 0 for arm in owners)


def test_arm_bounds_rejects_no_weight() -> None:
    for weights in ([], [0], [0, 0]):
        with pytest.raises(ValueError, match="more than 0"):
            arm_bounds(weights)


@pytest.mark.parametrize(
    ("percent", "buckets"), [(0, 0), (0.01, 1), (5, 500), (12.34, 1234), (33.33, 3333), (100, BUCKETS)]
)
def test_percent_to_buckets(percent: float, buckets: int) -> None:
    assert percent_to_buckets(percent) == buckets


def test_every_spec_percent_maps_to_its_bucket_count() -> None:
    """Percentages are multiples of 0.01: each maps to exactly percent*100 buckets, never off by float error."""
    assert all(percent_to_buckets(i / 100) == i for i in range(BUCKETS + 1))
    truncated = [i for i in range(BUCKETS + 1) if math.floor(i / 100 * 100) != i]  # docs/bucketing.md: why round
    assert (len(truncated), 57 in truncated, 29 in truncated) == (573, True, True)


# --- no randomness without a unit -----------------------------------------------------------------


@pytest.mark.parametrize("visitor_id", [None, ""], ids=["none", "empty"])
def test_no_visitor_id_gets_the_default(visitor_id: str | None) -> None:
    bundle = _experiment_bundle()
    for _ in range(3):  # never a random arm: the same answer every time
        decided = decide(bundle, _request(visitor_id)).placements["hero"]
        assert decided.variant == "control"
        assert decided.reason == "no_unit_id"
        assert decided.rule == "test"
        assert decided.experiment is None


@pytest.mark.parametrize(
    "attributes",
    [{}, {"account_id": None}, {"account_id": ""}, {"account_id": 1.5}, {"account_id": True}, {"account": "a-1"}],
    ids=["absent", "null", "empty", "float", "bool", "other-key"],
)
def test_bucket_by_without_a_usable_value_gets_the_default(attributes: dict[str, Any]) -> None:
    bundle = _experiment_bundle(bucket_by="account_id")
    decided = decide(bundle, _request("visitor-1", attributes)).placements["hero"]  # the visitor id is no fallback
    assert (decided.variant, decided.reason, decided.experiment) == ("control", "no_unit_id", None)


@pytest.mark.parametrize("account", [0, 7, 12345, -12345, 2**63, 10**30])
def test_int_account_id_buckets_as_its_decimal_text(account: int) -> None:
    bundle = _experiment_bundle(bucket_by="account_id")
    as_int: Decision = decide(bundle, _request("visitor-1", {"account_id": account}))
    as_text: Decision = decide(bundle, _request("visitor-2", {"account_id": str(account)}))
    assert as_int.placements["hero"] == as_text.placements["hero"]
    assignment = as_int.placements["hero"].experiment
    assert assignment is not None
    assert assignment.bucket == bucket("exp", str(account))


# --- a salt serves one draw; a layer buckets by one unit --------------------------------------------

_TWO_ARMS = [{"key": "a", "variant": "va"}, {"key": "b", "variant": "vb"}]


def _bundle_of(experiments: dict[str, Any], holdout: dict[str, Any] | None = None) -> dict[str, Any]:
    rules = [{"experiment": name} for name in experiments]
    rules_file: dict[str, Any] = {
        "version": 1,
        "placements": {"hero": {"default": "control", "rules": rules}},
        "experiments": experiments,
    }
    if holdout is not None:
        rules_file["holdout"] = holdout
    return rules_file


@pytest.mark.parametrize(
    "rules",
    [
        _bundle_of({"exp": {"status": "running", "arms": _TWO_ARMS, "salt": "holdout"}}, {"percent": 10}),
        _bundle_of({"holdout": {"status": "running", "arms": _TWO_ARMS}}, {"percent": 10}),
        _bundle_of(
            {
                "first": {"status": "running", "arms": _TWO_ARMS, "layer": "home", "layer_slice": [0, 50]},
                "second": {"status": "running", "arms": _TWO_ARMS, "salt": "layer/home"},
            }
        ),
        _bundle_of(
            {
                "first": {"status": "running", "arms": _TWO_ARMS, "traffic": 30},
                "second": {"status": "running", "arms": _TWO_ARMS, "salt": "first/traffic"},
            }
        ),
        _bundle_of(  # at bucket version 2 the arm draw's salt is "h/v2": the holdout's
            {"exp": {"status": "running", "arms": _TWO_ARMS, "salt": "h", "bucket_version": 2}},
            {"percent": 10, "salt": "h/v2"},
        ),
        _bundle_of(
            {
                "first": {"status": "running", "arms": _TWO_ARMS, "salt": "s", "bucket_version": 2},
                "second": {"status": "running", "arms": _TWO_ARMS, "salt": "s/v2/traffic"},
            }
        ),
    ],
    ids=[
        "salt-is-holdout-salt",
        "key-is-holdout-salt",
        "arm-salt-is-a-layer-draw",
        "arm-salt-is-an-entry-draw",
        "versioned-arm-salt-is-holdout-salt",
        "arm-salt-is-a-versioned-entry-draw",
    ],
)
def test_a_salt_serves_one_draw_only(rules: dict[str, Any]) -> None:
    with pytest.raises(BundleError):
        _compile(rules)


def test_experiments_of_a_layer_bucket_by_one_unit() -> None:
    rules = _bundle_of(
        {
            "first": {
                "status": "running",
                "arms": _TWO_ARMS,
                "layer": "home",
                "layer_slice": [0, 50],
                "bucket_by": "account_id",
            },
            "second": {"status": "running", "arms": _TWO_ARMS, "layer": "home", "layer_slice": [50, 100]},
        }
    )
    with pytest.raises(BundleError):
        _compile(rules)


# --- determinism across processes -----------------------------------------------------------------

_CHILD = """
import json
from service.core.bucketing import bucket
print(json.dumps([bucket(salt, f"visitor-{i}") for i in range(1000) for salt in ("exp", "exp/traffic", "holdout")]))
"""


def test_buckets_do_not_depend_on_the_process_or_its_hash_seed() -> None:
    here = [bucket(salt, f"visitor-{i}") for i in range(1000) for salt in ("exp", "exp/traffic", "holdout")]
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _CHILD], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
        )
        assert json.loads(done.stdout) == here, f"PYTHONHASHSEED={seed}"


def test_module_constants() -> None:
    assert bucketing.BUCKETS_PER_PERCENT == 100
    assert hash_prefix("exp") == "exp:"
