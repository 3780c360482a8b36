"""Rendering cases: a visitor and a variant of the example bundle → the expected HTML.

Each ``tests/render_cases/*.yaml`` file lists cases. A case names a ``variant``, the
visitor's ``attributes`` and ``consent`` (personalization, default true), the request
``context`` (locale, currency), ``segments`` and ``now``; it expects ``status``
(default rendered) and the ``html`` exactly, or strings it ``contains`` and that are
``absent``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.rendering import RenderInputs
from service.render.cache import RenderCache

TESTS = Path(__file__).parent
ROOT = TESTS.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CASE_KEYS = {"name", "variant", "attributes", "consent", "context", "segments", "now", "status", "html", "contains",
             "absent", "error"}  # fmt: skip


def _cases() -> list[Any]:
    cases = []
    for path in sorted((TESTS / "render_cases").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            unknown = set(case) - CASE_KEYS
            assert not unknown, f"{path.name}: {case.get('name')}: unknown keys {sorted(unknown)}"
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(ROOT)


def _inputs(case: dict[str, Any]) -> RenderInputs:
    now = case.get("now")
    return RenderInputs(
        attributes=case.get("attributes", {}),
        context=case.get("context", {}),
        segments=case.get("segments", []),
        now=NOW if now is None else datetime.fromisoformat(str(now)),
        personalization=case.get("consent", True),
    )


@pytest.mark.parametrize("case", _cases())
def test_render_case(case: dict[str, Any], bundle: Bundle) -> None:
    rendered = bundle.blocks.render(case["variant"], _inputs(case))
    assert rendered.status == case.get("status", "rendered"), rendered.detail
    if "error" in case:
        assert rendered.error is not None
        assert case["error"] in rendered.error
    if "html" in case:
        assert rendered.html.strip() == case["html"].strip()
    for text in case.get("contains", []):
        assert text in rendered.html
    for text in case.get("absent", []):
        assert text not in rendered.html


@pytest.mark.parametrize("case", _cases())
def test_a_cached_render_is_the_same_render(case: dict[str, Any], bundle: Bundle) -> None:
    """Through the cache, twice: the second is a hit and equals an uncached render."""
    cache = RenderCache()
    first = bundle.blocks.render(case["variant"], _inputs(case), cache)
    second = bundle.blocks.render(case["variant"], _inputs(case), cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert first == second == bundle.blocks.render(case["variant"], _inputs(case))
