"""Render the blocks of a decision: one visitor, every decided placement whose variant has a template."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter

from service.core.compile import Bundle
from service.core.decide import Decision, DecisionRequest
from service.core.rendering import RenderCache, Rendered, RenderInputs

# (variant, status, came from the cache, seconds): where metrics hear about each block
Observer = Callable[[str, str, bool, float], None]


@dataclass
class Tally:
    """What a request's renders did, for its response headers or summary line."""

    blocks: int = 0
    fallbacks: int = 0
    hits: int = 0
    misses: int = 0


def inputs_for(request: DecisionRequest, segments: list[str]) -> RenderInputs:
    return RenderInputs(request.attributes, request.context, segments, request.now, request.personalization)


def render_variant(
    bundle: Bundle,
    variant: str,
    inputs: RenderInputs,
    *,
    cache: RenderCache | None,
    tally: Tally,
    observe: Observer | None = None,
) -> Rendered:
    """Render one variant's block, counting it into ``tally``; the bundle must have the block."""
    blocks = bundle.blocks
    hits_before = tally.hits
    start = perf_counter()
    rendered = blocks.render(variant, inputs, _Counting(cache, tally) if cache is not None else None)
    tally.blocks += 1
    if cache is None:
        tally.misses += 1
    if rendered.status == "fallback":
        tally.fallbacks += 1
    if observe is not None:
        observe(variant, rendered.status, tally.hits > hits_before, perf_counter() - start)
    return rendered


def render_decision(
    bundle: Bundle,
    decision: Decision,
    inputs: RenderInputs,
    *,
    cache: RenderCache | None,
    tally: Tally,
    observe: Observer | None = None,
) -> Mapping[str, Rendered]:
    """The rendered block of every placement whose variant has one."""
    blocks = bundle.blocks
    out = {}
    for name, placed in decision.placements.items():
        variant = placed.variant
        if variant is not None and blocks.has_block(variant):
            out[name] = render_variant(bundle, variant, inputs, cache=cache, tally=tally, observe=observe)
    return out


class _Counting:
    """A cache seen through a tally: counts this request's hits and misses."""

    __slots__ = ("_cache", "_tally")

    def __init__(self, cache: RenderCache, tally: Tally) -> None:
        self._cache = cache
        self._tally = tally

    def get(self, key: tuple[object, ...]) -> Rendered | None:
        found = self._cache.get(key)
        if found is None:
            self._tally.misses += 1
        else:
            self._tally.hits += 1
        return found

    def put(self, key: tuple[object, ...], value: Rendered) -> None:
        self._cache.put(key, value)
