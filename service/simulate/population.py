"""A population file read by DuckDB: CSV, JSON lines or Parquet, one visitor a row, in batches.

Columns are attributes; a dotted column name is a nested path (``cart.items`` becomes
``{"cart": {"items": ...}}``), nested JSON objects and Parquet structs stay nested, and
an empty cell is a missing attribute. The ``id`` column is the visitor id, read as text
(a CSV id such as ``00017`` must not become the number 17). DuckDB's own readers do the
parsing; here columns are only cast to the kinds rules compare: times to UTC timestamps,
decimals to floats.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from service.core.errors import TailorError

ID_COLUMN = "id"
BATCH_ROWS = 10_000
_READERS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
    ".json": "read_json",
    ".parquet": "read_parquet",
}
_OPTIONS = {"read_csv": ", header = true", "read_json": ", format = 'newline_delimited'", "read_parquet": ""}


class PopulationError(TailorError):
    """A population file that cannot be read, with what and where."""


@dataclass(frozen=True, slots=True)
class Batch:
    ids: list[str | None]
    attributes: list[dict[str, Any]]
    consent: list[bool]


def read_population(path: Path, consent_column: str | None = None, rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """The visitors of ``path``, ``rows`` at a time."""
    connection = duckdb.connect()
    try:
        source = _source(connection, path)
        columns = _columns(connection, source)
        if consent_column is not None and consent_column not in columns:
            raise PopulationError(f"{path}: no column '{consent_column}' for consent (columns: {', '.join(columns)})")
        if consent_column is not None and columns[consent_column] != "BOOLEAN":
            _check_consent(connection, source, path, consent_column)
        query = connection.execute(f"SELECT {', '.join(_select(n, t) for n, t in columns.items())} FROM {source}")  # noqa: S608 - names are quoted
        names = list(columns)
        while chunk := query.fetchmany(rows):
            yield _batch(names, chunk, consent_column)
    except duckdb.Error as exc:
        raise PopulationError(f"{path}: {str(exc).splitlines()[0]}") from None
    finally:
        connection.close()


def _check_consent(connection: duckdb.DuckDBPyConnection, source: str, path: Path, column: str) -> None:
    """A consent column that is not true/false is refused, naming a value, unless every cell is empty (no one).

    'yes' or 1 is not consent a decision takes (a body's consent is true or false); counting it as no
    reported a population in which nobody consents, without a word.
    """
    quoted = '"' + column.replace('"', '""') + '"'
    row = connection.execute(f"SELECT {quoted} FROM {source} WHERE {quoted} IS NOT NULL LIMIT 1").fetchone()  # noqa: S608 - quoted
    if row is not None:
        raise PopulationError(
            f"{path}: the consent column '{column}' holds {row[0]!r}: it must be true or false (empty means no)"
        )


def _source(connection: duckdb.DuckDBPyConnection, path: Path) -> str:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise PopulationError(f"{path}: a population is .csv, .jsonl (.ndjson, .json) or .parquet")
    if not path.is_file():
        raise PopulationError(f"{path}: no such file")
    literal = "'" + str(path).replace("'", "''") + "'"
    options = _OPTIONS[reader]
    if reader == "read_csv":
        texts = _csv_text_columns(connection, literal, options)
        if texts:
            options += ", types = {" + ", ".join(f"'{_sql_text(name)}': 'VARCHAR'" for name in texts) + "}"
    return f"{reader}({literal}{options})"


def _csv_text_columns(connection: duckdb.DuckDBPyConnection, literal: str, options: str) -> list[str]:
    """The CSV columns to read as text: the id, and any DuckDB would read as true/false from yes/no or t/f.

    A rule file reads ``no`` as text (YAML 1.2) and a JSON body sends ``"no"``: a population must
    not make it false.
    """
    columns = _columns(connection, f"read_csv({literal}{options})")
    texts = [ID_COLUMN] if ID_COLUMN in columns else []
    for name, kind in columns.items():
        if kind == "BOOLEAN" and _has_other_than_true_false(connection, literal, options, name):
            texts.append(name)
    return texts


def _has_other_than_true_false(connection: duckdb.DuckDBPyConnection, literal: str, options: str, name: str) -> bool:
    quoted = '"' + name.replace('"', '""') + '"'
    source = f"read_csv({literal}{options}, all_varchar = true)"
    query = f"SELECT count(*) FROM {source} WHERE {quoted} <> '' AND lower({quoted}) NOT IN ('true', 'false')"  # noqa: S608 - names are quoted
    row = connection.execute(query).fetchone()
    return row is not None and row[0] > 0


def _sql_text(name: str) -> str:
    return name.replace("'", "''")


def _columns(connection: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 - a reader call
    return {str(row[0]): str(row[1]) for row in described}


def _select(name: str, kind: str) -> str:
    """The column as rules read it: times as UTC timestamps, decimals as floats, the id as text."""
    quoted = '"' + name.replace('"', '""') + '"'
    if name == ID_COLUMN:
        return f"CAST({quoted} AS VARCHAR) AS {quoted}"
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone('UTC', {quoted}) AS {quoted}"
    if kind == "DATE" or kind.startswith("TIMESTAMP"):
        return f"CAST({quoted} AS TIMESTAMP) AS {quoted}"
    if kind.startswith("DECIMAL"):
        return f"CAST({quoted} AS DOUBLE) AS {quoted}"
    return quoted


def _batch(names: list[str], chunk: list[tuple[Any, ...]], consent_column: str | None) -> Batch:
    paths = [tuple(name.split(".")) for name in names]
    id_at = names.index(ID_COLUMN) if ID_COLUMN in names else None
    consent_at = names.index(consent_column) if consent_column is not None else None
    skip = {id_at, consent_at}
    ids: list[str | None] = []
    attributes = []
    consent = []
    for row in chunk:
        ids.append(None if id_at is None else row[id_at] or None)
        consent.append(True if consent_at is None else row[consent_at] is True)
        attributes.append(_nested(paths, row, skip))
    return Batch(ids, attributes, consent)


def _nested(paths: list[tuple[str, ...]], row: tuple[Any, ...], skip: set[int | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, value in enumerate(row):
        if value is None or i in skip:
            continue
        path = paths[i]
        if len(path) == 1:
            out[path[0]] = value
            continue
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out
