"""The training report: ``REPORT.md`` with its figures (PNG, matplotlib's Agg backend).

Figures have fixed sizes and 100 dpi; the PNGs carry no software version or date, so a
retraining on the same data rewrites the same bytes.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from service.core.models import FeatureSpec
from service.training import evaluate
from service.training.backtest import backtest_days
from service.training.fit import K_RULE, NAME_RULE
from service.training.train import HIGH_VALUE, LIKELY_CHURN_RULE, REPEAT_PURCHASES, TrainingRun
from service.training.transactions import Population

DPI = 100
FIGURES = {
    "k": "k_selection.png",
    "clusters": "clusters.png",
    "segments": "segments.png",
    "calibration": "churn_calibration.png",
    "roc": "churn_roc.png",
    "value": "value.png",
}
_MODEL_COLOURS = {"rfm": "#4c72b0", "churn": "#dd8452", "value": "#55a868", "purchases": "#8172b3"}


def write_report(run: TrainingRun, out: Path, command: str = "tailor train") -> list[Path]:
    """Write the figures and ``REPORT.md`` into ``out``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"font.size": 9, "axes.titlesize": 10, "figure.dpi": DPI}):
        paths = [
            _save(_k_figure(run), out / FIGURES["k"]),
            _save(_cluster_figure(run), out / FIGURES["clusters"]),
            _save(_segment_figure(run), out / FIGURES["segments"]),
            _save(_calibration_figure(run), out / FIGURES["calibration"]),
            _save(_roc_figure(run), out / FIGURES["roc"]),
            _save(_value_figure(run), out / FIGURES["value"]),
        ]
    report = out / "REPORT.md"
    report.write_text(markdown(run, command), encoding="utf-8")
    return [*paths, report]


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)
    return path


def _k_figure(run: TrainingRun) -> Any:
    choice = run.rfm.choice
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    left.plot(choice.ks, choice.inertia, "o-", color="#4c72b0")
    left.axvline(choice.elbow, color="grey", linestyle=":", label=f"elbow k={choice.elbow}")
    left.set(title="Elbow: k-means inertia (scaled features)", xlabel="k", ylabel="inertia")
    left.legend(loc="upper right")
    right.plot(choice.ks, choice.silhouette, "o-", color="#dd8452")
    right.axvline(run.rfm.k, color="black", linestyle="--", label=f"chosen k={run.rfm.k}")
    right.set(title=f"Silhouette (sample of {choice.sample})", xlabel="k", ylabel="silhouette")
    right.legend(loc="upper right")
    return fig


def _cluster_figure(run: TrainingRun) -> Any:
    profiles = sorted(run.rfm.profiles, key=lambda p: p.recency_days)
    sizes = run.models["rfm"].card.segments
    names = [f"{run.rfm.names[p.label]} ({sizes[run.rfm.names[p.label]]})" for p in profiles]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), layout="constrained", sharey=True)
    panels = [
        ("recency (days since last order)", [p.recency_days for p in profiles], "{:.0f}"),
        ("frequency (orders)", [p.orders for p in profiles], "{:.1f}"),
        ("monetary (dollars spent)", [p.spend for p in profiles], "{:.0f}"),
    ]
    y = np.arange(len(names))
    for ax, (title, values, fmt) in zip(axes, panels, strict=True):
        bars = ax.barh(y, values, color="#4c72b0")
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=2)
        ax.set_title(title)
        ax.set_xlim(0, max(values) * 1.25 if max(values) > 0 else 1)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.suptitle("Cluster centroids in original units (customers per cluster in the population)")
    return fig


def _segments(run: TrainingRun) -> list[tuple[str, str, int]]:
    return [(m.name, name, count) for m in run.models.values() for name, count in m.card.segments.items()]


def _segment_figure(run: TrainingRun) -> Any:
    rows = _segments(run)
    population = run.population.size
    fig, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
    y = np.arange(len(rows))
    bars = ax.barh(y, [c for _, _, c in rows], color=[_MODEL_COLOURS[m] for m, _, _ in rows])
    ax.bar_label(bars, labels=[f"{c} ({c / population:.1%})" for _, _, c in rows], padding=2)
    ax.set_yticks(y, [f"{m}: {n}" for m, n, _ in rows])
    ax.invert_yaxis()
    limit = max(evaluate.MIN_SEGMENT, evaluate.MIN_SEGMENT_SHARE * population)
    ax.axvline(limit, color="red", linestyle=":", label=f"warning below {limit:.0f}")
    ax.set_xlim(0, max(c for _, _, c in rows) * 1.3)
    ax.set(title=f"Segment sizes ({population} customers with a purchase before the cutoff)", xlabel="customers")
    ax.legend(loc="lower right")
    return fig


def _calibration_figure(run: TrainingRun) -> Any:
    churn = run.churn
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.2, 5.6), layout="constrained", sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for label, p, style in (("model", churn.p, "o-"), ("Pareto/NBD", churn.p_baseline, "s--")):
        if not evaluate.scored(p):  # a degenerate reference fit: no curve (train() warns)
            continue
        table = evaluate.reliability(churn.y, p)
        top.plot([b.predicted for b in table], [b.observed for b in table], style, label=label)
    top.set(title="Churn reliability (held-out customers)", ylabel="observed churn rate", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left")
    bottom.hist(churn.p, bins=20, range=(0, 1), color="#4c72b0")
    bottom.set(xlabel="predicted churn probability", ylabel="customers")
    return fig


def _roc_figure(run: TrainingRun) -> Any:
    churn = run.churn
    fig, ax = plt.subplots(figsize=(4.6, 4.4), layout="constrained")
    for label, p, auc in (
        ("model", churn.p, churn.metrics["roc_auc"]),
        ("Pareto/NBD", churn.p_baseline, churn.baseline_metrics["roc_auc"]),
    ):
        if len(set(churn.y.tolist())) > 1 and evaluate.scored(p):  # roc_curve refuses nan scores
            fpr, tpr, _ = roc_curve(churn.y, p)
            ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(title="Churn ROC (held-out customers)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    return fig


def _value_figure(run: TrainingRun) -> Any:
    value = run.value
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    left.scatter(value.predicted, value.actual, s=4, alpha=0.25, color="#55a868", edgecolors="none")
    top = float(max(value.actual.max(), value.predicted.max(), 1.0))
    left.plot([0, top], [0, top], color="grey", linestyle=":")
    left.set_xscale("symlog", linthresh=10)
    left.set_yscale("symlog", linthresh=10)
    left.set(title="Spend in the outcome window (held-out)", xlabel="predicted (dollars)", ylabel="actual (dollars)")
    order = np.argsort(value.predicted, kind="stable")
    deciles = [d for d in np.array_split(order, 10) if d.size]  # under 10 held-out customers: no empty decile
    right.plot(range(1, len(deciles) + 1), [value.predicted[d].mean() for d in deciles], "o-", label="mean predicted")
    right.plot(range(1, len(deciles) + 1), [value.actual[d].mean() for d in deciles], "s--", label="mean actual")
    right.set(title="By decile of predicted spend", xlabel="decile (1 = lowest)", ylabel="dollars per customer")
    right.legend(loc="upper left")
    return fig


def _f(value: float | None, digits: int = 4) -> str:
    """A figure, or n/a for one that is undefined (nan, or None as a card stores it)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _feature_table(specs: list[FeatureSpec]) -> list[str]:
    lines = ["| # | feature | source | unit | missing | clip | transform |", "|---|---|---|---|---|---|---|"]
    for i, spec in enumerate(specs):
        source = next(f"{k}: {v}" for k, v in spec.source.model_dump().items() if v is not None)
        clip = f"[{spec.clip[0]:g}, {spec.clip[1]:g}]" if spec.clip else "none"
        lines.append(f"| {i} | {spec.name} | {source} | {spec.unit} | {spec.missing:g} | {clip} | {spec.transform} |")
    return lines


def _check_table(run: TrainingRun) -> list[str]:
    lines = [
        "| model | metric (validation) | R, F, M | + tenure_days | + avg_order_value | + interpurchase_days | kept |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for name, check in (("churn", run.churn.check), ("value", run.value.check)):
        extras = [
            _f(check.extras.get(n, float("nan"))) for n in ("tenure_days", "avg_order_value", "interpurchase_days")
        ]
        lines.append(
            f"| {name} | {check.metric} | {_f(check.base)} | {' | '.join(extras)} | {', '.join(check.kept) or 'none'} |"
        )
    return lines


def warnings_lines(run: TrainingRun) -> list[str]:
    return [f"WARNING: {w}" for w in run.warnings]


def markdown(run: TrainingRun, command: str) -> str:
    pop = run.population
    tx = run.tx
    choice = run.rfm.choice
    churn, value = run.churn, run.value
    rfm_card = run.models["rfm"].card
    churn_card: Any = run.models["churn"].card.metrics
    held = int(pop.held_out.sum())
    lines = [
        "# Segment models: training report",
        "",
        (
            f"Written by `{command}`; retrain to refresh. "
            f"Trained at {run.trained_at.isoformat().replace('+00:00', 'Z')}, seed {run.seed}."
        ),
        "",
        "## Data and split",
        "",
        (
            f"* Data: `{tx.source}` (sha256 `{tx.sha256}`), {tx.rows} transactions, {len(tx.customers)} customers, "
            f"{tx.first_day} .. {tx.last_day}."
        ),
        (
            f"* Cutoff **{pop.cutoff}** (00:00 UTC): features from the {pop.feature_days} days "
            f"{pop.first_day} .. the day before the cutoff ({pop.transactions_before} transactions); outcome window "
            f"{pop.cutoff} .. {_window_end(run)}: the horizon of {pop.outcome_days} days (a training setting, "
            "`--horizon`, whatever follows in the file). Never split by random rows."
        ),
        (
            "* An order is a distinct purchase day (several rows of one customer on one day are one order); "
            "spend sums every row. Churn = no purchase at all in the outcome window."
        ),
        (
            f"* Population: the {pop.size} customers with a purchase before the cutoff. Held out for evaluation: "
            f"{held} customers ({held / pop.size:.1%}), chosen by a hash of the customer id; the models are fitted "
            f"on the other {pop.size - held}. Extra features are checked on a validation share of those "
            f"({int(pop.validation.sum())} customers), never on the held-out ones."
        ),
        "* Features are computed by `service.core.models.features_for` from the card inputs, as serving does.",
        "",
    ]
    warnings = warnings_lines(run)
    lines += ["## Warnings", ""]
    lines += [f"* {w}" for w in warnings] if warnings else ["None: every segment has at least 100 customers and 1 %."]
    lines += ["", "## Summary", ""]
    lines += _evaluation_lines(run)
    lines += [
        "| model | output | headline | evaluation | baseline |",
        "|---|---|---|---|---|",
        (
            f"| rfm | label ({', '.join(run.rfm.names[i] for i in sorted(run.rfm.names))}) | k={run.rfm.k}, silhouette "
            f"{_f(choice.silhouette[choice.ks.index(run.rfm.k)], 3)} | no outcome used | silhouette alone would pick "
            f"k={choice.ks[int(np.argmax(choice.silhouette))]} |"
        ),
        (
            f"| churn | probability of no purchase in {pop.outcome_days} days "
            f"| ROC AUC {_f(churn.metrics['roc_auc'])}, Brier {_f(churn.metrics['brier'])} | {_churn_kind(run)} "
            f"| Pareto/NBD (out of time): AUC {_f(churn.baseline_metrics['roc_auc'])}, "
            f"Brier {_f(churn.baseline_metrics['brier'])} |"
        ),
        (
            f"| value | expected dollars in {pop.outcome_days} days | MAE {_f(value.metrics['mae'], 2)}, "
            f"RMSE {_f(value.metrics['rmse'], 2)} ({value.choice.chosen}) | out of time "
            f"| BG/NBD x GG: MAE {_f(value.baseline_metrics['bg_nbd']['mae'], 2)}, "
            f"RMSE {_f(value.baseline_metrics['bg_nbd']['rmse'], 2)} |"
        ),
        (
            f"| purchases | expected orders in {pop.outcome_days} days "
            f"| MAE {_f(_metric(run, 'purchases', 'mae'), 3)} "
            f"| out of time | same graph as value |"
        ),
        "",
        (
            "A visitor without any purchase attribute gets every feature's `missing` value and scores: "
            f"rfm **{run.models['rfm'].no_history}**, churn **{_f(float(run.models['churn'].no_history), 3)}**, "
            f"value **{_f(float(run.models['value'].no_history), 2)}** dollars. Rules that target buyers should also "
            "test `orders_total` (the models were trained on customers with at least one order)."
        ),
        "",
        *_reference_lines(run),
        "## RFM clusters",
        "",
        f"![k selection]({FIGURES['k']})",
        "",
        "| k | inertia | silhouette |",
        "|---|---|---|",
    ]
    for k, inertia, sil in zip(choice.ks, choice.inertia, choice.silhouette, strict=True):
        mark = " **chosen**" if k == run.rfm.k else (" elbow" if k == choice.elbow else "")
        lines.append(f"| {k}{mark} | {inertia:.1f} | {_f(sil)} |")
    lines += [
        "",
        f"**Chosen k = {run.rfm.k}** (elbow at k={choice.elbow}). Rule: {K_RULE}",
        "",
        f"![cluster profiles]({FIGURES['clusters']})",
        "",
        (
            "| label | name | recency (days) | orders | spend ($) | members (training) | mean recency | mean orders "
            "| mean spend | population | share |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    train_rows = pop.training
    recency = np.array([(pop.cutoff.toordinal() - _day(a["last_purchase_at"])) for a in pop.attributes], dtype=float)
    orders = pop.column("orders_total")
    spend = pop.column("spend_total")
    for p in sorted(run.rfm.profiles, key=lambda q: q.label):
        name = run.rfm.names[p.label]
        member = (run.rfm.labels == p.label) & train_rows
        size = rfm_card.segments[name]
        lines.append(
            f"| {p.label} | **{name}** | {p.recency_days:.0f} | {p.orders:.2f} | {p.spend:.0f} | {int(member.sum())} "
            f"| {_mean(recency[member]):.0f} | {_mean(orders[member]):.2f} | {_mean(spend[member]):.0f} "
            f"| {size} | {size / pop.size:.1%} |"
        )
    lines += [
        "",
        (
            "Centroids are the k-means centres in original units (scaler undone, `log1p` undone, so orders and spend "
            "are geometric-style means); the member columns are plain means of the raw attributes."
        ),
        "",
        f"Naming: {NAME_RULE}",
        "",
        *_persona_lines(run),
        *_clustering_lines(run),
        "## Segment sizes",
        "",
        f"![segment sizes]({FIGURES['segments']})",
        "",
        "| model | segment | customers | share | definition |",
        "|---|---|---|---|---|",
    ]
    definitions = {
        "likely_churn": f"churn probability >= {churn_card['thresholds']['likely_churn']}",
        "high_value": f"expected spend >= {HIGH_VALUE:g} $",
        "repeat_buyer": f"expected orders >= {REPEAT_PURCHASES:g}",
    }
    for owner, name, count in _segments(run):
        lines.append(
            f"| {owner} | {name} | {count} | {count / pop.size:.1%} | {definitions.get(name, 'k-means cluster')} |"
        )
    lines += [""]
    lines += [f"{w}" for w in warnings if "segment" in w] or [
        "No segment under 100 customers or 1 % of the population."
    ]
    lines += [
        "",
        "## Churn",
        "",
        *_churn_lines(run),
    ]
    flag = churn_card["likely_churn"]
    lines += [
        "",
        (
            f"**likely_churn** = churn probability >= **{churn_card['thresholds']['likely_churn']}**: flags "
            f"{flag['share_flagged']:.1%} of the population; among held-out customers, "
            f"{_f(flag['held_out_churn_rate_flagged'], 3)} of those flagged and "
            f"{_f(flag['held_out_churn_rate_not_flagged'], 3)} of the others bought nothing. Rule: {LIKELY_CHURN_RULE}"
        ),
        "",
        f"![churn reliability]({FIGURES['calibration']}) ![churn ROC]({FIGURES['roc']})",
        "",
        "Reliability (held-out, model):",
        "",
        "| predicted | customers | mean predicted | observed |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b.low:.1f}-{b.high:.1f} | {b.count} | {b.predicted:.3f} | {b.observed:.3f} |"
        for b in evaluate.reliability(churn.y, churn.p)
    ]
    lines += [
        "",
        "## Value",
        "",
        (
            f"Held-out customers: {held}; actual mean spend in the horizon {value.metrics['mean_actual']:.2f} $, "
            f"predicted mean {value.metrics['mean_predicted']:.2f} $."
        ),
        "",
        "| | evaluation | MAE ($) | RMSE ($) | Spearman | top 10 % share of spend | total / actual |",
        "|---|---|---|---|---|---|---|",
        _value_row(f"served: {_served_label(run)}", "out of time", value.metrics),
    ]
    base_names = {
        "bg_nbd": ("BG/NBD x Gamma-Gamma (the reference)", "out of time"),
        "pareto_nbd": ("Pareto/NBD x Gamma-Gamma", "out of time"),
        "glm_in_period": ("Poisson GLM on R, F, M (the previous model)", "in period"),
        "glm_backtest": (_learned_label(pop), "out of time"),
        "past_spend": (f"past spend x {pop.outcome_days}/{pop.feature_days}", "out of time"),
        "zero": ("nothing (0)", "-"),
    }
    for name, m in value.baseline_metrics.items():
        lines.append(_value_row(*base_names[name], m))
    rmse_ci = value.intervals["rmse_minus_bg_nbd_90ci"]
    mae_ci = value.intervals["mae_minus_bg_nbd_90ci"]
    lines += [
        "",
        (
            f"Spend is heavy-tailed: the 10 customers with the largest errors make "
            f"{value.metrics['top10_squared_error_share']:.0%} of the model's squared error, so RMSE moves with a few "
            f"customers. Bootstrap 90 % intervals (served minus BG/NBD x GG, {evaluate.BOOTSTRAP_ROUNDS} resamples): "
            f"RMSE [{rmse_ci[0]:.2f}, {rmse_ci[1]:.2f}], MAE [{mae_ci[0]:.2f}, {mae_ci[1]:.2f}]."
        ),
        "",
        *_choice_lines(run),
        f"![value predicted vs actual]({FIGURES['value']})",
        "",
        "## Features",
        "",
        (
            "Candidates beyond R, F, M must earn their place: each is added alone to R, F, M and kept if it improves "
            "the validation score (churn: ROC AUC up by >= 0.002; value: RMSE down by >= 1 %)."
        ),
        "",
        *_check_table(run),
        "",
    ]
    for model in run.models.values():
        lines += [f"`{model.name}` inputs (`models/{model.card.file}`, version `{model.card.model_version}`):", ""]
        lines += [*_feature_table(model.specs), ""]
    lines += [
        (
            "`W` = the feature window; no purchase history gives recency = W, frequency = spend = 0. Clips stop at the "
            "largest value among the training customers (for the raw `orders` and `spend_per_order` of value and "
            "purchases, among all customers before the cutoff); `log1p` is applied by `features_for` after the clip."
        ),
        "",
        "## Reproduce",
        "",
        (
            f"`{command}` (defaults: `--data data/cdnow/CDNOW_master.txt --out models --report docs/models "
            "--seed 0 --horizon 273`, cutoff = the last day + 1 - the horizon). Same data and seed give "
            "byte-identical ONNX files and cards that differ only in `trained_at`."
        ),
        "",
    ]
    return "\n".join(lines)


def _metric(run: TrainingRun, model: str, key: str) -> float:
    value: Any = run.models[model].card.metrics[key]
    return float(value)


def _learned_label(pop: Population) -> str:
    b = backtest_days(pop)
    return (
        f"the same GLM learned out of time: fitted at {pop.cutoff - timedelta(days=b)} on the spend of the {b} days "
        f"to the cutoff, x {pop.outcome_days}/{b}"
    )


def _window_end(run: TrainingRun) -> date:
    return run.population.cutoff + timedelta(days=run.population.outcome_days - 1)


def _evaluation_lines(run: TrainingRun) -> list[str]:
    pop = run.population
    backtest = run.churn.backtest
    churn = (
        f"The churn model is fitted on outcomes, so its headline is a backtest: the same pipeline fitted at "
        f"{backtest.fit_cutoff} on the outcomes of the {backtest.b} days up to the cutoff, served unchanged at the "
        f"cutoff and measured over the {backtest.b} days from it (b = min(horizon, feature window // 2); a backtest "
        f"of the full horizon would fit at {pop.cutoff - timedelta(days=pop.outcome_days)}, where these data have "
        "no customer yet). Its in-period figures are secondary."
        if backtest
        else "The churn figures are in period: the data are too short for a backtest."
    )
    return [
        (
            f"**Evaluation.** Out of time: a model fitted only on what was known before the cutoff {pop.cutoff}, "
            f"scored at the cutoff and measured over the {pop.outcome_days} days from it ({pop.cutoff} .. "
            f"{_window_end(run)}), on the held-out customers. The value and purchases models and the references are "
            f"evaluated so. {churn}"
        ),
        "",
    ]


def _churn_kind(run: TrainingRun) -> str:
    backtest = run.churn.backtest
    return f"out of time (backtest, {backtest.b} days)" if backtest else "in period"


def _churn_lines(run: TrainingRun) -> list[str]:
    churn = run.churn
    card: Any = run.models["churn"].card.metrics
    inner = card["in_period"]
    horizon = run.population.outcome_days
    lines = [
        (
            f"Held-out customers: {churn.y.size}, churn rate {_f(float(churn.y.mean()), 3)} in the headline window. "
            f"{card['evaluation'][0].upper()}{card['evaluation'][1:]}."
        ),
        "",
        "| | evaluation | ROC AUC | Brier | log loss | calibration error (ECE) |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    if churn.backtest:
        b, bg = churn.backtest.b, churn.backtest.reference_metrics["bg_nbd"]
        rows += [
            ("our model: scaler + logistic regression", f"backtest, {b} days", churn.metrics),
            (f"Pareto/NBD P(no purchase in {b} days) (baseline)", f"out of time, {b} days", churn.baseline_metrics),
            (f"BG/NBD P(no purchase in {b} days)", f"out of time, {b} days", bg),
        ]
    rows += [
        ("our model (served)", f"in period, {horizon} days", inner),
        (f"Pareto/NBD P(no purchase in {horizon} days)", f"out of time, {horizon} days", inner["baseline"]),
        (f"BG/NBD P(no purchase in {horizon} days)", f"out of time, {horizon} days", inner["references"]["bg_nbd"]),
        ("recency only (logistic)", f"in period, {horizon} days", inner["references"]["recency_only"]),
    ]
    for label, kind, m in rows:
        lines.append(
            f"| {label} | {kind} | {_f(m['roc_auc'])} | {_f(m['brier'])} | {_f(m['log_loss'])} "
            f"| {_f(m['calibration_error'])} |"
        )
    return lines


def _served_label(run: TrainingRun) -> str:
    choice: Any = run.models["value"].card.metrics["choice"]
    return str(choice["candidates"][choice["chosen"]]["model"])


def _learned_cell(c: dict[str, Any]) -> str:
    """The factor, and what else the candidate learned: g of max(orders, 1)^g, bucket factors, a blend's weight."""
    if "bg_nbd_weight" in c:
        return f"weight {c['bg_nbd_weight']:g}"
    if "bucket_factors" in c:
        return " / ".join(f"{f:.3f}" for f in c["bucket_factors"])
    if "gamma_gamma" in c:
        gg = c["gamma_gamma"]
        return f"p {gg['p']:.3g}, q {gg['q']:.3g}, gamma {gg['gamma']:.3g}"
    power = f", g {c['orders_power']:+.3f}" if "orders_power" in c else ""
    return f"{c['factor']:.4f}{power}"


def _beats_line(choice: dict[str, Any]) -> str:
    """Which candidates beat plain BG/NBD x Gamma-Gamma on both MAE and RMSE at the cutoff (measured, not chosen)."""
    plain = choice["candidates"]["bg_nbd"]["cutoff"]
    better = [
        c["model"]
        for c in choice["candidates"].values()
        if c["cutoff"]["mae"] < plain["mae"] and c["cutoff"]["rmse"] < plain["rmse"]
    ]
    where = ", ".join(better) if better else "none"
    return (
        "Bucket factors and blends are scored for the record only: the graph computes one count model and has no "
        "table of buckets. A blend's weight on BG/NBD is the one the rule picks on the tuning backtest (0, 0.1 .. 1: "
        "its tuning figures are the ones it was picked on), a shape max(orders, 1)^g is fitted with its c to the "
        "spend of the q days before the cutoff it serves (Poisson deviance), Gamma-Gamma's weighted refits use no "
        f"outcome. Beating BG/NBD x Gamma-Gamma on both MAE and RMSE at the cutoff: {where}."
    )


def _choice_lines(run: TrainingRun) -> list[str]:
    choice: Any = run.models["value"].card.metrics["choice"]
    q = choice["q_days"]
    pop = run.population
    if q is None:
        return ["The data are too short for the tuning backtest: BG/NBD x Gamma-Gamma is served.", ""]
    tuning_cut = pop.cutoff - timedelta(days=q)
    plain = choice["candidates"]["bg_nbd"]
    lines = [
        (
            f"**Choice of the served model.** {choice['rule'][0].upper()}{choice['rule'][1:]}. Here q = {q} days: the "
            f"tuning backtest fits at {tuning_cut} and measures over {tuning_cut} .. {pop.cutoff - timedelta(days=1)}; "
            f"a factor is learned from a fit q days before the cutoff it serves and the spend of the q days up to it "
            f"(at the cutoff: {tuning_cut} .. {pop.cutoff - timedelta(days=1)}; for the tuning backtest: the q days "
            f"before {tuning_cut})."
        ),
        "",
        (
            "| candidate | learned | tuning MAE | tuning RMSE | cutoff MAE | cutoff RMSE | cutoff Spearman "
            "| cutoff top 10 % | cutoff total / actual |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in choice["candidates"].items():
        t, h = c["tuning"], c["cutoff"]
        unserved = " (not served)" if name in choice["not_servable"] else ""
        mark = " **served**" if name == choice["chosen"] else unserved
        lines.append(
            f"| {c['model']}{mark} | {_learned_cell(c)} | {_f(t['mae'], 2)} | {_f(t['rmse'], 2)} | {_f(h['mae'], 2)} "
            f"| {_f(h['rmse'], 2)} | {_f(h['spearman'], 3)} | {_f(h['top_decile_share'], 3)} "
            f"| {_f(h['total_ratio'], 3)} |"
        )
    lines += [
        "",
        _beats_line(choice),
        "",
        (
            f"The factors do not carry from one window to the next: plain BG/NBD x Gamma-Gamma forecasts "
            f"{_f(plain['tuning']['total_ratio'], 3)} of the actual spend on the tuning backtest and "
            f"{_f(plain['cutoff']['total_ratio'], 3)} after the cutoff (the purchase rate of the q days before a "
            "cutoff is not that of the horizon after it, and a season the earlier windows do not contain cannot be "
            "learned from them), so no candidate fitted without the outcome period need reach the level of actual "
            "spend. MAE favours forecasting low (most customers spend nothing), the total favours the mean: raising "
            "the level to the actual total raises MAE."
        ),
        "",
        *_learned_line(run),
    ]
    return lines


def _learned_line(run: TrainingRun) -> list[str]:
    """Why a model learned from outcomes does not win either: its window is shorter than the horizon."""
    learned = run.value.baseline_metrics.get("glm_backtest")
    if learned is None:
        return []
    pop = run.population
    b = backtest_days(pop)
    return [
        (
            f"A model learned from outcomes has to learn them out of time too, on a window before the cutoff; these "
            f"data leave {b} days for it, not the {pop.outcome_days} of the horizon. The GLM learned so and scaled by "
            f"{pop.outcome_days}/{b} forecasts {_f(learned['total_ratio'], 3)} of the actual spend, with MAE "
            f"{learned['mae']:.2f} and RMSE {learned['rmse']:.2f} (the table above)."
        ),
        "",
    ]


def _reference_lines(run: TrainingRun) -> list[str]:
    refs = run.references
    return [
        "## Reference models",
        "",
        (
            "Fitted by maximum likelihood (scipy) on the training customers' purchases before the cutoff, time in "
            "weeks; `tests/training/test_reference.py` reproduces the published BG/NBD fit on the 2,357-customer "
            "CDNOW sample (r = 0.243, alpha = 4.414, a = 0.793, b = 2.426) and the Pareto/NBD one."
        ),
        "",
        "| model | parameters |",
        "|---|---|",
        (
            f"| BG/NBD | r = {refs.bgnbd.r:.4f}, alpha = {refs.bgnbd.alpha:.4f}, a = {refs.bgnbd.a:.4f}, "
            f"b = {refs.bgnbd.b:.4f} |"
        ),
        (
            f"| Pareto/NBD | r = {refs.pareto.r:.4f}, alpha = {refs.pareto.alpha:.4f}, s = {refs.pareto.s:.4f}, "
            f"beta = {refs.pareto.beta:.4f} |"
        ),
        (
            f"| Gamma-Gamma (mean order value over all orders) | p = {refs.gamma_gamma.p:.4f}, "
            f"q = {refs.gamma_gamma.q:.4f}, gamma = {refs.gamma_gamma.gamma:.4f} |"
        ),
        "",
    ]


def _clustering_lines(run: TrainingRun) -> list[str]:
    metrics: Any = run.models["rfm"].card.metrics
    comparison, minimum = metrics["algorithm_comparison"], metrics["minimum_cluster"]
    lines = [
        (
            f"Algorithm and stability (k = {comparison['k']}): kept **{metrics['algorithm']}**. "
            f"Rule: {comparison['rule']}."
        ),
        "",
        "| algorithm | silhouette (training sample) | adjusted Rand index, fits a quarter apart |",
        "|---|---|---|",
    ]
    for kind in ("kmeans", "gmm"):
        figures = comparison[kind]
        ari = ", ".join(f"{v:.3f}" for v in figures["stability_ari"]) or "n/a (too little data before the cutoff)"
        lines.append(f"| {kind} | {_f(figures['silhouette'], 3)} | {ari} |")
    lowered = minimum["lowered_from"]
    lines += [
        "",
        (
            f"Minimum cluster: {minimum['customers']} customers ({minimum['rule']}); "
            + (f"k was lowered from {lowered} to {metrics['k']}." if lowered else "no cluster was smaller, k kept.")
        ),
        "",
    ]
    return lines


def _persona_lines(run: TrainingRun) -> list[str]:
    personas: Any = run.models["rfm"].card.metrics["personas"]
    lines = [
        "Personas (all customers before the cutoff; churn rate = share with no purchase in the horizon):",
        "",
        (
            "| name | customers | share | share of spend | median recency (days) | median orders | median spend ($) "
            "| median tenure (days) | churn rate |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in personas.items():
        lines.append(
            f"| **{name}** | {p['customers']} | {p['share_of_customers']:.1%} | {p['share_of_spend']:.1%} "
            f"| {p['median_recency_days']:.0f} | {p['median_orders']:g} | {p['median_spend']:.0f} "
            f"| {p['median_tenure_days']:.0f} | {p['churn_rate']:.1%} |"
        )
    lines += ["", *(f"* {p['description']}" for p in personas.values()), ""]
    return lines


def _value_row(label: str, kind: str, m: Any) -> str:
    return (
        f"| {label} | {kind} | {_f(m['mae'], 2)} | {_f(m['rmse'], 2)} | {_f(m['spearman'], 3)} "
        f"| {_f(m['top_decile_share'], 3)} | {_f(m['total_ratio'], 3)} |"
    )


def _day(text: str) -> int:
    return date.fromisoformat(text[:10]).toordinal()


def _mean(values: Any) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
