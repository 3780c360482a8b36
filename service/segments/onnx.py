"""ONNX scoring: the only module that imports onnxruntime.

One InferenceSession per model per bundle, created at load and checked against the
model card: the input's name, dtype and width, and every output the card lists. A
session runs one request's row on the request's thread, so it gets one intra-op
thread: a per-visitor row is far too small to gain from more, and several workers
already use every core.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.core.errors import TailorError
from service.core.models import ModelCard, TensorSpec

# onnxruntime's type strings for the dtypes a card can name.
_ORT_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "int64": "tensor(int64)"}


class ModelLoadError(TailorError):
    """A model file that is missing, unreadable, or not the model its card describes."""


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings here would repeat in every worker's log
    return options


def open_session(model: Path | bytes) -> ort.InferenceSession:
    """A session with the serving options, over a file or ONNX bytes (training checks its exports with it)."""
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=session_options(), providers=["CPUExecutionProvider"])


class OnnxScorer:
    """Scores one visitor's row with a checked session and reads the card's output from it."""

    def __init__(self, card: ModelCard, model: Path | bytes) -> None:
        self.card = card
        self._session = _open(model, card.file)
        _check(card, self._session)
        self._input = card.onnx_input.name
        self._outputs = [card.output.tensor]
        # InferenceSession.run re-validates input names, OrtValue ownership and provider fallback on
        # every call: about 4 µs of a 10 µs run. All of it was settled here, at load (names checked
        # against the card, plain numpy input, the CPU provider only), so rows go to the binding's run.
        binding = getattr(self._session, "_sess", None)
        self._run = binding.run if binding is not None else self._session.run
        self._kind = card.output.kind
        self._column = card.output.column or 0
        self._labels = dict(card.output.labels or {})

    def score(self, row: Sequence[float]) -> str | float:
        result = self._run(self._outputs, {self._input: np.array([row], dtype=np.float32)}, None)[0]
        if self._kind == "label":
            number = int(result.reshape(-1)[0])
            return self._labels.get(number, str(number))
        if self._kind == "probability":
            return float(result[0][self._column])
        return float(result.reshape(-1)[0])

    def score_batch(self, rows: np.ndarray) -> list[str | float]:
        """The card's output for many visitors at once (one session run for the batch: simulations)."""
        result = self.run_batch(rows)
        if self._kind == "label":
            labels = self._labels
            return [labels.get(n, str(n)) for n in result.reshape(-1).astype(int).tolist()]
        if self._kind == "probability":
            return [float(p) for p in result[:, self._column].tolist()]
        return [float(v) for v in result.reshape(-1).tolist()]

    def run_batch(self, rows: np.ndarray) -> np.ndarray:
        """The raw output tensor for many rows (parity checks, benchmarks)."""
        return self._session.run(self._outputs, {self._input: rows.astype(np.float32)})[0]  # type: ignore[no-any-return]


def _open(model: Path | bytes, file: str) -> ort.InferenceSession:
    """A session over the file, or over the bytes a bundle load read (so the model is the one its revision names)."""
    name = Path(file).name
    if isinstance(model, Path) and not model.is_file():
        raise ModelLoadError(f"model file {name} does not exist")
    try:
        return open_session(model)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors (InvalidProtobuf, Fail) derive from Exception only
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model file {name} cannot be loaded: {first_line}") from None


def _check(card: ModelCard, session: ort.InferenceSession) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(f"the model has {len(inputs)} inputs; the card describes one ({card.onnx_input.name})")
    _check_tensor("input", card.onnx_input, inputs[0])
    outputs = {o.name: o for o in session.get_outputs()}
    for spec in card.onnx_outputs:
        if spec.name not in outputs:
            raise ModelLoadError(f"the model has no output '{spec.name}' (it has {', '.join(outputs)})")
        _check_tensor("output", spec, outputs[spec.name])


def _check_tensor(role: str, spec: TensorSpec, actual: ort.NodeArg) -> None:
    if actual.name != spec.name:
        raise ModelLoadError(f"the model's {role} is named '{actual.name}', the card says '{spec.name}'")
    if actual.type != _ORT_TYPES[spec.dtype]:
        raise ModelLoadError(f"the model's {role} '{actual.name}' is {actual.type}, the card says {spec.dtype}")
    shape = [dim if isinstance(dim, int) else None for dim in actual.shape]
    if shape != spec.shape:
        raise ModelLoadError(f"the model's {role} '{actual.name}' has shape {shape}, the card says {spec.shape}")
