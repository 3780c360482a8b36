"""The results as JSON (for machines), text (for a terminal) or one HTML file (for a marketer).

The HTML report opens offline: no script, no CDN; every plot is inline SVG drawn here. Plots:
the cumulative lift of each arm over time with its interval band, a forest plot of the lift per
segment, and the arm shares next to the shares the weights ask for, with the SRM test.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

import msgspec

from service.analysis.results import Comparison, Experiment, Point, Results

WIDTH, ROW, PAD = 640, 22, 150  # SVG width, forest-plot row height, room for labels on the left
PLOT_HEIGHT = 220
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
SIGNIFICANT, FLAT = "#137333", "#5f6368"


def to_json(results: Results) -> bytes:
    return msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n"


def to_text(results: Results) -> str:
    lines = [f"mode: {_mode(results)}, alpha {results.alpha}, attribution window {results.window_days:g} days"]
    for experiment in results.experiments:
        lines += ["", *_text_experiment(experiment)]
    return "\n".join(lines) + "\n"


def _text_experiment(e: Experiment) -> list[str]:
    flag = "  SAMPLE RATIO MISMATCH: do not trust these results" if e.srm else ""
    lines = [f"experiment {e.key} ({e.days:.1f} days, baseline {e.baseline}; {_plan(e)}) SRM p = {e.srm_p:.3g}{flag}"]
    lines += [
        f"  arm {a.key:<12} {a.visitors:>9} visitors  {a.share:6.1%} (expected {a.expected_share:.1%})" for a in e.arms
    ]
    lines += [f"  segment {s.segment}: SRM p = {s.srm_p:.3g}{'  MISMATCH' if s.srm else ''}" for s in e.segments]
    widths = _widths(e.comparisons)
    lines.append(
        _text_line(("arm", "segment", "metric", "lift", "interval", "p", "p(BH)", "P(beat)", "MDE", "days"), widths)
    )
    lines += [_text_line(_text_cells(c), widths) for c in e.comparisons]
    return lines


TEXT_MIN_WIDTHS = (10, 12, 22, 8, 20, 8, 8, 8, 7, 5)  # the header's columns; wider values widen them
TEXT_LEFT = 3  # arm, segment and metric are text, aligned left; the numbers align right


def _text_cells(c: Comparison) -> tuple[str, ...]:
    days = "-" if c.days_left is None else f"{c.days_left:.0f}"
    return (
        c.arm, c.segment or "everyone", f"{c.metric}:{c.kind}", _pct(c.lift), f"[{_pct(c.ci_low)}, {_pct(c.ci_high)}]",
        _num(c.p_value), _num(c.p_adjusted), _num(c.prob_beat_baseline), _pct(c.mde), days,
    )  # fmt: skip


def _widths(comparisons: Sequence[Comparison]) -> tuple[int, ...]:
    """Each column as wide as its widest cell, so a long segment name does not push the rest."""
    rows = [_text_cells(c) for c in comparisons]
    return tuple(max([minimum, *(len(row[i]) for row in rows)]) for i, minimum in enumerate(TEXT_MIN_WIDTHS))


def _text_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  " + " ".join(
        cell.ljust(width) if i < TEXT_LEFT else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def _mode(results: Results) -> str:
    """The mode of every experiment, or a pointer to each one's line when their plans differ."""
    modes = {e.mode for e in results.experiments} | {results.mode}
    return results.mode if len(modes) == 1 else "each experiment's own"


def _plan(e: Experiment) -> str:
    return f"{e.mode} test" + ("" if e.planned_days is None else f", {e.planned_days:g}-day plan") + _size(e)


def _html_plan(e: Experiment) -> str:
    days = "" if e.planned_days is None else f" with a {e.planned_days:g}-day plan"
    return f"<b>{e.mode}</b> test{days}{_size(e)}"


def _size(e: Experiment) -> str:
    return "" if e.planned_visitors is None else f", tuned to {e.planned_visitors:,} planned visitors"


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if abs(value) < 1e6 else f"{value * 100:+.2e}%"  # a freak value keeps the table's shape


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# --- HTML ------------------------------------------------------------------------------------------

HOURS_PER_DAY = 24
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #202124; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #dadce0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.93em; font-variant-numeric: tabular-nums; }
td, th { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
td:first-child, th:first-child, td.l, th.l { text-align: left; }
.srm { background: #fce8e6; color: #a50e0e; padding: 0.6em 1em; border-radius: 4px; font-weight: 600; }
.ok { color: #137333; } .muted { color: #5f6368; } svg { display: block; margin: 0.5em 0 1.5em; }
"""


def to_html(results: Results) -> str:
    body = [
        "<h1>Experiment results</h1>",
        (
            f"<p class=muted>{_mode(results)} test, alpha = {results.alpha}, outcomes within "
            f"{results.window_days:g} days of a visitor's first exposure; CUPED {'on' if results.cuped else 'off'}. "
            "Each arm is compared with the baseline; docs/ANALYSIS.md explains every number.</p>"
        ),
    ]
    for experiment in results.experiments:
        body += _html_experiment(experiment)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Experiment results</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _html_experiment(e: Experiment) -> list[str]:
    key = html.escape(e.key)
    parts = [
        f"<h2>{key}</h2>",
        f"<p>{_span(e.days)} of exposures; baseline arm <b>{html.escape(e.baseline)}</b>; {_html_plan(e)}.</p>",
    ]
    if e.srm:
        parts.append(
            f"<p class=srm>Sample ratio mismatch (p = {e.srm_p:.2g}): the arms did not get the visitors their "
            "weights ask for. Assignment or logging is broken; do not act on these results.</p>"
        )
    parts += ["<h3>Visitors per arm</h3>", _shares_svg(e)]
    for metric, kind in _metric_kinds(e.comparisons):
        chosen = [c for c in e.comparisons if (c.metric, c.kind) == (metric, kind)]
        parts += [f"<h3>{html.escape(metric)} ({kind})</h3>", _table(chosen)]
        parts.append(_forest_svg(chosen))
        points = [p for p in e.timeline if (p.metric, p.kind) == (metric, kind)]
        if len({p.day for p in points}) == 1:  # one look: a plot of one point shows nothing
            parts.append(f"<p class=muted>Cumulative lift: one look so far (day {points[0].day}); the plot starts "
                         "with the second day.</p>")  # fmt: skip
        elif points:
            clip_id = re.sub(r"[^A-Za-z0-9]+", "-", f"clip-{e.key}-{metric}-{kind}")  # unique in the page
            parts += [
                "<p class=muted>Cumulative lift by day, with its interval band:</p>",
                _timeline_svg(points, clip_id),
            ]
    return parts


def _span(days: float) -> str:
    """How long the exposures span: hours below a day (a day's first hours would all read 0.0 days)."""
    if days <= 1 / HOURS_PER_DAY:
        return "under an hour"  # the analysis counts at least an hour, for its traffic rate
    return f"{days * HOURS_PER_DAY:.1f} hours" if days < 1 else f"{days:.1f} days"


def _metric_kinds(comparisons: Iterable[Comparison]) -> list[tuple[str, str]]:
    return sorted({(c.metric, c.kind) for c in comparisons})


def _table(comparisons: Sequence[Comparison]) -> str:
    head = "<tr><th>arm</th><th class=l>segment</th><th>baseline</th><th>arm mean</th><th>lift</th><th>interval</th>"
    head += "<th>p</th><th>p (BH)</th><th>P(beat)</th><th>risk</th><th>MDE</th><th>days left</th></tr>"
    rows = [
        f"<tr><td>{html.escape(c.arm)}</td><td class=l>{html.escape(c.segment or 'everyone')}</td>"
        f"<td>{_num(c.baseline_mean)}</td><td>{_num(c.arm_mean)}</td><td>{_pct(c.lift)}</td>"
        f"<td>[{_pct(c.ci_low)}, {_pct(c.ci_high)}]</td><td>{_num(c.p_value)}</td><td>{_num(c.p_adjusted)}</td>"
        f"<td>{_num(c.prob_beat_baseline)}</td><td>{_pct(c.expected_loss)}</td><td>{_pct(c.mde)}</td>"
        f"<td>{'-' if c.days_left is None else f'{c.days_left:.0f}'}</td></tr>"
        for c in comparisons
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def _svg(height: float, content: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" role="img" '
        f'aria-label="{html.escape(label)}" font-size="12" font-family="system-ui, sans-serif">{"".join(content)}</svg>'
    )


def _text(x: float, y: float, words: str, anchor: str = "start", fill: str = "#202124") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{html.escape(words)}</text>'


class _Scale:
    """A linear map from [low, high] (widened to include 0, with a margin) onto pixels."""

    def __init__(self, values: Iterable[float], start: float, stop: float) -> None:
        listed = [*values, 0.0]
        low, high = min(listed), max(listed)
        if high - low < 1e-9:
            low, high = -0.01, 0.01
        margin = (high - low) * 0.05
        self.low, self.high = low - margin, high + margin
        self.start, self.stop = start, stop

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.stop - self.start)


class _Bar(msgspec.Struct, frozen=True):
    """A point estimate with its interval, all known: what the plots draw."""

    label: str
    low: float
    mid: float
    high: float
    day: int = 0


def _bars(rows: Iterable[Comparison | Point]) -> list[_Bar]:
    bars = []
    for r in rows:
        if r.lift is not None and r.ci_low is not None and r.ci_high is not None:
            label = r.arm if isinstance(r, Point) else f"{r.arm} · {r.segment or 'everyone'}"
            bars.append(_Bar(label, r.ci_low, r.lift, r.ci_high, r.day if isinstance(r, Point) else 0))
    return bars


def _forest_svg(comparisons: Sequence[Comparison]) -> str:
    bars = _bars(comparisons)
    if not bars:
        return "<p class=muted>No interval could be computed yet.</p>"
    x = _Scale([v for b in bars for v in (b.low, b.high)], PAD, WIDTH - 20)
    height = ROW * len(bars) + 40
    zero = x(0.0)
    content = [f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="10" y2="{height - 25}" stroke="#999" stroke-dasharray="3"/>']
    for row, b in enumerate(bars):
        y = 20 + row * ROW
        colour = SIGNIFICANT if (b.low > 0 or b.high < 0) else FLAT
        content += [
            _text(PAD - 8, y + 4, b.label, "end"),
            f'<line x1="{x(b.low):.1f}" x2="{x(b.high):.1f}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"/>',
            f'<circle cx="{x(b.mid):.1f}" cy="{y}" r="4" fill="{colour}"/>',
        ]
    content += [_text(PAD, height - 8, f"{x.low:+.0%}"), _text(WIDTH - 20, height - 8, f"{x.high:+.0%}", "end")]
    content.append(_text(zero, height - 8, "0", "middle"))
    return _svg(height, content, "forest plot of the lift per segment")


def _timeline_svg(points: Sequence[Point], clip_id: str) -> str:
    bars = _bars(points)
    if not bars:
        return ""
    top, bottom, left, right = 15.0, PLOT_HEIGHT - 30.0, 60.0, WIDTH - 20.0
    last_day = max(b.day for b in bars)
    # The first days' intervals are very wide: scale to the later three quarters, clip the rest.
    settled = [b for b in bars if b.day >= last_day / 4] or bars
    y = _Scale([v for b in settled for v in (b.low, b.high)], bottom, top)

    def x(day: float) -> float:
        return left + (day - 1) / max(last_day - 1, 1) * (right - left)

    area = f'x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"'
    clip = f'<clipPath id="{clip_id}"><rect {area}/></clipPath>'
    content = [
        clip,
        f'<line x1="{left}" x2="{right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999" stroke-dasharray="3"/>',
    ]
    for index, arm in enumerate(sorted({b.label for b in bars})):
        colour = COLOURS[index % len(COLOURS)]
        series = sorted((b for b in bars if b.label == arm), key=lambda b: b.day)
        band = [f"{x(b.day):.1f},{y(b.high):.1f}" for b in series]
        band += [f"{x(b.day):.1f},{y(b.low):.1f}" for b in reversed(series)]
        line = " ".join(f"{x(b.day):.1f},{y(b.mid):.1f}" for b in series)
        content += [
            f'<polygon points="{" ".join(band)}" fill="{colour}" fill-opacity="0.15" clip-path="url(#{clip_id})"/>',
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" clip-path="url(#{clip_id})"/>',
            _text(right, top + 14 * (index + 1), arm, "end", colour),
        ]
    content += [
        _text(left - 6, y(y.high) + 4, f"{y.high:+.0%}", "end"), _text(left - 6, y(y.low) + 4, f"{y.low:+.0%}", "end"),
        _text(left, PLOT_HEIGHT - 8, "day 1"), _text(right, PLOT_HEIGHT - 8, f"day {last_day}", "end"),
    ]  # fmt: skip
    return _svg(PLOT_HEIGHT, content, "cumulative lift over time")


def _shares_svg(e: Experiment) -> str:
    height = ROW * len(e.arms) * 2 + 40
    bar = WIDTH - PAD - 80
    content = []
    for row, arm in enumerate(e.arms):
        y = 15 + row * 2 * ROW
        content += [
            _text(PAD - 8, y + 12, f"{arm.key} ({arm.visitors:,})", "end"),
            f'<rect x="{PAD}" y="{y}" width="{arm.share * bar:.1f}" height="14" fill="{COLOURS[row % len(COLOURS)]}"/>',
            _text(PAD + arm.share * bar + 6, y + 12, f"{arm.share:.2%}"),
            f'<rect x="{PAD}" y="{y + 17}" width="{arm.expected_share * bar:.1f}" height="5" fill="#bbb"/>',
        ]
    verdict = "mismatch" if e.srm else "no mismatch"
    content.append(_text(PAD, height - 10, f"grey: share the weights ask for · SRM p = {e.srm_p:.3g} ({verdict})"))
    return _svg(height, content, "arm shares and the sample ratio mismatch test")
