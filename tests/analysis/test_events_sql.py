"""events.sql on a small log whose sufficient statistics are worked out by hand.

The log holds every case the attribution rules decide: a first exposure that later sees another
arm, outcomes before, inside and after the window, forced and anonymous decisions, an outcome of a
visitor never exposed, and events spread over several workers' files, rotated ones included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import msgspec
import pytest

from service.analysis.source import SourceError, open_events
from service.telemetry import DecisionEvent, Event, OutcomeEvent

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def exposure(
    visitor: str | None, arm: str, at: datetime, segments: tuple[str, ...] = (), reason: str = "experiment"
) -> DecisionEvent:
    return DecisionEvent(
        decision_id=f"d-{visitor}-{at.timestamp()}", time=at, revision="r", placement="home_hero", variant=arm,
        reason=reason, experiment="x", arm=arm, bucket=1, segments=segments, visitor=visitor, exposure=True,
    )  # fmt: skip


def outcome(visitor: str, metric: str, at: datetime, value: float = 1.0) -> OutcomeEvent:
    return OutcomeEvent(time=at, visitor=visitor, metric=metric, value=value)


LOG: list[Event] = [
    exposure("a", "control", T0, ("vip",)),
    outcome("a", "purchase", T0 - DAY, 3.0),  # the pre-period: the covariate
    outcome("a", "purchase", T0 + HOUR, 10.0),
    exposure("a", "bold", T0 + 2 * HOUR, ("vip",)),  # a later exposure does not move a
    outcome("a", "purchase", T0 + 8 * DAY, 5.0),  # past the 7-day window
    exposure("b", "bold", T0 + DAY),
    exposure("c", "bold", T0, ("vip", "new")),
    outcome("c", "click", T0 + HOUR),
    outcome("c", "purchase", T0 + 6 * DAY, 2.0),
    exposure("d", "bold", T0, reason="forced"),  # QA: not analysed
    outcome("d", "purchase", T0 + HOUR, 100.0),
    exposure(None, "control", T0),  # tied to nobody: not analysed
    outcome("e", "purchase", T0, 50.0),  # never exposed
    DecisionEvent(
        decision_id="p", time=T0, revision="r", placement="promo", variant="v", reason="default", visitor="a"
    ),
]

# (arm, segment, metric, kind) → visitors, sum, sum of squares, pre-sum, pre-sum of squares, sum of products
EXPECTED = {
    ("bold", None, "click", "conversion"): (2, 1, 1, 0, 0, 0),
    ("bold", None, "click", "value"): (2, 1, 1, 0, 0, 0),
    ("bold", None, "purchase", "conversion"): (2, 1, 1, 0, 0, 0),
    ("bold", None, "purchase", "value"): (2, 2, 4, 0, 0, 0),
    ("bold", "new", "click", "conversion"): (1, 1, 1, 0, 0, 0),
    ("bold", "new", "click", "value"): (1, 1, 1, 0, 0, 0),
    ("bold", "new", "purchase", "conversion"): (1, 1, 1, 0, 0, 0),
    ("bold", "new", "purchase", "value"): (1, 2, 4, 0, 0, 0),
    ("bold", "vip", "click", "conversion"): (1, 1, 1, 0, 0, 0),
    ("bold", "vip", "click", "value"): (1, 1, 1, 0, 0, 0),
    ("bold", "vip", "purchase", "conversion"): (1, 1, 1, 0, 0, 0),
    ("bold", "vip", "purchase", "value"): (1, 2, 4, 0, 0, 0),
    ("control", None, "click", "conversion"): (1, 0, 0, 0, 0, 0),
    ("control", None, "click", "value"): (1, 0, 0, 0, 0, 0),
    ("control", None, "purchase", "conversion"): (1, 1, 1, 1, 1, 1),
    ("control", None, "purchase", "value"): (1, 10, 100, 3, 9, 30),
    ("control", "vip", "click", "conversion"): (1, 0, 0, 0, 0, 0),
    ("control", "vip", "click", "value"): (1, 0, 0, 0, 0, 0),
    ("control", "vip", "purchase", "conversion"): (1, 1, 1, 1, 1, 1),
    ("control", "vip", "purchase", "value"): (1, 10, 100, 3, 9, 30),
}
COLUMNS = ("visitors", "sum", "sum_squares", "pre_sum", "pre_sum_squares", "sum_products")


def write_jsonl(path: Path, events: list[Event]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    return path


def statistics(paths: list[Path], window_days: float = 7.0) -> dict[tuple[object, ...], tuple[float, ...]]:
    events = open_events(paths)
    events.look(window_days)
    return {
        (r["arm"], r["segment"], r["metric"], r["kind"]): tuple(float(r[c]) for c in COLUMNS)  # type: ignore[arg-type]
        for r in events.rows("sufficient_statistics")
        if r["experiment"] == "x"
    }


def test_first_exposure_attribution_and_the_window_by_hand(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "decisions.jsonl", LOG)
    assert statistics([tmp_path / "decisions.jsonl"]) == EXPECTED


def test_several_workers_and_rotated_files_read_as_one_log(tmp_path: Path) -> None:
    for index, name in enumerate(["w1/decisions.101.jsonl", "w1/decisions.101.jsonl.1", "w2/decisions.7.jsonl.3"]):
        write_jsonl(tmp_path / name, LOG[index::3])
    (tmp_path / "w2" / "README").write_text("not an event file")
    assert statistics([tmp_path]) == EXPECTED


def test_parquet_files_hold_the_same_events(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "all.jsonl", LOG)
    for kind, schema in [("decisions", "tailor.decision/1"), ("outcomes", "tailor.outcome/1")]:
        duckdb.sql(
            f"COPY (SELECT * FROM read_json('{source}', format = 'newline_delimited') WHERE schema = '{schema}')"
            f" TO '{tmp_path / kind}.parquet' (FORMAT parquet)"
        )
    assert statistics([tmp_path / "decisions.parquet", tmp_path / "outcomes.parquet"]) == EXPECTED


def test_a_longer_window_counts_the_late_purchase(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "decisions.jsonl", LOG)
    found = statistics([tmp_path / "decisions.jsonl"], window_days=9)
    assert found[("control", None, "purchase", "value")] == (1, 15, 225, 3, 9, 45)  # per visitor: (10 + 5)²


def test_arm_visitors_count_first_exposures(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "decisions.jsonl", LOG)
    events = open_events([tmp_path])
    rows = {(r["arm"], r["segment"]): r["visitors"] for r in events.rows("arm_visitors")}
    assert rows == {
        ("bold", None): 2,
        ("bold", "new"): 1,
        ("bold", "vip"): 1,
        ("control", None): 1,
        ("control", "vip"): 1,
    }


def test_an_unknown_schema_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "decisions.jsonl", LOG[:2])
    with path.open("a") as file:
        file.write('{"schema": "tailor.decision/2", "time": "2026-11-02T09:00:00Z"}\n')
    with pytest.raises(SourceError, match=r"decisions.jsonl: 1 events of schema tailor.decision/2"):
        open_events([path])


def test_no_event_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no event files"):
        open_events([tmp_path])
    with pytest.raises(SourceError, match="no such file"):
        open_events([tmp_path / "missing"])
