"""Serving never loads the training package or its heavy dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT

TRAINING_ONLY = ("service.training", "sklearn", "skl2onnx", "matplotlib", "onnx")
SERVING = ("service.cli", "service.http.app", "service.bundle.loader", "service.segments.onnx")


def test_serving_modules_do_not_import_training() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {SERVING!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = json.loads(done.stdout)
    leaked = sorted(m for m in loaded for banned in TRAINING_ONLY if m == banned or m.startswith(banned + "."))
    assert leaked == []


def test_serving_code_does_not_mention_the_training_package_at_import_level() -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "service").rglob("*.py")
        if "training" not in path.parts
        for line in path.read_text().splitlines()
        if line.startswith(("import service.training", "from service.training"))
    ]
    assert offenders == []
