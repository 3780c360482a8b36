"""The choice of k and the cluster names follow their written rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.training.fit import Profile, choose_k, elbow, name_clusters
from service.training.train import LIKELY_CHURN_SHARE, _large_enough, better_clustering, likely_churn_threshold

WINDOW = 273.0


def test_elbow_is_the_point_farthest_below_the_chord() -> None:
    assert elbow([2, 3, 4, 5, 6, 7, 8], [100, 60, 30, 25, 21, 18, 16]) == 4
    assert elbow([2, 3], [10, 5]) == 2  # too few points for a bend


def test_the_four_cdnow_like_clusters() -> None:
    profiles = [
        Profile(0, 229, 1.01, 16),
        Profile(1, 49, 6.5, 260),
        Profile(2, 219, 1.37, 57),
        Profile(3, 86, 2.7, 74),
    ]
    assert name_clusters(profiles, WINDOW) == {0: "one_time", 1: "champions", 2: "lapsed", 3: "loyal"}


def test_lapsed_exists_even_when_every_cluster_is_recent() -> None:
    profiles = [Profile(0, 10, 5, 300), Profile(1, 40, 1, 20), Profile(2, 60, 2, 80)]
    names = name_clusters(profiles, WINDOW)
    assert names[2] == "lapsed"  # the largest recency takes the name
    assert sorted(names.values()) == ["champions", "lapsed", "new"]


@pytest.mark.parametrize("k", range(2, 9))
def test_names_are_unique_valid_and_include_lapsed(k: int) -> None:
    rng = np.random.default_rng(k)
    profiles = [
        Profile(i, float(rng.uniform(1, WINDOW)), float(rng.uniform(1, 8)), float(rng.uniform(5, 500)))
        for i in range(k)
    ]
    names = name_clusters(profiles, WINDOW)
    assert sorted(names) == list(range(k))
    assert len(set(names.values())) == k
    assert "lapsed" in names.values()


def test_many_clusters_in_one_cell_get_numbered_names() -> None:
    profiles = [Profile(i, 250.0, 1.0, 10.0 + i) for i in range(6)]
    names = name_clusters(profiles, WINDOW)
    assert sorted(names.values()) == ["dormant", "lapsed", "lapsed_2", "lapsed_3", "lost", "one_time"]


def test_choose_k_stays_below_the_number_of_distinct_points() -> None:
    x = np.repeat(np.array([[1, 0, 0], [200, 2, 5], [100, 1, 3], [50, 3, 6]], dtype=np.float32), 5, axis=0)
    choice = choose_k(x, seed=0)
    assert choice.ks == (2, 3)
    assert choice.k in choice.ks


def test_k_is_lowered_until_no_cluster_is_too_small() -> None:
    """Four blobs, one of 30 customers next to a large one: at k=4 it is a cluster of its own; the rule asks for 100."""
    rng = np.random.default_rng(1)
    blobs = [(0, 0, 0, 500), (10, 0, 0, 500), (0, 10, 0, 500), (0, 0, 4, 30)]
    x = np.vstack([rng.normal((a, b, c), 0.5, (n, 3)) for a, b, c, n in blobs]).astype(np.float32)
    k, pipeline = _large_enough(4, x, x, 100, seed=0)
    assert k == 3
    assert np.bincount(pipeline.predict(x.astype(np.float64))).min() >= 100
    assert _large_enough(3, x, x, 100, seed=0)[0] == 3  # nothing to lower


@pytest.mark.parametrize(
    ("p", "threshold"),
    [
        (np.linspace(0, 1, 1001), 0.75),  # spread evenly: the 75th percentile
        # Crowded just under a step, as on CDNOW (quantile 0.85999): rounding the quantile down to 0.85 would
        # flag 40 % here; 0.86 flags 25 %.
        (np.concatenate([np.full(600, 0.5), np.full(150, 0.855), np.full(250, 0.8601)]), 0.86),
        (np.full(10, 0.9), 1.0),  # all tied: flagging nobody (0 %) is nearer 25 % than flagging everybody
        (np.array([]), 1.0),
    ],
)
def test_likely_churn_threshold_is_the_step_that_flags_nearest_the_target_share(p: Any, threshold: float) -> None:
    assert likely_churn_threshold(p) == threshold


@given(st.lists(st.floats(0, 1), min_size=1, max_size=300))
def test_no_other_step_flags_a_share_nearer_the_target(values: list[float]) -> None:
    p = np.array(values)
    chosen = likely_churn_threshold(p)
    distance = abs(float(np.mean(p >= chosen)) - LIKELY_CHURN_SHARE)
    steps = [i / 100 for i in range(101)]
    assert chosen in steps
    assert all(distance <= abs(float(np.mean(p >= t)) - LIKELY_CHURN_SHARE) for t in steps)


@pytest.mark.parametrize(
    ("kmeans", "gmm", "kept"),
    [
        (
            {"silhouette": 0.40, "stability_ari": [0.3, 0.7]},
            {"silhouette": 0.37, "stability_ari": [0.9, 1.0]},
            "kmeans",
        ),
        ({"silhouette": 0.40, "stability_ari": [0.3, 0.7]}, {"silhouette": 0.395, "stability_ari": [0.9, 1.0]}, "gmm"),
        ({"silhouette": 0.40, "stability_ari": [0.9]}, {"silhouette": 0.45, "stability_ari": [0.8]}, "kmeans"),
        ({"silhouette": 0.40, "stability_ari": []}, {"silhouette": 0.45, "stability_ari": []}, "kmeans"),
    ],
)
def test_the_mixture_is_kept_only_when_steadier_and_as_well_separated(
    kmeans: dict[str, Any], gmm: dict[str, Any], kept: str
) -> None:
    assert better_clustering({"kmeans": kmeans, "gmm": gmm}) == kept
