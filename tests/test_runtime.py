"""freeze_heap(): the objects alive at start-up leave the collector's reach, once; later garbage is still collected."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.server import ROOT

# Run in a fresh interpreter: freezing is process-wide, and the test process must keep its own collector.
SCRIPT = """
import gc, json, weakref
from service.http.app import create_app
from service.runtime import freeze_heap
from service.settings import Settings

app = create_app(Settings(bundle="tests/bench/flags20", reload_interval=0, log_level="WARNING"))
tracked = len(gc.get_objects())
first, second = freeze_heap(), freeze_heap()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the freeze: only the collector can free it
gone = weakref.ref(a)
del a, b
gc.collect()
gc.collect()
print(json.dumps({"tracked": tracked, "first": first, "second": second, "cycle_freed": gone() is None,
                  "left": len(gc.get_objects()), "enabled": gc.isenabled()}))
"""


def test_freeze_heap_freezes_the_start_up_heap_once_and_the_collector_still_frees_new_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["first"] >= 0.9 * result["tracked"]  # nearly everything alive was frozen
    assert result["second"] == 0  # once per process
    assert result["cycle_freed"] is True
    assert result["enabled"] is True
    assert result["left"] < result["tracked"] // 10  # a full collection now walks a tenth or less
