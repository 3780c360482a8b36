"""The text report's table: columns stay aligned whatever the names in them."""

from __future__ import annotations

import pytest

from service.analysis.report import to_html, to_text
from service.analysis.results import Arm, Comparison, Experiment, Point, Results


def comparison(segment: str | None, metric: str) -> Comparison:
    return Comparison(
        arm="bold", baseline="control", metric=metric, kind="conversion", segment=segment, visitors=100,
        baseline_mean=0.1, arm_mean=0.12, lift=0.2, ci_low=-0.1, ci_high=1.5, p_value=0.2, p_adjusted=0.4,
        prob_beat_baseline=0.8, expected_loss=0.01, mde=0.3, days_left=4.0, cuped=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "names",
    [
        [(None, "purchase")],
        [(None, "purchase"), ("electronics_fan", "purchase"), ("a_very_long_segment_name_indeed", "checkout_started")],
        [("vip", "m" * 40), (None, "x")],
    ],
)
def test_every_row_has_its_columns_where_the_header_has_them(names: list[tuple[str | None, str]]) -> None:
    experiment = Experiment(
        key="x", baseline="control", days=3.0, srm_p=0.5, srm=False,
        arms=[Arm("control", 50, 0.5, 0.5, []), Arm("bold", 50, 0.5, 0.5, [])], segments=[],
        comparisons=[comparison(segment, metric) for segment, metric in names],
    )  # fmt: skip
    text = to_text(Results(mode="fixed", alpha=0.05, window_days=7.0, cuped=True, experiments=[experiment]))
    header = next(line for line in text.splitlines() if line.lstrip().startswith("arm ") and "lift" in line)
    rows = [line for line in text.splitlines() if line.startswith("  bold ")]
    assert len(rows) == len(names)
    ends = [header.index("lift") + len("lift"), header.index("days") + len("days")]  # right-aligned columns
    for row in rows:
        assert len(row) == len(header)
        assert row[ends[0] - 1] != " "  # the lift's last character under the header's
        assert row[ends[0]] == " "
        assert row[ends[1] - 1] != " "


def test_an_experiment_of_one_look_gets_a_note_instead_of_an_empty_plot() -> None:
    def page(days: list[int]) -> str:
        experiment = Experiment(
            key="x", baseline="control", days=0.5, srm_p=0.5, srm=False,
            arms=[Arm("control", 50, 0.5, 0.5, []), Arm("bold", 50, 0.5, 0.5, [])], segments=[],
            comparisons=[comparison(None, "purchase")],
            timeline=[Point(day, "bold", "purchase", "conversion", 0.1, -0.2, 0.4) for day in days],
        )  # fmt: skip
        return to_html(Results(mode="fixed", alpha=0.05, window_days=7.0, cuped=True, experiments=[experiment]))

    assert "cumulative lift over time" not in page([1])
    assert "one look so far (day 1)" in page([1])
    assert "12.0 hours of exposures" in page([1])
    assert "cumulative lift over time" in page([1, 2])
