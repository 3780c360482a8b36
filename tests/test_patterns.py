"""``matches`` runs in linear time (ADR 0016): RE2, checked against Python's engine where both apply.

The patterns marketers write (prefixes, domains, alternatives, postcodes, case-insensitive words)
mean the same under RE2 as under Python's ``re`` for any text; a pattern that makes a backtracking
engine take exponential time decides at once, in a real bundle, against the longest attribute a
request may carry.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.loader import load_bundle
from service.core import patterns
from service.core.decide import DecisionRequest, decide
from service.settings import Settings
from tests.test_conditions_properties import NOW

EVERYDAY = [
    "^EL-", "@example\\.com$", "^(gold|platinum)$", "^[0-9]{5}$", "^[A-Z]{2}-[0-9]+", "sale|promo",
    "^https?://shop\\.", "\\.pdf$", "^v?[0-9]+\\.[0-9]+", "[aeiou]{3}", "^$", "a.c", "^(?:de|at|ch)$",
]  # fmt: skip
texts = st.text(alphabet="aceuilEL-@.0123456789xyzGOLDgold:/ptsh", max_size=40) | st.sampled_from(
    ["EL-123", "ana@example.com", "gold", "12345", "DE-7", "https://shop.x", "a.pdf", "v1.2", "", "abc"]
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EVERYDAY), texts, st.booleans())
def test_everyday_patterns_mean_what_they_meant_under_python_re(pattern: str, text: str, fold: bool) -> None:
    ours = patterns.searcher(pattern, ignore_case=fold)(text) is not None
    theirs = re.compile(pattern, re.IGNORECASE if fold else 0).search(text) is not None
    assert ours == theirs


def _bundle_with(tmp_path: Path, pattern: str) -> Path:
    root = Path(__file__).parents[1]
    for part in ("content", "models"):
        shutil.copytree(root / part, tmp_path / part)  # a copy: a bundle holds its own files
    (tmp_path / "rules").mkdir()
    rules: dict[str, Any] = {
        "version": 1,
        "segments": {"odd_sku": {"when": {"attr": "sku", "matches": pattern}}},
        "placements": {
            "home_hero": {"default": "hero_default", "rules": [{"segment": "odd_sku", "serve": "hero_vip"}]}
        },
    }
    (tmp_path / "rules" / "home.yaml").write_text(yaml.safe_dump(rules))
    return tmp_path


@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|aa)+$", "^(a|a?)+$", "(x+x+)+y"])
def test_a_pattern_that_backtracking_takes_forever_on_decides_at_once(tmp_path: Path, pattern: str) -> None:
    """Python's engine needs about 2^n steps here: 27 letters took it 9 s, 30 about a minute, 4,096 forever.
    The bound of 60 s only tells a hang from an answer (the decision takes well under a millisecond)."""
    bundle = load_bundle(_bundle_with(tmp_path, pattern))
    text = ("a" if "a" in pattern else "x") * (Settings().max_text_length - 1) + "!"
    request = DecisionRequest("v-1", {"sku": text}, NOW, personalization=True)
    found: list[str | None] = []
    worker = threading.Thread(
        target=lambda: found.append(decide(bundle, request).placements["home_hero"].variant), daemon=True
    )
    worker.start()
    worker.join(60)
    assert found == ["hero_default"]
