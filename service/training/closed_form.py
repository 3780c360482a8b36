"""BG/NBD or Pareto/NBD x Gamma-Gamma as a standard ONNX graph: expected purchases and spend in the next ``t``.

The graph takes the card's four features, float32 ``[N, 4]``: recency_days, orders, tenure_days and
spend per order (raw, no transform), and computes in float64:

* ``purchases``: the BG/NBD conditional expectation of purchases in the next ``t`` weeks,
  E = (a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)] * P(alive), with
  z = t / (alpha + T + t). That is the paper's form after Euler's transformation
  2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z): the factor ((alpha+T)/(alpha+T+t))^(r+x)
  cancels, nothing overflows for large x, and the series' terms shrink with x instead of growing.
  The series is summed over ``SERIES_TERMS`` terms as exp(cumulative sum of log |ratio|) with the
  sign from the count of negative ratios (ONNX has no cumulative product);
* or ``purchases`` from Pareto/NBD: P(alive) (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)],
  with P(alive) = 1 / (1 + exp(dropped - alive)) from the two terms of the likelihood (``reference.pnbd_loglik``);
  its 2F1(r+s+x, s+1; r+s+x+1; z) (or (r+s+x, r+x; ...) when alpha < beta) has positive terms, summed with a
  log-sum-exp over as many terms as the worst customer the clips allow needs (``pareto_terms``: the largest
  x and z; on CDNOW's fit about 30, since z <= (alpha - beta) / alpha is small);
* ``value``: purchases times the Gamma-Gamma expected spend per order, (gamma + m n) p / (p n + q - 1), times a
  constant spend factor (1 unless training corrects the order value, see ``service.training.value``).

Only ai.onnx operators (opset 17): onnxruntime runs it like any other segment model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.training.export import INPUT_NAME, TARGET_OPSET
from service.training.reference import DAYS_PER_WEEK, BgNbd, GammaGamma, ParetoNbd

SERIES_TERMS = 512  # z <= t/(alpha+t) < 0.9 for any customer: the tail beyond 512 terms is below 1e-15
MAX_PARETO_TERMS = 1 << 14
TAIL = 1e-18  # the Pareto/NBD series stops where a term is below TAIL times the largest and still falling
N_FEATURES = 4
OUTPUTS = ("purchases", "value")


def _const(name: str, value: float | np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float64), name)


def _head() -> list[onnx.NodeProto]:
    """The sufficient statistics in weeks: x repeat purchases, T since the first, t_x first to last."""
    n = helper.make_node
    return [
        n("Cast", [INPUT_NAME], ["X"], to=TensorProto.DOUBLE),
        n("Split", ["X", "split"], ["recency", "orders", "tenure", "aov"], axis=1),
        n("Sub", ["orders", "one"], ["x_raw"]),
        n("Max", ["x_raw", "zero"], ["x"]),
        # the first purchase is never after the last: a missing first_purchase_at (tenure 0) reads as the last's
        n("Max", ["tenure", "recency"], ["tenure_safe"]),
        n("Div", ["tenure_safe", "week"], ["T"]),
        n("Sub", ["tenure_safe", "recency"], ["span_raw"]),
        n("Max", ["span_raw", "zero"], ["span"]),
        n("Div", ["span", "week"], ["t_x"]),
    ]


def _bg_nodes(bg: BgNbd) -> tuple[list[onnx.NodeProto], dict[str, Any]]:
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    consts: dict[str, Any] = {
        "r": r, "alpha": alpha, "a": a, "a_minus_1": a - 1, "b_minus_1": b - 1, "ab_minus_1": a + b - 1,
        "top": a + b - 1 - r,
    }  # fmt: skip
    n = helper.make_node
    nodes = [
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
    ]
    return nodes, consts


def _pn_lead(u: str) -> list[onnx.NodeProto]:
    """log(2F1(top, second; top + 1; (big - small) / (big + u)) / (big + u)^top), one of the two ends of A0."""
    n = helper.make_node
    return [
        n("Add", ["big", u], [f"big_{u}"]),
        n("Div", ["big_small", f"big_{u}"], [f"z_{u}"]),
        n("Mul", ["ratio_0", f"z_{u}"], [f"ratio_{u}"]),
        n("Log", [f"ratio_{u}"], [f"ratio_log_{u}"]),
        n("CumSum", [f"ratio_log_{u}", "axis1"], [f"term_log_{u}"], exclusive=1),
        n("ReduceMax", [f"term_log_{u}"], [f"term_max_{u}"], axes=[1], keepdims=1),
        n("Sub", [f"term_log_{u}", f"term_max_{u}"], [f"term_rel_{u}"]),
        n("Exp", [f"term_rel_{u}"], [f"term_{u}"]),
        n("ReduceSum", [f"term_{u}", "axis1"], [f"series_{u}"], keepdims=1),
        n("Log", [f"series_{u}"], [f"series_log_{u}"]),
        n("Add", [f"series_log_{u}", f"term_max_{u}"], [f"f_log_{u}"]),
        n("Log", [f"big_{u}"], [f"big_log_{u}"]),
        n("Mul", ["top", f"big_log_{u}"], [f"power_{u}"]),
        n("Sub", [f"f_log_{u}", f"power_{u}"], [f"lead_{u}"]),
    ]


def pareto_terms(pn: ParetoNbd, max_orders: float) -> int:
    """Terms of the Pareto/NBD 2F1 for the worst row: the most repeat purchases and the largest z (u = 0).

    Terms grow with x and z, so that row bounds every other; past the largest term the ratios fall towards
    z < 1, and the series stops once a term is below ``TAIL`` of the largest with a ratio under (1 + z) / 2."""
    big, small = max(pn.alpha, pn.beta), min(pn.alpha, pn.beta)
    x = max(max_orders - 1.0, 0.0)
    top, z = pn.r + pn.s + x, (big - small) / big
    second = pn.s + 1 if pn.alpha >= pn.beta else pn.r + x
    k = np.arange(MAX_PARETO_TERMS, dtype=np.float64)
    ratio = (top + k) * (second + k) / ((top + 1 + k) * (1 + k)) * z
    with np.errstate(divide="ignore"):
        log_terms = np.concatenate([[0.0], np.cumsum(np.log(ratio))[:-1]])
    small_enough = (log_terms < np.max(log_terms) + np.log(TAIL)) & (ratio < (1 + z) / 2)
    past_peak = k > np.argmax(log_terms)
    done = np.flatnonzero(small_enough & past_peak)
    if done.size == 0:
        raise ValueError(f"the Pareto/NBD series needs more than {MAX_PARETO_TERMS} terms for {pn} and x = {x:g}")
    return int(done[0]) + 1


def _pn_nodes(pn: ParetoNbd) -> tuple[list[onnx.NodeProto], dict[str, Any]]:
    r, alpha, s, beta = pn.r, pn.alpha, pn.s, pn.beta
    wide_alpha = alpha >= beta
    consts: dict[str, Any] = {
        "r": r, "alpha": alpha, "s": s, "beta": beta, "rs": r + s, "s_minus_1": s - 1, "log_s": float(np.log(s)),
        "big": max(alpha, beta), "big_small": abs(alpha - beta), "s_plus_1": s + 1,
    }  # fmt: skip
    n = helper.make_node
    second = "s_plus_1" if wide_alpha else "r_x"
    nodes = [
        n("Add", ["r", "x"], ["r_x"]),
        n("Add", ["rs", "x"], ["top"]),
        # ratio_k / z = (top + k)(second + k) / ((top + 1 + k)(1 + k)), k = 0 .. SERIES_TERMS - 1
        n("Add", ["terms", "top"], ["f1"]),
        n("Add", ["terms", second], ["f2"]),
        n("Add", ["f1", "one"], ["f3"]),
        n("Add", ["terms", "one"], ["f4"]),
        n("Mul", ["f1", "f2"], ["num"]),
        n("Mul", ["f3", "f4"], ["den"]),
        n("Div", ["num", "den"], ["ratio_0"]),
        *_pn_lead("t_x"),
        *_pn_lead("T"),
        # A0 = lead(t_x) - lead(T) > 0: log A0 = lead(t_x) + log(1 - exp(lead(T) - lead(t_x)))
        n("Sub", ["lead_T", "lead_t_x"], ["lead_gap"]),
        n("Exp", ["lead_gap"], ["lead_ratio"]),
        n("Sub", ["one", "lead_ratio"], ["lead_rest"]),
        n("Log", ["lead_rest"], ["lead_rest_log"]),
        n("Add", ["lead_t_x", "lead_rest_log"], ["gap"]),
        n("Log", ["top"], ["top_log"]),
        n("Sub", ["log_s", "top_log"], ["drop_head"]),
        n("Add", ["drop_head", "gap"], ["dropped"]),
        # alive = -(r + x) log(alpha + T) - s log(beta + T)
        n("Add", ["alpha", "T"], ["alpha_T"]),
        n("Add", ["beta", "T"], ["beta_T"]),
        n("Log", ["alpha_T"], ["alpha_T_log"]),
        n("Log", ["beta_T"], ["beta_T_log"]),
        n("Mul", ["r_x", "alpha_T_log"], ["alive_a"]),
        n("Mul", ["s", "beta_T_log"], ["alive_b"]),
        n("Add", ["alive_a", "alive_b"], ["alive_neg"]),
        # P(alive) = 1 / (1 + exp(dropped - alive)) = 1 / (1 + exp(dropped + alive_neg))
        n("Add", ["dropped", "alive_neg"], ["odds_log"]),
        n("Exp", ["odds_log"], ["odds"]),
        n("Add", ["one", "odds"], ["odds_1"]),
        n("Div", ["one", "odds_1"], ["p_alive"]),
        # purchases = P(alive) (r + x)(beta + T) / ((alpha + T)(s - 1)) (1 - ((beta + T) / (beta + T + t))^(s - 1))
        n("Mul", ["r_x", "beta_T"], ["rate_num"]),
        n("Mul", ["alpha_T", "s_minus_1"], ["rate_den"]),
        n("Div", ["rate_num", "rate_den"], ["rate"]),
        n("Add", ["beta_T", "t"], ["beta_T_t"]),
        n("Div", ["beta_T", "beta_T_t"], ["rest_base"]),
        n("Pow", ["rest_base", "s_minus_1"], ["rest_pow"]),
        n("Sub", ["one", "rest_pow"], ["rest"]),
        n("Mul", ["rate", "rest"], ["alive_purchases"]),
        n("Mul", ["alive_purchases", "p_alive"], ["purchases_64"]),
    ]
    return nodes, consts


def _tail() -> list[onnx.NodeProto]:
    """value = purchases x the Gamma-Gamma spend per order (gamma + m n) p / (p n + q - 1) x the spend factor."""
    n = helper.make_node
    return [
        n("Mul", ["aov", "orders"], ["m_n"]),
        n("Add", ["gamma", "m_n"], ["gg_num_0"]),
        n("Mul", ["gg_num_0", "p"], ["gg_num"]),
        n("Mul", ["p", "orders"], ["p_n"]),
        n("Add", ["p_n", "q_minus_1"], ["gg_den"]),
        n("Div", ["gg_num", "gg_den"], ["per_order"]),
        n("Mul", ["purchases_64", "per_order"], ["value_raw"]),
        n("Mul", ["value_raw", "spend_factor"], ["value_64"]),
        n("Cast", ["purchases_64"], ["purchases"], to=TensorProto.FLOAT),
        n("Cast", ["value_64"], ["value"], to=TensorProto.FLOAT),
    ]


def _nodes(
    weeks: float, counts: BgNbd | ParetoNbd, gg: GammaGamma, spend_factor: float, max_orders: float
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    body, own = _bg_nodes(counts) if isinstance(counts, BgNbd) else _pn_nodes(counts)
    terms = SERIES_TERMS if isinstance(counts, BgNbd) else pareto_terms(counts, max_orders)
    consts: dict[str, Any] = {
        "zero": 0.0, "one": 1.0, "two": 2.0, "week": DAYS_PER_WEEK, "t": weeks, **own,
        "p": gg.p, "q_minus_1": gg.q - 1, "gamma": gg.gamma, "spend_factor": spend_factor,
        "terms": np.arange(terms, dtype=np.float64).reshape(1, -1),
    }  # fmt: skip
    init = [_const(k, v) for k, v in consts.items()]
    init.append(numpy_helper.from_array(np.ones(N_FEATURES, dtype=np.int64), "split"))
    init.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    return [*_head(), *body, *_tail()], init


def to_onnx(
    name: str,
    horizon_days: int,
    counts: BgNbd | ParetoNbd,
    gg: GammaGamma,
    spend_factor: float = 1.0,
    *,
    max_orders: float,
) -> bytes:
    """The graph for a horizon in days and rows with at most ``max_orders`` orders (the card's clip);
    deterministic bytes for given parameters."""
    nodes, init = _nodes(horizon_days / DAYS_PER_WEEK, counts, gg, spend_factor, max_orders)
    features = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, N_FEATURES])
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None, 1]) for o in OUTPUTS]
    graph = helper.make_graph(nodes, f"tailor_{name}", [features], outputs, initializer=init)
    opsets = [helper.make_opsetid("", TARGET_OPSET[""])]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="tailor", producer_version="1")
    model.ir_version = 8
    family = "BG/NBD" if isinstance(counts, BgNbd) else "Pareto/NBD"
    model.doc_string = f"Tailor segment model '{name}' (tailor train): {family} x Gamma-Gamma, {horizon_days} days"
    data: bytes = model.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data
