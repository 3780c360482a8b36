"""BG/NBD x Gamma-Gamma as a standard ONNX graph: expected purchases and spend in the next ``t``.

The graph takes the card's four features, float32 ``[N, 4]``: recency_days, orders, tenure_days and
spend per order (raw, no transform), and computes in float64:

* ``purchases``: the BG/NBD conditional expectation of purchases in the next ``t`` weeks,
  E = (a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)] * P(alive), with
  z = t / (alpha + T + t). That is the paper's form after Euler's transformation
  2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z): the factor ((alpha+T)/(alpha+T+t))^(r+x)
  cancels, nothing overflows for large x, and the series' terms shrink with x instead of growing.
  The series is summed over ``SERIES_TERMS`` terms as exp(cumulative sum of log |ratio|) with the
  sign from the count of negative ratios (ONNX has no cumulative product);
* ``value``: purchases times the Gamma-Gamma expected spend per order, (gamma + m n) p / (p n + q - 1).

Only ai.onnx operators (opset 17): onnxruntime runs it like any other segment model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.training.export import INPUT_NAME, TARGET_OPSET
from service.training.reference import DAYS_PER_WEEK, BgNbd, GammaGamma

SERIES_TERMS = 512  # z <= t/(alpha+t) < 0.9 for any customer: the tail beyond 512 terms is below 1e-15
N_FEATURES = 4
OUTPUTS = ("purchases", "value")


def _const(name: str, value: float | np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float64), name)


def _nodes(weeks: float, bg: BgNbd, gg: GammaGamma) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    consts: dict[str, Any] = {
        "zero": 0.0, "one": 1.0, "two": 2.0, "week": DAYS_PER_WEEK, "t": weeks, "r": r, "alpha": alpha,
        "a": a, "a_minus_1": a - 1, "b_minus_1": b - 1, "ab_minus_1": a + b - 1, "top": a + b - 1 - r,
        "p": gg.p, "q_minus_1": gg.q - 1, "gamma": gg.gamma,
        "terms": np.arange(SERIES_TERMS, dtype=np.float64).reshape(1, -1),
    }  # fmt: skip
    init = [_const(k, v) for k, v in consts.items()]
    init.append(numpy_helper.from_array(np.ones(N_FEATURES, dtype=np.int64), "split"))
    init.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    n = helper.make_node
    nodes = [
        n("Cast", [INPUT_NAME], ["X"], to=TensorProto.DOUBLE),
        n("Split", ["X", "split"], ["recency", "orders", "tenure", "aov"], axis=1),
        # sufficient statistics in weeks: x repeat purchases, T since the first, t_x first to last
        n("Sub", ["orders", "one"], ["x_raw"]),
        n("Max", ["x_raw", "zero"], ["x"]),
        # the first purchase is never after the last: a missing first_purchase_at (tenure 0) reads as the last's
        n("Max", ["tenure", "recency"], ["tenure_safe"]),
        n("Div", ["tenure_safe", "week"], ["T"]),
        n("Sub", ["tenure_safe", "recency"], ["span_raw"]),
        n("Max", ["span_raw", "zero"], ["span"]),
        n("Div", ["span", "week"], ["t_x"]),
        # P(alive) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))
        n("Add", ["alpha", "T"], ["alpha_T"]),
        n("Add", ["alpha", "t_x"], ["alpha_tx"]),
        n("Div", ["alpha_T", "alpha_tx"], ["odds_base"]),
        n("Add", ["r", "x"], ["r_x"]),
        n("Pow", ["odds_base", "r_x"], ["odds_pow"]),
        n("Max", ["x", "one"], ["x_safe"]),
        n("Add", ["b_minus_1", "x_safe"], ["b_x_1"]),
        n("Div", ["a", "b_x_1"], ["odds_head"]),
        n("Mul", ["odds_head", "odds_pow"], ["odds_any"]),
        n("Greater", ["x", "zero"], ["repeat"]),
        n("Where", ["repeat", "odds_any", "zero"], ["odds"]),
        n("Add", ["one", "odds"], ["odds_1"]),
        n("Div", ["one", "odds_1"], ["p_alive"]),
        # z = t / (alpha + T + t); C = a + b + x - 1
        n("Add", ["alpha_T", "t"], ["alpha_T_t"]),
        n("Div", ["t", "alpha_T_t"], ["z"]),
        n("Add", ["ab_minus_1", "x"], ["C"]),
        # ratio_k = (top + k)(a - 1 + k) / ((C + k)(1 + k)) z, for k = 0 .. SERIES_TERMS - 1
        n("Add", ["terms", "top"], ["f1"]),
        n("Add", ["terms", "a_minus_1"], ["f2"]),
        n("Add", ["terms", "C"], ["f3"]),
        n("Add", ["terms", "one"], ["f4"]),
        n("Mul", ["f1", "f2"], ["num"]),
        n("Mul", ["f3", "f4"], ["den"]),
        n("Div", ["num", "den"], ["ratio_0"]),
        n("Mul", ["ratio_0", "z"], ["ratio"]),
        n("Abs", ["ratio"], ["ratio_abs"]),
        n("Log", ["ratio_abs"], ["ratio_log"]),
        n("Less", ["ratio", "zero"], ["ratio_neg_b"]),
        n("Cast", ["ratio_neg_b"], ["ratio_neg"], to=TensorProto.DOUBLE),
        n("CumSum", ["ratio_log", "axis1"], ["term_log"], exclusive=1),
        n("CumSum", ["ratio_neg", "axis1"], ["term_negs"], exclusive=1),
        n("Mod", ["term_negs", "two"], ["odd"], fmod=1),
        n("Mul", ["odd", "two"], ["odd_2"]),
        n("Sub", ["one", "odd_2"], ["sign"]),
        n("Exp", ["term_log"], ["term_abs"]),
        n("Mul", ["term_abs", "sign"], ["term"]),
        n("ReduceSum", ["term", "axis1"], ["series"], keepdims=1),
        # purchases = C / (a - 1) (1 - (1 - z)^(a - 1) series) P(alive)
        n("Sub", ["one", "z"], ["one_z"]),
        n("Pow", ["one_z", "a_minus_1"], ["one_z_pow"]),
        n("Mul", ["one_z_pow", "series"], ["tail"]),
        n("Sub", ["one", "tail"], ["bracket"]),
        n("Div", ["C", "a_minus_1"], ["head"]),
        n("Mul", ["head", "bracket"], ["alive_purchases"]),
        n("Mul", ["alive_purchases", "p_alive"], ["purchases_64"]),
        # spend per order = (gamma + m n) p / (p n + q - 1)
        n("Mul", ["aov", "orders"], ["m_n"]),
        n("Add", ["gamma", "m_n"], ["gg_num_0"]),
        n("Mul", ["gg_num_0", "p"], ["gg_num"]),
        n("Mul", ["p", "orders"], ["p_n"]),
        n("Add", ["p_n", "q_minus_1"], ["gg_den"]),
        n("Div", ["gg_num", "gg_den"], ["per_order"]),
        n("Mul", ["purchases_64", "per_order"], ["value_64"]),
        n("Cast", ["purchases_64"], ["purchases"], to=TensorProto.FLOAT),
        n("Cast", ["value_64"], ["value"], to=TensorProto.FLOAT),
    ]
    return nodes, init


def to_onnx(name: str, horizon_days: int, bg: BgNbd, gg: GammaGamma) -> bytes:
    """The graph for a horizon in days; deterministic bytes for given parameters."""
    nodes, init = _nodes(horizon_days / DAYS_PER_WEEK, bg, gg)
    features = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, N_FEATURES])
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None, 1]) for o in OUTPUTS]
    graph = helper.make_graph(nodes, f"tailor_{name}", [features], outputs, initializer=init)
    opsets = [helper.make_opsetid("", TARGET_OPSET[""])]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="tailor", producer_version="1")
    model.ir_version = 8
    model.doc_string = f"Tailor segment model '{name}' (tailor train): BG/NBD x Gamma-Gamma, {horizon_days} days"
    data: bytes = model.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data
