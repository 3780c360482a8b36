"""Sample sizes for a two-arm test of conversion rates, and the days a traffic level needs for them."""

from __future__ import annotations

import math
from statistics import NormalDist

ALPHA = 0.05  # two-sided significance level
POWER = 0.80
_NORMAL = NormalDist()


def sample_size(baseline: float, relative_mde: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Visitors per arm to detect a relative lift of ``relative_mde`` over ``baseline`` (two proportions).

    The normal approximation with the pooled variance under the null and the unpooled one
    under the alternative (Fleiss, Statistical Methods for Rates and Proportions, 4.2).
    """
    p1 = baseline
    p2 = baseline * (1 + relative_mde)
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError(f"baseline {baseline} with a relative MDE of {relative_mde} is not a rate between 0 and 1")
    z_alpha = _NORMAL.inv_cdf(1 - alpha / 2)
    z_power = _NORMAL.inv_cdf(power)
    pooled = (p1 + p2) / 2
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(spread**2 / (p2 - p1) ** 2)


def days_to_reach(per_arm: int, daily_visitors: int, arm_shares: list[float]) -> int | None:
    """Days until the smallest arm has ``per_arm`` visitors, when ``daily_visitors`` come with these arm shares."""
    smallest = min(arm_shares, default=0.0)
    if smallest <= 0 or daily_visitors <= 0:
        return None
    return math.ceil(per_arm / (daily_visitors * smallest))
