"""Where the events come from: JSON-lines logs (any number of workers, rotated files too) or Parquet.

DuckDB reads the files into one table of events; ``decisions``, ``outcomes``, ``params`` and
``segment_names`` are the four tables ``events.sql`` expects. Decision and outcome events may share files (they share
the log), told apart by ``schema``; an event of a schema this version does not know is an error
naming the file, rather than being silently left out of the results. So is an event the results
cannot use as written (no time, a time that is not one, an exposure without its arm, a value that is
not a finite number, a time after now): the error names the file and line, and nothing is guessed.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from service.core.errors import TailorError
from service.telemetry.events import FUTURE_SLACK_SECONDS, MAX_OUTCOME_VALUE, OUTCOME_SCHEMA, SCHEMA

QUERIES_FILE = Path(__file__).with_name("events.sql")
DAY_SECONDS = 86_400.0
DEFAULT_WINDOW_DAYS = 7.0
JSON_NAME = re.compile(r".*\.(jsonl|ndjson|json)(\.\d+)?(\.gz)?$")  # decisions.jsonl, decisions.4711.jsonl.3.gz …
PARQUET_NAME = re.compile(r".*\.parquet$")
NAMES = "*.jsonl, *.jsonl.N, *.ndjson, *.json, any of them .gz, *.parquet"
EVENT_COLUMNS = {
    "schema": "VARCHAR",
    "time": "VARCHAR",
    "experiment": "VARCHAR",
    "arm": "VARCHAR",
    "visitor": "VARCHAR",
    "segments": "VARCHAR[]",
    "reason": "VARCHAR",
    "metric": "VARCHAR",
    "value": "DOUBLE",
}
# What makes an event unusable, and how the error says it: SQL over the events table, first rows first.
ROW_PROBLEMS = {
    "has no time": "time IS NULL",
    "has a time that is not an ISO 8601 time": "ts IS NULL AND time IS NOT NULL",
    "is an exposure without its experiment or arm": (
        f"schema = '{SCHEMA}' AND reason = 'experiment' AND visitor IS NOT NULL AND (experiment IS NULL OR arm IS NULL)"
    ),
    "is an outcome without a metric": f"schema = '{OUTCOME_SCHEMA}' AND metric IS NULL",
    "has a value that is not a finite number": (
        "value_type NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL') OR NOT isfinite(value)"
    ),
    "is dated after now (the clock of the machine that wrote it is wrong)": "ts > getvariable('latest')",
    # Values near 1e154 overflow the sums of squares: the results showed a lift of +2.94e+198%, and no word.
    f"has a value of {MAX_OUTCOME_VALUE:.0e} or more in size": f"abs(value) >= {MAX_OUTCOME_VALUE}",
}


class SourceError(TailorError):
    """The events cannot be read; the message names the file or the problem."""


def queries() -> dict[str, str]:
    """The named statements of events.sql (each introduced by ``-- name: …``)."""
    parts = re.split(r"^-- name: (\w+)\s*$", QUERIES_FILE.read_text(), flags=re.MULTILINE)
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def event_files(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """The JSON-lines and Parquet files among ``paths``; a folder stands for every such file under it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise SourceError(f"{path}: no such file or folder")
    named = [p for p in paths if p.is_file() and not (JSON_NAME.match(p.name) or PARQUET_NAME.match(p.name))]
    if named:  # a file named on purpose is never skipped in silence (a folder's other files are)
        raise SourceError(f"{named[0]}: not an event file ({NAMES})")
    json_files = [p for p in found if JSON_NAME.match(p.name)]
    parquet_files = [p for p in found if PARQUET_NAME.match(p.name)]
    if not json_files and not parquet_files:
        raise SourceError(f"no event files ({NAMES}) in " + ", ".join(map(str, paths)))
    return json_files, parquet_files


@dataclass
class Events:
    """A DuckDB connection holding the events, ready for events.sql."""

    connection: duckdb.DuckDBPyConnection

    def look(self, window_days: float, as_of: float | None = None) -> None:
        """Set the attribution window and the time up to which events count (None: all of them)."""
        self.connection.execute("CREATE OR REPLACE TEMP TABLE params AS SELECT ? AS window_seconds, ? AS as_of", [
            window_days * DAY_SECONDS, float("inf") if as_of is None else as_of,
        ])  # fmt: skip

    def rows(self, name: str) -> list[dict[str, object]]:
        cursor = self.connection.execute(queries()[name])
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def open_events(paths: Sequence[Path], threads: int | None = None) -> Events:
    json_files, parquet_files = event_files(paths)
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")  # a time without a zone is UTC, whatever the machine's zone
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    try:
        selects = [_json_select(json_files)] if json_files else []
        selects += [_parquet_select(connection, p) for p in parquet_files]
        connection.execute("CREATE TEMP TABLE events AS " + " UNION ALL ".join(selects))
    except duckdb.Error as exc:
        raise _read_error(exc) from exc
    _check_schemas(connection)
    _check_rows(connection)
    connection.execute(f"""
        CREATE TEMP VIEW decisions AS
        SELECT experiment, arm, visitor, COALESCE(segments, []) AS segments, reason, ts
        FROM events WHERE schema = '{SCHEMA}';
        CREATE TEMP VIEW outcomes AS
        SELECT visitor, metric, COALESCE(value, 1.0) AS value, ts
        FROM events WHERE schema = '{OUTCOME_SCHEMA}' AND visitor IS NOT NULL;
        CREATE TEMP TABLE segment_names AS SELECT DISTINCT UNNEST(segments) AS segment FROM decisions
    """)  # noqa: S608 -- the schema names are our own constants
    events = Events(connection)
    events.look(DEFAULT_WINDOW_DAYS)
    return events


def _columns(source: str, value: str, value_type: str, line: str) -> str:
    names = ", ".join(f'"{name}"' for name in EVENT_COLUMNS if name != "value")
    selected = f"filename, {line} AS line, {names}, {value} AS value, {value_type} AS value_type"
    return f"SELECT {selected}, epoch(TRY_CAST(time AS TIMESTAMPTZ)) AS ts FROM {source}"  # noqa: S608


def _json_select(files: list[Path]) -> str:
    """Every JSON-lines file at once; the value is read as JSON so that a string or ``true`` is not cast."""
    listed = ", ".join(_quoted(p) for p in files)
    kinds = {**EVENT_COLUMNS, "value": "JSON"}
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in kinds.items()) + "}"
    source = f"read_json([{listed}], format = 'newline_delimited', columns = {columns}, filename = true)"
    return _columns(source, "TRY_CAST(value AS DOUBLE)", "json_type(value)", "CAST(NULL AS BIGINT)")


def _parquet_select(connection: duckdb.DuckDBPyConnection, path: Path) -> str:
    """A Parquet file's events; columns it lacks (outcome files have no arm …) are NULL."""
    described = connection.execute(f"DESCRIBE SELECT * FROM read_parquet({_quoted(path)})")  # noqa: S608
    present = {row[0] for row in described.fetchall()}
    if "schema" not in present or "time" not in present:
        raise SourceError(f"{path}: a Parquet file of events needs the columns schema and time")
    fields = ", ".join(
        f'CAST("{name}" AS {kind}) AS "{name}"' if name in present else f'CAST(NULL AS {kind}) AS "{name}"'
        for name, kind in EVENT_COLUMNS.items()
    )
    source = f"read_parquet({_quoted(path)}, file_row_number = true)"
    rows = f"(SELECT {_quoted(path)} AS filename, file_row_number + 1 AS line, {fields} FROM {source})"  # noqa: S608
    return _columns(rows, "value", "CASE WHEN value IS NULL THEN 'NULL' ELSE 'DOUBLE' END", "line")


def _check_schemas(connection: duckdb.DuckDBPyConnection) -> None:
    unknown = connection.execute(
        "SELECT filename, COALESCE(schema, '(none)'), COUNT(*) FROM events WHERE schema IS NULL OR schema NOT IN (?, ?)"
        " GROUP BY ALL ORDER BY 1, 2 LIMIT 5",
        [SCHEMA, OUTCOME_SCHEMA],
    ).fetchall()
    if unknown:
        found = "; ".join(f"{file}: {count} events of schema {schema}" for file, schema, count in unknown)
        raise SourceError(f"events of a schema this version cannot read ({SCHEMA}, {OUTCOME_SCHEMA}): {found}")


def _check_rows(connection: duckdb.DuckDBPyConnection) -> None:
    """The first unusable event of each kind, with how many there are, or nothing."""
    connection.execute("SET VARIABLE latest = ?", [time.time() + FUTURE_SLACK_SECONDS])
    found = []
    for problem, condition in ROW_PROBLEMS.items():
        cursor = connection.execute(
            f"SELECT COUNT(*) OVER (), filename, line, * EXCLUDE (filename, line) FROM events WHERE {condition} LIMIT 1"  # noqa: S608
        )
        row = cursor.fetchone()
        if row is not None:
            event = dict(zip([d[0] for d in cursor.description], row, strict=True))
            found.append(f"{_where(event)}: an event that {problem} ({_count(row[0])})")
    if found:
        raise SourceError("events the results cannot use: " + "; ".join(found))


_MALFORMED = re.compile(r'(?:Malformed JSON|JSON transform error) in file "(?P<file>[^"]+)"')


def _read_error(exc: duckdb.Error) -> SourceError:
    """DuckDB's error, but a line that is not JSON at its ``file:line`` (DuckDB's count is off by one)."""
    found = _MALFORMED.search(str(exc))
    bad = _first_malformed(Path(found["file"])) if found else None
    if found is None or bad is None:
        return SourceError(f"cannot read the events: {exc}")
    number, reason = bad
    return SourceError(f"{found['file']}:{number}: the line is not a JSON object: {reason}")


def _first_malformed(path: Path) -> tuple[int, str] | None:
    """The first line of a JSON-lines file that is not one JSON object, and why (on the way to an error)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as lines:
            for number, raw in enumerate(lines, 1):
                reason = _not_an_object(raw)
                if reason is not None:
                    return number, reason
    except OSError:
        return None
    return None


def _not_an_object(raw: bytes) -> str | None:
    """Why one line is not a JSON object, or None; bytes that are not UTF-8 count (DuckDB refuses them too)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"bytes that are not UTF-8 at byte {exc.start + 1}"
    if not line.strip():
        return None
    try:
        data = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        at = "" if exc.msg.endswith(" at") else " at"  # "Unterminated string starting at" names its column
        return f"{exc.msg}{at} column {exc.colno}"
    return None if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"


def _where(event: dict[str, Any]) -> str:
    """``file:line`` of an event (a Parquet file's row; a JSON-lines file is searched for it)."""
    line = event["line"] or _json_line(Path(event["filename"]), event)
    return f"{event['filename']}:{line}" if line else str(event["filename"])


def _json_line(path: Path, event: dict[str, Any]) -> int | None:
    """The line of ``path`` holding ``event`` (only on the way to an error: the files were read by DuckDB)."""
    fields = ("schema", "time", "experiment", "arm", "visitor", "metric")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and all(_text(data.get(f)) == event[f] for f in fields):
                return number
    return None


def _text(value: object) -> str | None:
    """A JSON value as DuckDB's VARCHAR column shows it."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _count(n: int) -> str:
    return "1 such event" if n == 1 else f"{n:,} such events"


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
