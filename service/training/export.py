"""scikit-learn pipeline → ONNX bytes, the tensors a card describes, and running the result.

Every model takes one float32 input named ``features`` of shape ``[None, n_features]``.
Opsets: ``ai.onnx`` 17 and ``ai.onnx.ml`` 3, both well inside what onnxruntime 1.31 runs.
Classifiers are exported with ``zipmap: False`` so probabilities are a plain
``[None, n_classes]`` tensor. skl2onnx names the graph with a random UUID; we replace it by a
fixed name, and sort the opset list, so the same fitted pipeline always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

from service.core.models import TensorSpec
from service.segments.onnx import open_session

INPUT_NAME = "features"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
}


def to_onnx(pipeline: Any, n_features: int, name: str, *, classifier: bool = False) -> bytes:
    """The pipeline as ONNX bytes, deterministic for a given fitted pipeline."""
    options = {id(pipeline.steps[-1][1]): {"zipmap": False}} if classifier else None
    model = convert_sklearn(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        options=options,
    )
    # skl2onnx collects the opsets in a set: their order follows the string hash, which changes with every
    # process (PYTHONHASHSEED), and so did the bytes. Sorted by domain, the same pipeline gives the same file.
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in opsets)
    model.graph.name = f"tailor_{name}"
    model.doc_string = f"Tailor segment model '{name}' (tailor train)"
    data: bytes = model.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def _tensor(value: Any) -> TensorSpec:
    tensor = value.type.tensor_type
    dtype = _DTYPES.get(tensor.elem_type)
    if dtype is None:
        raise ValueError(f"ONNX tensor '{value.name}' has element type {tensor.elem_type}, not float32/float64/int64")
    shape: list[int | None] = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
    return TensorSpec.model_validate({"name": value.name, "dtype": dtype, "shape": shape})


def tensors(data: bytes) -> tuple[TensorSpec, list[TensorSpec]]:
    """The graph's single input and its outputs, as the card records them."""
    graph = onnx.load_from_string(data).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"expected one graph input, found {len(inputs)}")
    return _tensor(inputs[0]), [_tensor(value) for value in graph.output]


class Runner:
    """An onnxruntime session over ONNX bytes (single-threaded: deterministic and cheap)."""

    def __init__(self, data: bytes) -> None:
        self._session = open_session(data)
        self.outputs: Sequence[str] = [o.name for o in self._session.get_outputs()]

    def run(self, x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[Any]]:
        values = self._session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
        return {name: np.asarray(value) for name, value in zip(self.outputs, values, strict=True)}
