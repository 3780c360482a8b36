"""The 20-flag workload, shared by the pytest benchmarks and loadtests/compare_growthbook.py.

flag_NN targets visitors of COUNTRIES[NN % 3] and runs exp_NN, whose first arm ("on",
variant flag_on) owns buckets [0, 5000); flags20/rules/flags.yaml is the same as YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xxhash import xxh3_64_intdigest

FLAGS20 = Path(__file__).parent / "flags20"
COUNTRIES = ("US", "DE", "FR")
FLAGS = tuple((f"flag_{i:02d}", COUNTRIES[i % 3], f"exp_{i:02d}:") for i in range(20))


def lower_bound(visitor_id: str, attrs: Mapping[str, Any]) -> dict[str, str]:
    """The workload written by hand: what any rule engine on CPython has to beat.

    Same hash and buckets as the core (xxh3_64 of ``"exp_NN:" + id``, mod 10 000), so its
    answers equal decide()'s exactly.
    """
    out = {}
    for name, country, prefix in FLAGS:
        if attrs.get("country") == country and xxh3_64_intdigest((prefix + visitor_id).encode()) % 10_000 < 5_000:
            out[name] = "flag_on"
        else:
            out[name] = "flag_off"
    return out
