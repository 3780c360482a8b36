"""Per-request cost of each segment model: our serving path, the bare ONNX session, scikit-learn.

Run from the repository root (``make compare-models``)::

    .venv/bin/python loadtests/compare_models.py [--rows 2000] [--rounds 15]

It retrains the three models from data/cdnow in memory (deterministic, so the pipelines are
the ones the committed ONNX files were exported from), takes held-out customers, and times in
one process, one visitor at a time as requests come:

* serving: ``CompiledModel.run(facts)``: features assembled from the visitor's attributes as
  the card says, then the checked ``OnnxScorer`` (what a decision pays per model);
* features only: the feature assembly alone, to show what the serving path adds;
* bare ONNX: ``InferenceSession.run`` on the ready float32 row, same session options;
* reference: the scikit-learn pipeline's ``predict`` (``predict_proba`` for churn) on the same row;
  for value, which has no pipeline, the scipy closed form the graph was built from.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import cpu_model  # loadtests/ is on the path when this runs as a script

from service.bundle.loader import load_bundle
from service.core.conditions import Facts
from service.core.models import compile_features
from service.segments.onnx import open_session
from service.training.train import TrainingRun, served_closed_form, train
from service.training.transactions import default_cutoff, epoch, load

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "cdnow" / "CDNOW_master.txt"


def _time(runners: dict[str, Callable[[], object]], rows: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Min and median µs per row of each runner; runners take turns within every round (the first
    one rotates), so a noisy neighbour slows them alike. Garbage collection is paused while timing."""
    samples: dict[str, list[float]] = {label: [] for label in runners}
    labels = list(runners)
    for round_no in range(rounds):
        for label in labels[round_no % len(labels) :] + labels[: round_no % len(labels)]:
            gc.disable()
            start = time.perf_counter()
            runners[label]()
            samples[label].append((time.perf_counter() - start) / rows * 1e6)
            gc.enable()
    return {label: (min(values), statistics.median(values)) for label, values in samples.items()}


def _runners(
    name: str, bundle: Any, run: Any, attributes: list[dict[str, Any]], now: float
) -> dict[str, Callable[[], object]]:
    compiled = bundle.models[name]
    facts = [Facts(a, {}, now, {}) for a in attributes]
    features = compile_features(compiled.card.inputs)
    x = np.array([features(f) for f in facts], dtype=np.float32)
    session = open_session(ROOT / "models" / compiled.card.file)
    input_name, output = compiled.card.onnx_input.name, [compiled.card.output.tensor]
    predict = _reference(name, run, compiled.card.output.kind)
    rows = [x[i : i + 1] for i in range(len(x))]
    return {
        "serving path": lambda: [compiled.run(f) for f in facts],
        "features only": lambda: [features(f) for f in facts],
        "bare InferenceSession.run": lambda: [session.run(output, {input_name: r}) for r in rows],
        "reference predict": lambda: [predict(r) for r in rows],
    }


def _reference(name: str, run: TrainingRun, kind: str) -> Callable[[Any], Any]:
    """The model as training computes it: the scikit-learn pipeline, or scipy for the closed-form value model."""
    pipeline = run.models[name].pipeline
    if pipeline is not None:
        fitted = pipeline.predict_proba if kind == "probability" else pipeline.predict
        return lambda x: fitted(np.asarray(x, dtype=np.float64))  # fitted in float64 (training's `wide`)
    return lambda x: served_closed_form(run, x)[1]


def _agree(name: str, bundle: Any, run: Any, attributes: list[dict[str, Any]], now: float) -> bool:
    """The serving path gives what the reference gives on the same visitors."""
    compiled = bundle.models[name]
    served = [compiled.run(Facts(a, {}, now, {})) for a in attributes]
    features = compile_features(compiled.card.inputs)
    x = np.array([features(Facts(a, {}, now, {})) for a in attributes], dtype=np.float32)
    kind = compiled.card.output.kind
    predict = _reference(name, run, kind)
    if kind == "label":
        labels = compiled.card.output.labels or {}
        return served == [labels[int(v)] for v in predict(x)]
    expected = predict(x)[:, compiled.card.output.column] if kind == "probability" else predict(x)
    return bool(np.allclose(served, expected, rtol=1e-5, atol=1e-4))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    tx = load(DATA)
    cutoff = default_cutoff(tx)
    print(f"retraining on {DATA.relative_to(ROOT)} (cutoff {cutoff}) ...", file=sys.stderr)
    run = train(tx, cutoff)
    population = run.population
    held = [a for a, h in zip(population.attributes, population.held_out, strict=True) if h][: args.rows]
    now = epoch(cutoff)
    bundle = load_bundle(ROOT)
    cpu = cpu_model()
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("onnxruntime", "scikit-learn", "numpy"))
    print(f"- CPU: {cpu}; Python {platform.python_version()}; {versions}")
    print(f"- {len(held)} held-out customers, one row per call, {args.rounds} rounds; µs per row (min / median)\n")
    print(
        "| model | serving path | features only | bare InferenceSession.run | reference predict "
        "| serving / bare | agrees with the reference |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in ("rfm", "churn", "value"):
        timed = _time(_runners(name, bundle, run, held, now), len(held), args.rounds)
        cells = " | ".join(f"{lo:.1f} / {mid:.1f}" for lo, mid in timed.values())
        ratio = timed["serving path"][0] / timed["bare InferenceSession.run"][0]
        print(f"| {name} | {cells} | {ratio:.2f} | {_agree(name, bundle, run, held, now)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
