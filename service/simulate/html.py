"""The report as one HTML file that opens offline: tables and inline SVG plots, no script, no CDN.

Three plots: segment sizes (bars), the overlap heat map (Jaccard index, counts in the
cells), and per placement the share of each variant (one stacked bar each). Each cluster
model gets a table of its clusters beside their personas.
"""

from __future__ import annotations

from html import escape

from service.simulate.report import ClusterRow, Report, Share

BAR_HEIGHT = 22
LABEL_WIDTH = 180
PLOT_WIDTH = 520
CELL = 46
LEGEND_COLUMNS = 2
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
_PERCENT = 100

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; max-width: 70rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.warning { color: #a33; }
svg text { font: 12px system-ui, sans-serif; }
"""


def html_report(report: Report) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Simulation of {escape(report.population)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Simulation of {escape(report.population)}</h1>",
        _summary(report),
        *(f'<p class="warning">warning: {escape(w)}</p>' for w in report.warnings),
        "<h2>Segment sizes</h2>",
        _segment_bars(report),
        _table(
            ["segment", "visitors", "share", "held out"],
            [[s.name, str(s.visitors), _pct(s.share), str(s.held_out)] for s in report.segments],
        ),
        *_cluster_tables(report),
        "<h2>Overlap (Jaccard index; visitors in both in each cell)</h2>",
        _heat_map(report),
        "<h2>Variants per placement</h2>",
        _variant_bars(report),
        *_placement_tables(report),
        "<h2>Rules no visitor reaches</h2>",
        _table(
            ["placement", "rule", "matched", "why"],
            [[u.placement, u.rule, str(u.targeted), u.why] for u in report.unreached],
        ),
        "<h2>Experiments</h2>",
        _experiments(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(report: Report) -> str:
    return (
        f"<p>{report.visitors} visitors decided at {escape(report.now.isoformat())} with bundle "
        f"<code>{escape(report.revision)}</code>; {report.consented} consented, {report.without_id} without an id, "
        f"{report.held_out} held out ({_pct(report.held_out_share)}).</p>"
    )


def _pct(share: float) -> str:
    return f"{share * _PERCENT:.1f} %"


def _table(head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _segment_bars(report: Report) -> str:
    largest = max((s.visitors for s in report.segments), default=0) or 1
    body = []
    for i, s in enumerate(report.segments):
        y = i * BAR_HEIGHT
        length = PLOT_WIDTH * s.visitors / largest
        body.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(s.name)}</text>')
        body.append(
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" height="{BAR_HEIGHT - 6}" fill="#4e79a7">'
        )
        body.append(f"<title>{escape(s.name)}: {s.visitors} ({_pct(s.share)})</title></rect>")
        body.append(f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 15}">{s.visitors}</text>')
    width = LABEL_WIDTH + PLOT_WIDTH + 80
    return _svg(width, max(len(report.segments), 1) * BAR_HEIGHT, body, "segment sizes")


def _heat_map(report: Report) -> str:
    names = report.overlap.segments
    body = []
    for i, name in enumerate(names):
        y = LABEL_WIDTH + i * CELL
        body.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + CELL / 2 + 4}" text-anchor="end">{escape(name)}</text>')
        x = LABEL_WIDTH + i * CELL + CELL / 2
        body.append(
            f'<text x="{x}" y="{LABEL_WIDTH - 6}" transform="rotate(-45 {x} {LABEL_WIDTH - 6})">{escape(name)}</text>'
        )
        for j in range(len(names)):
            value = report.overlap.jaccard[i][j]
            count = report.overlap.counts[i][j]
            shade = round(255 * (1 - value))
            ink = "#fff" if value > 0.5 else "#222"
            cx = LABEL_WIDTH + j * CELL
            body.append(
                f'<rect x="{cx}" y="{y}" width="{CELL - 1}" height="{CELL - 1}" fill="rgb({shade},{shade},255)">'
            )
            body.append(f"<title>{escape(name)} ∩ {escape(names[j])}: {count}, Jaccard {value:.3f}</title></rect>")
            body.append(
                f'<text x="{cx + CELL / 2}" y="{y + CELL / 2 + 4}" text-anchor="middle" fill="{ink}">{count}</text>'
            )
    size = LABEL_WIDTH + len(names) * CELL
    return _svg(size + LABEL_WIDTH // 2, size, body, "segment overlap heat map")  # room for the last slanted name


def _variant_bars(report: Report) -> str:
    """A stacked bar per placement, its variants coloured in order and named in a legend under it."""
    body: list[str] = []
    y = 0
    for placement in report.placements:
        colour = {s.name: PALETTE[i % len(PALETTE)] for i, s in enumerate(placement.variants)}
        body.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(placement.name)}</text>')
        body += _stack(placement.variants, colour, y)
        y += BAR_HEIGHT
        for k, share in enumerate(placement.variants):
            x = LABEL_WIDTH + (k % LEGEND_COLUMNS) * (PLOT_WIDTH // LEGEND_COLUMNS)
            row = y + (k // LEGEND_COLUMNS) * BAR_HEIGHT
            body.append(f'<rect x="{x}" y="{row + 4}" width="12" height="12" fill="{colour[share.name]}"/>')
            body.append(f'<text x="{x + 16}" y="{row + 15}">{escape(share.name)} {_pct(share.share)}</text>')
        y += -(-len(placement.variants) // LEGEND_COLUMNS) * BAR_HEIGHT + BAR_HEIGHT // 2
    return _svg(LABEL_WIDTH + PLOT_WIDTH + 20, y, body, "variant shares per placement")


def _stack(shares: list[Share], colour: dict[str, str], y: int) -> list[str]:
    body = []
    x = float(LABEL_WIDTH)
    for share in shares:
        width = PLOT_WIDTH * share.share
        body.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{BAR_HEIGHT - 4}" fill="{colour[share.name]}">'
        )
        body.append(f"<title>{escape(share.name)}: {share.visitors} ({_pct(share.share)})</title></rect>")
        x += width
    return body


_CLUSTER_HEAD = [
    "cluster", "visitors", "share", "customers", "share of customers", "share of spend", "median recency (days)",
    "median orders", "median spend ($)", "median tenure (days)", "churn rate", "persona",
]  # fmt: skip


def _cluster_tables(report: Report) -> list[str]:
    """Per cluster model: its share of the visitors who consent, beside the card's persona on training customers."""
    out = []
    note = f"of the {report.consented} visitors who consent; persona figures: the model card's training customers"
    for model in report.models:
        out += [
            f"<h2>Clusters of {escape(model.name)} ({note})</h2>",
            _table(_CLUSTER_HEAD, [_cluster_row(c) for c in model.clusters]),
        ]
    return out


def _cluster_row(c: ClusterRow) -> list[str]:
    p = c.persona
    if p is None:
        return [c.name, str(c.visitors), _pct(c.share), *[""] * 8, "no persona in the card"]
    figures = [str(p.customers), _pct(p.share_of_customers), _pct(p.share_of_spend), f"{p.median_recency_days:g}"]
    figures += [f"{p.median_orders:g}", f"{p.median_spend:.2f}", f"{p.median_tenure_days:g}", _pct(p.churn_rate)]
    return [c.name, str(c.visitors), _pct(c.share), *figures, p.description]


def _placement_tables(report: Report) -> list[str]:
    out = []
    for p in report.placements:
        rows = [
            [kind, s.name, str(s.visitors), _pct(s.share)]
            for kind, shares in (("rule", p.rules), ("variant", p.variants), ("reason", p.reasons))
            for s in shares
        ]
        out += [f"<h3>{escape(p.name)}</h3>", _table(["", "name", "visitors", "share"], rows)]
    return out


def _experiments(report: Report) -> str:
    rows = [
        [
            e.key,
            e.status,
            str(e.visitors),
            ", ".join(f"{a.name} {a.visitors}" for a in e.arms),
            str(e.sample_size_per_arm),
            "" if e.days is None else str(e.days),
        ]
        for e in report.experiments
    ]
    note = (
        f"<p>Sample size per arm for a baseline rate of {report.baseline:g} and a relative minimum "
        f"detectable effect of {report.mde:g} (two-sided alpha 0.05, power 0.8)"
        + (f"; days at {report.daily_visitors} visitors a day." if report.daily_visitors else ".")
        + "</p>"
    )
    return note + _table(["experiment", "status", "visitors", "arms", "per arm needed", "days"], rows)
