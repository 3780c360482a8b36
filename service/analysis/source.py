"""Where the events come from: JSON-lines logs (any number of workers, rotated files too) or Parquet.

DuckDB reads the files into one table of events; ``decisions``, ``outcomes``, ``params`` and
``segment_names`` are the four tables ``events.sql`` expects. Decision and outcome events may share files (they share
the log), told apart by ``schema``; an event of a schema this version does not know is an error
naming the file, rather than being silently left out of the results.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from service.core.errors import TailorError
from service.telemetry.events import OUTCOME_SCHEMA, SCHEMA

QUERIES_FILE = Path(__file__).with_name("events.sql")
DAY_SECONDS = 86_400.0
DEFAULT_WINDOW_DAYS = 7.0
JSON_NAME = re.compile(r".*\.(jsonl|ndjson|json)(\.\d+)?$")  # decisions.jsonl, decisions.4711.jsonl.3 …
PARQUET_NAME = re.compile(r".*\.parquet$")
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
    json_files = [p for p in found if JSON_NAME.match(p.name)]
    parquet_files = [p for p in found if PARQUET_NAME.match(p.name)]
    if not json_files and not parquet_files:
        raise SourceError("no event files (*.jsonl, *.jsonl.N, *.ndjson, *.parquet) in " + ", ".join(map(str, paths)))
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
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    selects = [_json_select(json_files)] if json_files else []
    selects += [_parquet_select(connection, p) for p in parquet_files]
    try:
        connection.execute("CREATE TEMP TABLE events AS " + " UNION ALL ".join(selects))
    except duckdb.Error as exc:
        raise SourceError(f"cannot read the events: {exc}") from exc
    _check_schemas(connection)
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


def _columns(source: str) -> str:
    names = ", ".join(f'"{name}"' for name in EVENT_COLUMNS if name != "time")
    return f"SELECT filename, {names}, epoch(CAST(time AS TIMESTAMPTZ)) AS ts FROM {source}"  # noqa: S608


def _json_select(files: list[Path]) -> str:
    listed = ", ".join(_quoted(p) for p in files)
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in EVENT_COLUMNS.items()) + "}"
    return _columns(f"read_json([{listed}], format = 'newline_delimited', columns = {columns}, filename = true)")


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
    return _columns(f"(SELECT {_quoted(path)} AS filename, {fields} FROM read_parquet({_quoted(path)}))")  # noqa: S608


def _check_schemas(connection: duckdb.DuckDBPyConnection) -> None:
    unknown = connection.execute(
        "SELECT filename, COALESCE(schema, '(none)'), COUNT(*) FROM events WHERE schema IS NULL OR schema NOT IN (?, ?)"
        " GROUP BY ALL ORDER BY 1, 2 LIMIT 5",
        [SCHEMA, OUTCOME_SCHEMA],
    ).fetchall()
    if unknown:
        found = "; ".join(f"{file}: {count} events of schema {schema}" for file, schema, count in unknown)
        raise SourceError(f"events of a schema this version cannot read ({SCHEMA}, {OUTCOME_SCHEMA}): {found}")


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
