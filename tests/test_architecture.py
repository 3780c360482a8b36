"""Imports flow inward: the decision core loads no framework, template engine or model runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FORBIDDEN_IN_CORE = {"litestar", "granian", "jinja2", "onnxruntime", "httpx", "yaml", "service.http", "service.bundle"}


def test_core_imports_only_what_it_may() -> None:
    code = (
        "import sys, json; import service.core.decide, service.core.compile; "
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stdout))
    leaked = {
        name for name in loaded for banned in FORBIDDEN_IN_CORE if name == banned or name.startswith(banned + ".")
    }
    assert leaked == set()


def test_only_the_http_package_imports_litestar() -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "service").rglob("*.py")
        if "import litestar" in path.read_text() or "from litestar" in path.read_text()
        if path.parent.name != "http"
    ]
    assert offenders == []


def test_only_the_segments_package_imports_onnxruntime() -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "service").rglob("*.py")
        if "import onnxruntime" in path.read_text() or "from onnxruntime" in path.read_text()
        if path.relative_to(ROOT).as_posix() != "service/segments/onnx.py"
    ]
    assert offenders == []


def test_serving_never_loads_the_training_stack() -> None:
    code = "import sys, json; import service.http.app, service.cli; print(json.dumps(sorted(m for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stdout))
    assert {"sklearn", "skl2onnx", "matplotlib", "pandas", "service.training"} & loaded == set()


def test_serving_never_loads_the_simulation_stack() -> None:
    """``tailor simulate`` registers its arguments in the command; DuckDB and the simulation load only when it runs."""
    code = "import sys, json; import service.http.app, service.cli; print(json.dumps(sorted(m for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stdout))
    assert "duckdb" not in loaded
    assert {m for m in loaded if m.startswith("service.simulate.")} == {"service.simulate.command"}


def _importers(library: str) -> set[str]:
    return {
        path.parent.name
        for path in (ROOT / "service").rglob("*.py")
        if f"import {library}" in path.read_text() or f"from {library}" in path.read_text()
    }


def test_only_the_offline_tools_import_duckdb() -> None:
    assert _importers("duckdb") <= {"simulate", "analysis"}


@pytest.mark.parametrize("library", ["jinja2", "markupsafe", "babel", "mjml"])
def test_only_the_render_package_imports_the_template_stack(library: str) -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "service").rglob("*.py")
        if f"import {library}" in path.read_text() or f"from {library}" in path.read_text()
        if path.parent.name != "render"
    ]
    assert offenders == []


def test_serving_never_loads_the_analysis_stack() -> None:
    code = "import sys, json; import service.http.app, service.cli; print(json.dumps(sorted(m for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stdout))
    assert {"duckdb", "scipy", "service.analysis"} & loaded == set()


def test_only_the_offline_analysis_and_training_import_scipy() -> None:
    assert _importers("scipy") <= {"analysis", "training"}


# What a worker serving a folder never needs: the offline tools' stacks, and httpx (only an HTTP bundle
# origin or a decision collector uses it). Each is megabytes of RSS in every worker (docs/BENCHMARKS.md).
NOT_IN_A_SERVING_WORKER = (
    "duckdb", "pandas", "pyarrow", "polars", "scipy", "sklearn", "skl2onnx", "matplotlib", "httpx", "httpcore",
    "service.training", "service.analysis", "service.simulate",
)  # fmt: skip
WORKER = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
import msgspec
from service.http import wire
from service.http.app import create_app
from service.bundle.store import BundleStore
from service.render.cache import RenderCache
from service.serving import Serving
from service.settings import Settings
from service.telemetry.metrics import Metrics

settings = Settings(bundle=".", reload_interval=0, log_level="WARNING")
create_app(settings)
store = BundleStore()
assert store.load(Path(".")).ok
body = json.loads(Path("examples/visitors/cart-abandoner.json").read_text())
request = msgspec.convert({"visitor": body, "render": True}, wire.DecideRequest)
serving = Serving(settings, Metrics(), None, lambda: datetime.now(UTC), RenderCache())
assert serving.decision(store.current.bundle, request, client_time=False).response().placements
print(json.dumps(sorted(sys.modules)))
"""


def test_a_serving_worker_loads_no_offline_stack_and_no_http_client() -> None:
    """The app built, the example bundle compiled (models, templates) and a page view rendered, as a worker does."""
    done = subprocess.run(
        [sys.executable, "-c", WORKER], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    leaked = {
        name for name in loaded for banned in NOT_IN_A_SERVING_WORKER if name == banned or name.startswith(banned + ".")
    }
    assert leaked == set()
