"""Tailor's app with the cyclic garbage collector watched: a factory for the tail study only.

``loadtests/compare_http.py --variant gc-stats gc-freeze`` serves it under granian in place of
``service.http.app:create_app``. It builds the same app and adds, through the environment:

* TAILOR_PROBE_GC_LOG=FILE: every collection is timed (``gc.callbacks``), and at shutdown FILE gets
  the count and pause times per generation, and the objects the collector tracked at start;
* TAILOR_PROBE_GC_FREEZE=1: ``service.runtime.freeze_heap()`` as the first start-up hook, before
  the bundle loads (where docs/adr/0005-lean-decide-path.md proposes to call it), so that the
  collector no longer walks the objects alive then (modules, the framework, the app).

Nothing here is part of the service: it measures whether a change there would pay.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from litestar import Litestar

from service.http.app import create_app as create_service_app
from service.runtime import freeze_heap

LOG_ENV = "TAILOR_PROBE_GC_LOG"
FREEZE_ENV = "TAILOR_PROBE_GC_FREEZE"
LONG_MS = 1.0  # a pause this long is a tenth of the p50 of a request under load


@dataclass
class Pauses:
    """Collections timed by generation, from ``gc.callbacks``."""

    started: dict[int, float] = field(default_factory=dict)
    ms: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    tracked_at_start: int = 0
    frozen: int = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if phase == "start":
            self.started[generation] = perf_counter()
        elif generation in self.started:
            self.ms[generation].append((perf_counter() - self.started.pop(generation)) * 1000)

    def summary(self) -> str:
        parts = [f"{self.tracked_at_start:,} objects tracked after start, {self.frozen:,} frozen"]
        for generation, pauses in self.ms.items():
            if not pauses:
                parts.append(f"gen {generation}: none")
                continue
            long = sum(p >= LONG_MS for p in pauses)
            parts.append(
                f"gen {generation}: {len(pauses):,} collections, median {statistics.median(pauses):.3f} ms, "
                f"max {max(pauses):.2f} ms, total {sum(pauses):.0f} ms, {long:,} of {LONG_MS:g} ms or more"
            )
        return "; ".join(parts)


def create_app() -> Litestar:
    app = create_service_app()
    pauses = Pauses()
    freeze = os.environ.get(FREEZE_ENV) == "1"

    def frozen(_: Litestar) -> None:
        pauses.frozen = freeze_heap()

    def loaded(_: Litestar) -> None:  # runs after the app's own start-up hook: the bundle is loaded
        pauses.tracked_at_start = len(gc.get_objects()) + gc.get_freeze_count()
        gc.callbacks.append(pauses)

    def write(_: Litestar) -> None:
        gc.callbacks.remove(pauses)
        if path := os.environ.get(LOG_ENV):
            Path(path).write_text(json.dumps({"ms": pauses.ms, "summary": pauses.summary()}))

    if freeze:
        app.on_startup.insert(0, frozen)
    app.on_startup.append(loaded)
    app.on_shutdown.append(write)
    return app
