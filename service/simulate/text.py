"""The report as plain text for a terminal: one section per question a marketer asks."""

from __future__ import annotations

from service.simulate.report import ClusterRow, PersonaRow, PlacementRow, Report

_PERCENT = 100


def _pct(share: float) -> str:
    return f"{share * _PERCENT:5.1f} %"


def text_report(report: Report) -> str:
    held = _pct(report.held_out_share).strip()
    lines = [
        f"population {report.population}: {report.visitors} visitors at {report.now.isoformat()}",
        f"bundle {report.revision}",
        f"consented {report.consented}, without an id {report.without_id}, held out {report.held_out} ({held})",
        "",
        "segments (visitors who consent and are in it, as a share of all visitors; held out or not)",
    ]
    width = max((len(s.name) for s in report.segments), default=8)
    lines += [f"  {s.name:<{width}}  {s.visitors:>9}  {_pct(s.share)}  held out {s.held_out}" for s in report.segments]
    lines += _clusters(report)
    lines += ["", "overlap (visitors in both; Jaccard below)"]
    lines += _matrix(report)
    for placement in report.placements:
        lines += ["", f"placement {placement.name}", *_placement(placement)]
    lines += ["", "rules no visitor reaches"]
    lines += [f"  {u.placement}.{u.rule}: {u.why} ({u.targeted} matched)" for u in report.unreached] or ["  none"]
    lines += ["", _experiment_title(report)]
    for e in report.experiments:
        days = "" if e.days is None else f", {e.days} days to {e.sample_size_per_arm} per arm"
        arms = ", ".join(f"{a.name} {a.visitors}" for a in e.arms)
        lines.append(f"  {e.key} ({e.status}): {e.visitors} visitors: {arms}{days}")
    lines += ["", *(f"warning: {w}" for w in report.warnings)] if report.warnings else []
    return "\n".join(lines) + "\n"


def _clusters(report: Report) -> list[str]:
    """Per cluster model: its share of the visitors beside its persona, the card's figures on training customers."""
    if not report.models:
        return []
    title = f"model clusters (of the {report.consented} visitors who consent; persona: the card's training customers)"
    lines = ["", title]
    for model in report.models:
        width = max(len(c.name) for c in model.clusters)
        lines.append(f"  {model.name}")
        for cluster in model.clusters:
            lines += _cluster(cluster, width)
    return lines


def _cluster(cluster: ClusterRow, width: int) -> list[str]:
    head = f"    {cluster.name:<{width}}  {cluster.visitors:>9}  {_pct(cluster.share)}"
    if cluster.persona is None:
        return [f"{head}  no persona in the card"]
    return [f"{head}  persona: {_figures(cluster.persona)}", f"    {'':<{width}}  {cluster.persona.description}"]


def _figures(p: PersonaRow) -> str:
    orders = f"{p.median_orders:g} order{'' if p.median_orders == 1 else 's'}"
    return (
        f"{p.customers} customers ({_pct(p.share_of_customers).strip()}), {_pct(p.share_of_spend).strip()} of spend; "
        f"median recency {p.median_recency_days:g} days, {orders}, ${p.median_spend:.2f}, "
        f"tenure {p.median_tenure_days:g} days; churn rate {_pct(p.churn_rate).strip()}"
    )


def _experiment_title(report: Report) -> str:
    need = f"sample size {report.experiments[0].sample_size_per_arm} per arm" if report.experiments else ""
    daily = f", {report.daily_visitors} visitors a day" if report.daily_visitors else ""
    return (
        f"experiments (baseline {report.baseline:g}, relative MDE {report.mde:g}, alpha 0.05, power 0.8: {need}{daily})"
    )


def _placement(placement: PlacementRow) -> list[str]:
    groups = (("rule", placement.rules), ("variant", placement.variants), ("reason", placement.reasons))
    width = max((len(s.name) for _, shares in groups for s in shares), default=0)  # no visitors: no rows
    return [
        f"  {kind:<8} {s.name:<{width}}  {s.visitors:>9}  {_pct(s.share)}" for kind, shares in groups for s in shares
    ]


def _matrix(report: Report) -> list[str]:
    """Two square tables, rows and columns numbered in segment order: counts, then Jaccard indexes."""
    names = report.overlap.segments
    labels = [f"{i:>2} {name}" for i, name in enumerate(names)]
    width = max((len(label) for label in labels), default=8)
    cell = max([7, *(len(str(c)) for row in report.overlap.counts for c in row)])
    head = "  " + " " * width + "".join(f" {i:>{cell}}" for i in range(len(names)))
    counts = [
        f"  {label:<{width}}" + "".join(f" {c:>{cell}}" for c in row)
        for label, row in zip(labels, report.overlap.counts, strict=True)
    ]
    jaccard = [
        f"  {label:<{width}}" + "".join(f" {j:>{cell}.3f}" for j in row)
        for label, row in zip(labels, report.overlap.jaccard, strict=True)
    ]
    return [head, *counts, head, *jaccard]
