"""Events the results cannot use, as a corpus: each is an error naming the file and line, never a guess.

Every case is one line put after a good log of three lines. The good log alone reads; each case
must fail with its message and the line it sits on (4), in a JSON-lines file, gzipped or not.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from service.analysis.source import SourceError, open_events
from service.cli import main

DECISION, OUTCOME = "tailor.decision/1", "tailor.outcome/1"
Event = dict[str, object]
GOOD: list[Event] = [
    {"schema": DECISION, "time": "2026-11-02T09:00:00Z", "experiment": "x", "arm": "control", "visitor": "a",
     "reason": "experiment", "segments": ["vip"]},
    {"schema": DECISION, "time": "2026-11-02T09:00:00Z", "experiment": "x", "arm": "bold", "visitor": "b",
     "reason": "experiment"},
    {"schema": OUTCOME, "time": "2026-11-02T10:00:00Z", "visitor": "a", "metric": "purchase", "value": 12.5},
]  # fmt: skip
EXPOSURE = GOOD[1] | {"visitor": "c"}
PURCHASE = GOOD[2] | {"visitor": "b"}
BAD: dict[str, tuple[Event, str]] = {
    "no time": ({k: v for k, v in EXPOSURE.items() if k != "time"}, "has no time"),
    "a null time": (EXPOSURE | {"time": None}, "has no time"),
    "a word for a time": (EXPOSURE | {"time": "yesterday"}, "a time that is not an ISO 8601 time"),
    "seconds for a time": (EXPOSURE | {"time": 1_793_000_000}, "a time that is not an ISO 8601 time"),
    "an exposure without its arm": (EXPOSURE | {"arm": None}, "an exposure without its experiment or arm"),
    "an exposure without its experiment": (
        {k: v for k, v in EXPOSURE.items() if k != "experiment"}, "an exposure without its experiment or arm"
    ),
    "an outcome without a metric": (PURCHASE | {"metric": None}, "an outcome without a metric"),
    "a value in a string": (PURCHASE | {"value": "7"}, "a value that is not a finite number"),
    "a value that is true": (PURCHASE | {"value": True}, "a value that is not a finite number"),
    "a value beyond a double": (PURCHASE | {"value": 1e400}, "a value that is not a finite number"),
    "a value whose square overflows": (PURCHASE | {"value": 1e200}, "a value of 1e\\+15 or more in size"),
    "a value of a quadrillion": (PURCHASE | {"value": -1e15}, "a value of 1e\\+15 or more in size"),
    "the year 9999": (EXPOSURE | {"time": "9999-01-01T00:00:00Z"}, "dated after now"),
}  # fmt: skip


def write(path: Path, events: list[Event], bare: str | None = None) -> Path:
    """The events a line each; ``bare`` is a last line written as it is (JSON has no NaN to dump)."""
    lines = [json.dumps(e) for e in events] + ([bare] if bare else [])
    data = "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogateescape")  # "\udcff" is the byte 0xff
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def test_the_good_log_reads(tmp_path: Path) -> None:
    events = open_events([write(tmp_path / "decisions.jsonl", GOOD)])
    assert events.connection.execute("SELECT COUNT(*) FROM decisions").fetchone() == (2,)


@pytest.mark.parametrize("name", ["decisions.jsonl", "decisions.jsonl.2.gz"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_an_unusable_event_is_an_error_at_its_line(tmp_path: Path, case: str, name: str) -> None:
    event, message = BAD[case]
    path = write(tmp_path / name, [*GOOD, event])
    with pytest.raises(SourceError, match=rf"{path}:4: an event that [^;]*{message}.*\(1 such event\)"):
        open_events([path])


def test_a_bare_nan_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "outcomes.jsonl", GOOD, bare=json.dumps(PURCHASE).replace("12.5", "NaN"))
    with pytest.raises(SourceError, match=rf"{path}:4: an event that has a value that is not a finite number"):
        open_events([path])


NOT_JSON = {
    "a line cut short": ('{"schema": "tailor.decision/1", "time":', "Expecting value at column 40"),
    "a word": ("nope", "Expecting value at column 1"),
    "an array": ("[1, 2]", "a JSON list, not an object"),
    "a text cut short": ('{"schema": "tailor.decision/1", "time": "2026', "Unterminated string starting at column 41"),
    "a byte that is not UTF-8": (
        '{"schema": "tailor.outcome/1", "visitor": "ab\udcff"}',
        "bytes that are not UTF-8 at byte 46",
    ),
}


@pytest.mark.parametrize("name", ["decisions.jsonl", "decisions.jsonl.2.gz"])
@pytest.mark.parametrize("case", sorted(NOT_JSON))
def test_a_line_that_is_not_a_json_object_is_an_error_at_its_line(tmp_path: Path, case: str, name: str) -> None:
    """DuckDB names such a line one past it (a one-line file's "line 2"); the error says the real one."""
    line, reason = NOT_JSON[case]
    path = write(tmp_path / name, GOOD, bare=line)
    with pytest.raises(SourceError) as caught:
        open_events([path])
    assert str(caught.value) == f"{path}:4: the line is not a JSON object: {reason}"


def test_a_parquet_row_is_named_by_its_number(tmp_path: Path) -> None:
    source = write(tmp_path / "source.jsonl", [*GOOD, EXPOSURE | {"arm": None}])
    path = tmp_path / "events.parquet"
    duckdb.execute(f"COPY (SELECT * FROM read_json('{source}')) TO '{path}' (FORMAT parquet)")
    source.unlink()
    with pytest.raises(SourceError, match=rf"{path}:4: an event that is an exposure without its experiment or arm"):
        open_events([path])


def test_a_broken_parquet_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match=rf"cannot read the events: .*{path}"):
        open_events([path])


def test_a_time_without_a_zone_is_utc_whatever_the_machine_s_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "decisions.jsonl", [e | {"time": str(e["time"]).rstrip("Z")} for e in GOOD])
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    events = open_events([path])
    assert events.connection.execute("SELECT MIN(ts) FROM decisions").fetchone() == (1_793_610_000.0,)


def test_gzipped_logs_are_read_and_a_file_of_another_kind_named_on_purpose_is_an_error(tmp_path: Path) -> None:
    plain, packed = write(tmp_path / "decisions.jsonl", GOOD[:2]), write(tmp_path / "outcomes.jsonl.gz", GOOD[2:])
    events = open_events([plain, packed])
    assert events.connection.execute("SELECT COUNT(*) FROM outcomes").fetchone() == (1,)
    other = write(tmp_path / "decisions.log", GOOD)
    with pytest.raises(SourceError, match=rf"{other}: not an event file"):
        open_events([plain, other])
    assert (
        len(open_events([tmp_path]).connection.execute("SELECT * FROM events").fetchall()) == 3
    )  # a folder's .log is not a log


@pytest.mark.parametrize("flag", ["--window-days", "--target-mde", "--planned-days", "--alpha"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_number_that_is_not_finite_is_a_usage_error(
    tmp_path: Path, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "decisions.jsonl", GOOD)
    assert main(["analyze", str(path), flag, value]) == 2
    err = capsys.readouterr().err
    assert f"tailor analyze: {flag} must " in err
    assert err.endswith(f", not {value}\n")


# (flags, the whole message): each wrong flag named with its rule and its value, as a rule file's plan is checked
VISITORS = "--planned-visitors must lie in [2, 1000000000000], not"
WRONG_FLAGS = [
    (["--alpha", "0"], "--alpha must lie in (0, 1), not 0"),
    (["--alpha", "1", "--window-days", "-1"],
     "--alpha must lie in (0, 1), not 1; --window-days must be a positive number, not -1"),
    (["--target-mde", "0"], "--target-mde must be a positive number, not 0"),
    (["--planned-days", "3651"], "--planned-days must lie in [1, 3650], not 3651"),
    (["--always-valid", "--planned-visitors", "1000000000001"], f"{VISITORS} 1000000000001"),
    (["--always-valid", "--planned-visitors", "1" + "0" * 400], f"{VISITORS} a number of 401 digits"),
    (["--always-valid", "--planned-visitors", "-5"], f"{VISITORS} -5"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), WRONG_FLAGS)
def test_each_wrong_flag_is_named_with_its_rule(
    tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "decisions.jsonl", GOOD)
    assert main(["analyze", str(path), *flags]) == 2
    assert capsys.readouterr().err == f"tailor analyze: {message}\n"
