"""Exposure de-duplication: the first decision that showed a visitor an arm is the exposure.

Experiment analysis counts visitors, not page views, so a visitor who sees the same arm on every
page must count once. Later decisions are still logged, with ``exposure`` false, because they
remain decisions worth counting. The memory is per process and bounded: after an eviction or a
restart an exposure can repeat, so consumers should still de-duplicate on (visitor, experiment,
arm); this filter only keeps the repeats rare and cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import msgspec
from cachetools import LRUCache

from service.telemetry.events import DecisionEvent, Event

DEFAULT_MAX_VISITORS = 100_000  # about 30 MB; the most recent visitors are the likely repeats


class ExposureFilter:
    """Keeps ``exposure`` true only on the first event per (visitor, experiment, arm) it sees."""

    def __init__(self, maxsize: int = DEFAULT_MAX_VISITORS) -> None:
        self._seen: LRUCache[tuple[str | None, str | None, str | None], bool] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()  # cheap, and the cache's own bookkeeping is not thread-safe

    def apply(self, events: Iterable[Event]) -> list[Event]:
        """The same events, with repeated exposures turned into plain decisions (outcomes pass as they are)."""
        return [
            self._first_or_repeat(event) if isinstance(event, DecisionEvent) and event.exposure else event
            for event in events
        ]

    def _first_or_repeat(self, event: DecisionEvent) -> DecisionEvent:
        key = (event.visitor, event.experiment, event.arm)
        with self._lock:
            repeat = key in self._seen
            self._seen[key] = True  # also moves a repeat to the recent end, so active visitors stay
        return msgspec.structs.replace(event, exposure=False) if repeat else event
