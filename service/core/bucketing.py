"""The one bucketing function, version 1. See docs/bucketing.md before changing anything here.

A visitor's bucket is ``xxh3_64(utf8(salt + ":" + unit)) mod 10_000``. Buckets are
integers, so percentages have a resolution of 0.01 %. Every experiment hashes
twice with different salts, so whether a visitor enters and which arm they get are
independent:

* entry:  salt ``"{experiment salt}/traffic"`` (or ``"layer/{layer}"`` for a layer,
  so that experiments of one layer share one draw and can own disjoint slices);
* arm:    salt ``"{experiment salt}"``;
* holdout: salt from the holdout settings (default ``"holdout"``), on the visitor id.

Changing any of this moves visitors between arms: it needs a new HASH_VERSION, an ADR
and new test vectors (tests/vectors/ is append-only).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from xxhash import xxh3_64_intdigest

HASH_VERSION = 1
BUCKETS = 10_000
BUCKETS_PER_PERCENT = BUCKETS // 100


def hash_prefix(salt: str) -> str:
    """The part of the hash input fixed by the salt; compiled once per experiment."""
    return salt + ":"


def bucket_of(prefix: str, unit: str) -> int:
    """The bucket in ``[0, BUCKETS)`` of ``unit`` under a prefix made by ``hash_prefix``."""
    return xxh3_64_intdigest((prefix + unit).encode()) % BUCKETS


def bucket(salt: str, unit: str) -> int:
    """``bucket_of`` for callers that have not compiled a prefix (tests, tools)."""
    return bucket_of(hash_prefix(salt), unit)


def percent_to_buckets(percent: float) -> int:
    """How many buckets a percentage covers: 5 % → 500 buckets, 0.01 % → 1 bucket."""
    return round(percent * BUCKETS_PER_PERCENT)


def arm_bounds(weights: Sequence[int]) -> tuple[int, ...]:
    """Upper bucket bounds of arms, in their declared order, proportional to integer weights.

    Arm ``i`` owns buckets ``[bounds[i-1], bounds[i])``; the last bound is always BUCKETS.
    Bounds are floors of the exact proportion, so they never depend on float rounding.
    """
    total = sum(weights)
    if total <= 0:
        raise ValueError("arm weights must add up to more than 0")
    running = 0
    bounds = []
    for weight in weights:
        running += weight
        bounds.append(BUCKETS * running // total)
    return tuple(bounds)


def arm_index(bounds: tuple[int, ...], value: int) -> int:
    """The arm owning bucket ``value``; arms of weight 0 own no bucket and are never picked."""
    return bisect_right(bounds, value)
