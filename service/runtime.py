"""How a serving worker's interpreter is set up: the cyclic garbage collector.

CPython's full collection walks every tracked object: in a worker that is about 85,000 of them
(modules, Litestar, pydantic, onnxruntime's wrappers, the app), and only about 2,000 are the
compiled bundle. On the 2-core machine of docs/BENCHMARKS.md one full collection took 55 ms of
CPU (up to 270 ms of wall time under load), every 3 to 4 s under load: that pause was the
p99 of /v1/decide. ``gc.freeze()`` moves the objects alive at start-up out of the collector's
reach; the objects made later (requests, bundles loaded by reloads) are collected as before.
"""

from __future__ import annotations

import gc


def freeze_heap() -> int:
    """Keep the cyclic collector off every object alive now; once per process. How many were frozen.

    Call it when a worker has built its app and before it loads the first bundle: what is frozen
    is never freed if it later becomes cyclic garbage, so it must be what lives as long as the
    process (modules, the framework, the app), not a bundle that a reload will replace. Later
    calls do nothing, so apps built again and again in one process (tests) do not pile up.
    """
    if gc.get_freeze_count():
        return 0
    gc.collect()  # today's garbage is not frozen with the rest
    gc.freeze()
    return gc.get_freeze_count()
