"""BG/NBD or Pareto/NBD x Gamma-Gamma as a standard ONNX graph: expected purchases and spend in the next ``t``.

The graph takes the card's four features, float32 ``[N, 4]``: recency_days, orders, tenure_days and
spend per order (raw, no transform), and computes in float64, in days (the models' time scales alpha and
beta are converted from weeks once, at export; every formula below is unchanged by a common time unit):

* **Head.** One ``Gemm`` and one ``Max`` give every per-customer column the models need, each a clipped
  linear function of the features: repeat purchases x = max(orders - 1, 0) (or r + x and r + s + x
  directly), t_x = max(tenure - recency, 0) (first to last purchase), recency, spend per order, orders, and
  the Gamma-Gamma denominator. T = recency + t_x = max(tenure, recency): a missing first_purchase_at
  (tenure 0) reads as the last's.
* ``purchases`` from BG/NBD: E = (a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)] * P(alive),
  with z = t / (alpha + T + t). That is the paper's form after Euler's transformation
  2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z): the factor ((alpha+T)/(alpha+T+t))^(r+x)
  cancels, nothing overflows for large x, and the series' terms shrink with x instead of growing.
  The series is summed over ``SERIES_TERMS`` terms as exp(cumulative sum of log |ratio|) with the
  sign from the count of negative ratios (ONNX has no cumulative product);
* or ``purchases`` from Pareto/NBD: P(alive) (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)],
  with P(alive) = 1 / (1 + odds) and odds = exp(dropped - alive) from the two terms of the likelihood
  (``reference.pnbd_loglik``). Written out, odds = G(t_x) ((big+T)/(big+t_x))^(r+s+x) - G(T), times
  ((beta+T)/(alpha+T))^s (or ((alpha+T)/(beta+T))^(r+x) when alpha < beta), where
  G(u) = s sum_k c_k z_u^k / (r+s+x+k), z_u = |alpha - beta| / (big + u), big = max(alpha, beta) and
  c_k = (s+1)_k / k! (or (r+x)_k / k!): the 2F1 of the likelihood with its (r+s+x)_k / (r+s+x+1)_k
  telescoped. Every term is exp(a linear function of logs), so the graph takes one ``Log`` of all the
  per-customer quantities (the ``Gemm`` after the head: big + t_x, big + T, small + T, beta + T + t, r + x
  and r+s+x+k for each k), one more ``Gemm`` for every exponent (the series of both ends, the constant 1 of
  1 + odds and the two powers of the rate) and one ``Exp``; a ``MatMul`` with +-1 weights sums the series
  and takes the difference of the two ends. The series has as many terms as the worst customer the clips
  allow needs (``pareto_terms``: the largest x and z; on CDNOW's fit 24), and a fit whose largest
  exponent could overflow is refused (``pareto_terms`` again) rather than served;
* ``value``: purchases times the Gamma-Gamma expected spend per order, (gamma + m n) p / (p n + q - 1), times a
  constant spend factor (1 unless training corrects the order value, see ``service.training.backtest``),
  the factor folded into the denominator, and times max(orders, 1)^g when a correction shapes it by orders.

Only ai.onnx operators (opset 17): onnxruntime runs it like any other segment model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.special import gammaln

from service.training.export import INPUT_NAME, TARGET_OPSET
from service.training.reference import DAYS_PER_WEEK, BgNbd, GammaGamma, ParetoNbd

SERIES_TERMS = 512  # z <= t/(alpha+t) < 0.9 for any customer: the tail beyond 512 terms is below 1e-15
SERIES_TOLERANCE = 1e-15  # of the largest term: what the BG/NBD series may leave beyond SERIES_TERMS
MAX_PARETO_TERMS = 1 << 14
TAIL = 1e-18  # the Pareto/NBD series stops where a term is below TAIL times the largest and still falling
MAX_EXPONENT = 600.0  # exp(600) ~ 1e260: a sum of the series' terms stays far from float64's overflow
N_FEATURES = 4
OUTPUTS = ("purchases", "value")
LOWEST = float(np.finfo(np.float64).min)  # the Max of the head leaves such a column as it is
FloatArray = npt.NDArray[np.float64]

# The head's input columns: recency_days, orders, tenure_days, spend_per_order.
RECENCY, ORDERS, TENURE, AOV = range(N_FEATURES)


def _const(name: str, value: float | np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float64), name)


class _Linear:
    """The columns of a ``Gemm``, built one at a time: coefficients on the input's columns, a bias, a lower bound
    (the head's ``Max``). The input's width is only known once every column exists: ``matrix`` takes it."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.terms: list[dict[int, float]] = []
        self.bias: list[float] = []
        self.lower: list[float] = []

    def add(self, name: str, terms: dict[int, float], bias: float = 0.0, lower: float = LOWEST) -> int:
        self.names.append(name)
        self.terms.append(terms)
        self.bias.append(bias)
        self.lower.append(lower)
        return len(self.names) - 1

    def matrix(self, n_in: int) -> FloatArray:
        w = np.zeros((n_in, len(self.names)))
        for column, terms in enumerate(self.terms):
            for row, coefficient in terms.items():
                w[row, column] = coefficient
        return w

    def initializers(self, prefix: str, n_in: int) -> list[onnx.TensorProto]:
        return [_const(f"{prefix}_w", self.matrix(n_in)), _const(f"{prefix}_b", np.array(self.bias))]


def _head(cols: _Linear) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Cast, the clipped linear columns ``cols``, and each column as its own ``[N, 1]`` tensor."""
    n = helper.make_node
    nodes = [
        n("Cast", [INPUT_NAME], ["X"], to=TensorProto.DOUBLE),
        n("Gemm", ["X", "head_w", "head_b"], ["head_raw"]),
        n("Max", ["head_raw", "head_lo"], ["head"]),
        n("Split", ["head", "head_split"], cols.names, axis=1),
    ]
    init = [
        *cols.initializers("head", N_FEATURES),
        _const("head_lo", np.array(cols.lower)),
        numpy_helper.from_array(np.ones(len(cols.names), np.int64), "head_split"),
    ]
    return nodes, init


def _gg_columns(cols: _Linear, gg: GammaGamma, spend_factor: float, orders_power: float) -> None:
    """The Gamma-Gamma denominator (p n + q - 1) / (p f): spend per order x f = (gamma + m n) / den; and
    max(orders, 1) when a shape max(orders, 1)^g multiplies the value."""
    scale = 1.0 / (gg.p * spend_factor)
    cols.add("aov", {AOV: 1.0})
    cols.add("orders", {ORDERS: 1.0})
    cols.add("gg_den", {ORDERS: gg.p * scale}, (gg.q - 1) * scale)
    if orders_power:
        cols.add("orders_1", {ORDERS: 1.0}, 0.0, 1.0)


def _tail(gg: GammaGamma, orders_power: float) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    n = helper.make_node
    shaped = [
        n("Pow", ["orders_1", "orders_power"], ["by_orders"]),
        n("Mul", ["per_order_f", "by_orders"], ["per_order"]),
    ]
    nodes = [
        n("Mul", ["aov", "orders"], ["m_n"]),
        n("Add", ["m_n", "gamma"], ["gg_num"]),
        n("Div", ["gg_num", "gg_den"], ["per_order_f" if orders_power else "per_order"]),
        *(shaped if orders_power else []),
        n("Mul", ["purchases_64", "per_order"], ["value_64"]),
        n("Cast", ["purchases_64"], ["purchases"], to=TensorProto.FLOAT),
        n("Cast", ["value_64"], ["value"], to=TensorProto.FLOAT),
    ]
    return nodes, [_const("gamma", gg.gamma), *([_const("orders_power", orders_power)] if orders_power else [])]


# --- BG/NBD -------------------------------------------------------------------------------------


def _bg_graph(bg: BgNbd, t: float, cols: _Linear) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    r, alpha, a, b = bg.r, bg.alpha * DAYS_PER_WEEK, bg.a, bg.b
    cols.add("x", {ORDERS: 1.0}, -1.0, 0.0)
    cols.add("t_x", {TENURE: 1.0, RECENCY: -1.0}, 0.0, 0.0)
    cols.add("recency", {RECENCY: 1.0})
    consts: dict[str, Any] = {
        "zero": 0.0, "one": 1.0, "two": 2.0, "t": t, "r": r, "alpha": alpha, "a": a, "a_minus_1": a - 1,
        "b_minus_1": b - 1, "ab_minus_1": a + b - 1, "top": a + b - 1 - r,
        "terms": np.arange(SERIES_TERMS, dtype=np.float64).reshape(1, -1),
    }  # fmt: skip
    n = helper.make_node
    nodes = [
        n("Add", ["recency", "t_x"], ["T"]),
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
        # purchases = C / (a - 1) (1 - (1 - z)^(a - 1) series) / (1 + odds)
        n("Sub", ["one", "z"], ["one_z"]),
        n("Pow", ["one_z", "a_minus_1"], ["one_z_pow"]),
        n("Mul", ["one_z_pow", "series"], ["tail"]),
        n("Sub", ["one", "tail"], ["bracket"]),
        n("Div", ["C", "a_minus_1"], ["head_purchases"]),
        n("Mul", ["head_purchases", "bracket"], ["alive_purchases"]),
        n("Div", ["alive_purchases", "odds_1"], ["purchases_64"]),
    ]
    init = [_const(k, v) for k, v in consts.items()]
    init.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    return nodes, init


def bgnbd_exact(bg: BgNbd, horizon_days: float) -> None:
    """Refuse (ValueError) a BG/NBD fit whose series the graph cannot sum in ``SERIES_TERMS`` terms.

    The ratios fall with x and grow with z, so the worst row has x = 0 and T = 0 (z = t / (alpha + t)). A
    degenerate fit on a tiny shop (a = 10,153, b = 58,649 on 17 customers) has ratios near (a - 1) z / k: its
    terms peak near k = (a - 1) z / (1 - z), some 70,000, exp() overflows, and the graph forecast nan for every row."""
    t, alpha = float(horizon_days), bg.alpha * DAYS_PER_WEEK
    z = t / (alpha + t)
    k = np.arange(SERIES_TERMS, dtype=np.float64)
    ratio = np.abs((bg.a + bg.b - 1 - bg.r + k) * (bg.a - 1 + k) / ((bg.a + bg.b - 1 + k) * (1 + k)) * z)
    with np.errstate(divide="ignore"):
        log_terms = np.concatenate([[0.0], np.cumsum(np.log(ratio))[:-1]])
    peak = float(np.max(log_terms))
    # past the last term the ratios fall towards z, so the tail is below last / (1 - ratio[-1])
    tail = log_terms[-1] - np.log1p(-ratio[-1]) if ratio[-1] < 1 else np.inf
    if peak > MAX_EXPONENT or tail > peak + np.log(SERIES_TOLERANCE):
        raise ValueError(f"the BG/NBD series does not converge in {SERIES_TERMS} terms for {bg} and t = {t:g} days")


# --- Pareto/NBD ---------------------------------------------------------------------------------


def pareto_terms(pn: ParetoNbd, max_orders: float, max_days: float | None = None) -> int:
    """Terms of the Pareto/NBD 2F1 for the worst row: the most repeat purchases and the largest z (u = 0).

    Terms grow with x and z, so that row bounds every other; past the largest term the ratios fall towards
    z < 1, and the series stops once a term is below ``TAIL`` of the largest with a ratio under (1 + z) / 2.
    With ``max_days`` (the longest tenure the clips allow), a fit whose largest exponent in the graph (the
    worst row's at t_x = 0, T = ``max_days``) passes ``MAX_EXPONENT`` is refused too."""
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
    terms = int(done[0]) + 1
    if max_days is not None:
        # the largest exponent: log s + the largest series term + (r+s+x) log((big+T)/big), with T in weeks
        widest = float(np.log(pn.s) + np.max(log_terms[:terms]) + top * np.log1p(max_days / DAYS_PER_WEEK / big))
        if widest > MAX_EXPONENT:
            raise ValueError(f"the Pareto/NBD graph would overflow for {pn}, x = {x:g} and T = {max_days:g} days")
    return terms


def _pn_graph(
    pn: ParetoNbd, t: float, terms: int, cols: _Linear
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    r, s = pn.r, pn.s
    alpha, beta = pn.alpha * DAYS_PER_WEEK, pn.beta * DAYS_PER_WEEK
    wide = alpha >= beta  # the 2F1 of the likelihood is 2F1(r+s+x, s+1; ...) (else 2F1(r+s+x, r+x; ...))
    big, small = max(alpha, beta), min(alpha, beta)
    k_range = np.arange(terms, dtype=np.float64)
    r_x = cols.add("r_x", {ORDERS: 1.0}, r - 1, r)
    top = cols.add("top", {ORDERS: 1.0}, r + s - 1, r + s)
    t_x = cols.add("t_x", {TENURE: 1.0, RECENCY: -1.0}, 0.0, 0.0)
    recency = cols.add("recency", {RECENCY: 1.0})
    # What the exponents take the logs of, linear in the head. First r+s+x+k for both ends' series and 1 for
    # the three other exponents (log 1 = 0): the "diagonal" each exponent subtracts; then (narrow) r+x+j
    # for (r+x)_k; then the few quantities every exponent weighs, and e (log e = 1: the constants).
    logs = _Linear()
    for u in range(2):
        for k in range(terms):
            logs.add(f"top_{u}_{k}", {top: 1.0}, float(k))
    for name in ("one", "rate", "rate_rest"):
        logs.add(name, {}, 1.0)
    diagonal = len(logs.names)
    for j in range(0 if wide else terms):
        logs.add(f"r_x_{j}", {r_x: 1.0}, float(j))
    rising = len(logs.names) - diagonal
    few = {
        name: logs.add(name, w, b) - diagonal - rising
        for name, w, b in (
            ("big_tx", {t_x: 1.0}, big),
            ("big_T", {t_x: 1.0, recency: 1.0}, big),
            ("small_T", {t_x: 1.0, recency: 1.0}, small),
            ("beta_T_t", {t_x: 1.0, recency: 1.0}, beta + t),
            ("r_x", {r_x: 1.0}, 0.0),
            ("e", {}, float(np.e)),
        )
    }
    width = len(few)
    alpha_t, beta_t = (few["big_T"], few["small_T"]) if wide else (few["small_T"], few["big_T"])
    # The exponents: linear in [log few, (r+s+x) log few, (narrow) (r+x) log few], minus the diagonal
    plain, by_top, by_r_x = 0, width, 2 * width
    c_k = gammaln(s + 1 + k_range) - gammaln(s + 1) if wide else np.zeros(terms)
    # alpha = beta: z = 0 and only the first term is left (log 0 would make 0 x -inf = nan of it)
    c_k = c_k - gammaln(k_range + 1) + np.log(s) + k_range * np.log(max(big - small, 1e-300))
    exps = _Linear()
    for u, end in enumerate((few["big_tx"], few["big_T"])):
        for k in range(terms):
            w = {plain + few["e"]: float(c_k[k])}
            w[plain + end] = -float(k)  # z_u^k = (|alpha - beta| / (big + u))^k
            if u == 0:  # ((big + T) / (big + t_x))^(r + s + x)
                w[by_top + few["big_T"]] = 1.0
                w[by_top + few["big_tx"]] = -1.0
            if wide:  # ((beta + T) / (alpha + T))^s
                w[plain + few["small_T"]] = w.get(plain + few["small_T"], 0.0) + s
                w[plain + few["big_T"]] = w.get(plain + few["big_T"], 0.0) - s
            else:  # ((alpha + T) / (beta + T))^(r + x)
                w[by_r_x + few["small_T"]] = 1.0
                w[by_r_x + few["big_T"]] = -1.0
            exps.add(f"e{u}_{k}", w)
    exps.add("one", {})  # exp(0): the 1 of 1 + odds
    # rate x rest = (r + x) (beta + T) / (alpha + T) (1 - ((beta + T) / (beta + T + t))^(s - 1)) / (s - 1)
    rate = {plain + few["r_x"]: 1.0, plain + beta_t: 1.0, plain + alpha_t: -1.0}
    exps.add("rate", rate)
    exps.add("rate_rest", {**rate, plain + beta_t: float(s), plain + few["beta_T_t"]: 1.0 - s})
    out = np.zeros((len(exps.names), 2))
    out[:terms, 0], out[terms : 2 * terms, 0], out[2 * terms, 0] = 1.0, -1.0, 1.0
    out[2 * terms + 1, 1], out[2 * terms + 2, 1] = 1.0 / (s - 1), -1.0 / (s - 1)
    n = helper.make_node
    pieces = ["diagonal", *([] if wide else ["rising"]), "log_few"]
    nodes = [
        n("Gemm", ["head", "logs_w", "logs_b"], ["logs_in"]),
        n("Log", ["logs_in"], ["log_p"]),
        n("Split", ["log_p", "log_p_split"], pieces, axis=1),
        n("Mul", ["log_few", "top"], ["top_log_few"]),
        *([] if wide else [n("Mul", ["log_few", "r_x"], ["r_x_log_few"])]),
        n("Concat", ["log_few", "top_log_few", *([] if wide else ["r_x_log_few"])], ["log_all"], axis=1),
        *([] if wide else _rising_nodes()),
        n("Gemm", ["log_all", "exps_w", "diagonal" if wide else "diagonal_rising"], ["exponents"], beta=-1.0),
        n("Exp", ["exponents"], ["powers"]),
        # [1 + odds, rate x rest]: the series of both ends summed, the later one taken from the earlier
        n("MatMul", ["powers", "out_w"], ["sums"]),
        n("Split", ["sums", "two_ones"], ["odds_1", "rate_rest"], axis=1),
        n("Div", ["rate_rest", "odds_1"], ["purchases_64"]),
    ]
    split = [diagonal, *([] if wide else [rising]), width]
    init = [
        *logs.initializers("logs", len(cols.names)),
        _const("exps_w", exps.matrix((2 if wide else 3) * width)),
        _const("out_w", out),
        numpy_helper.from_array(np.array(split, dtype=np.int64), "log_p_split"),
        numpy_helper.from_array(np.ones(2, dtype=np.int64), "two_ones"),
        *([] if wide else _rising_init()),
    ]
    return nodes, init


def _rising_init() -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(np.array(1, dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([0, 0, 0, 3], dtype=np.int64), "three_after"),
    ]


def _rising_nodes() -> list[onnx.NodeProto]:
    """alpha < beta: log (r+x)_k = sum_{j<k} log(r+x+j), taken from the diagonal of both ends' series."""
    n = helper.make_node
    return [
        n("CumSum", ["rising", "axis1"], ["rising_sum"], exclusive=1),
        n("Concat", ["rising_sum", "rising_sum"], ["rising_both"], axis=1),
        n("Pad", ["rising_both", "three_after"], ["rising_all"]),
        n("Sub", ["diagonal", "rising_all"], ["diagonal_rising"]),
    ]


def _nodes(  # noqa: PLR0917 - the graph's parameters
    days: float,
    counts: BgNbd | ParetoNbd,
    gg: GammaGamma,
    spend_factor: float,
    orders_power: float,
    max_orders: float,
    max_days: float,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    cols = _Linear()  # the head: clipped linear functions of the features, Gamma-Gamma's first
    _gg_columns(cols, gg, spend_factor, orders_power)
    if isinstance(counts, BgNbd):
        body, own = _bg_graph(counts, days, cols)
    else:
        body, own = _pn_graph(counts, days, pareto_terms(counts, max_orders, max_days), cols)
    head, head_init = _head(cols)
    tail, tail_init = _tail(gg, orders_power)
    return [*head, *body, *tail], [*head_init, *own, *tail_init]


def to_onnx(
    name: str,
    horizon_days: int,
    counts: BgNbd | ParetoNbd,
    gg: GammaGamma,
    spend_factor: float = 1.0,
    *,
    orders_power: float = 0.0,
    max_orders: float,
    max_days: float,
) -> bytes:
    """The graph for a horizon in days and rows with at most ``max_orders`` orders and ``max_days`` of tenure
    (the card's clips), the value times ``spend_factor`` x max(orders, 1)^``orders_power``; deterministic bytes
    for given parameters."""
    nodes, init = _nodes(float(horizon_days), counts, gg, spend_factor, orders_power, max_orders, max_days)
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
