"""Population files: CSV, JSON lines and Parquet read by DuckDB into the same visitors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import cast

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.simulate.population import PopulationError, read_population

ROWS: list[dict[str, object]] = [
    {"id": "00017", "country": "DE", "cart.items": 3, "cart.updated_at": "2026-11-20 09:00:00", "ok": True},
    {"id": "00018", "country": None, "cart.items": None, "cart.updated_at": None, "ok": False},
    {"id": None, "country": "FR", "cart.items": 1, "cart.updated_at": "2026-11-21 10:30:00", "ok": True},
]
VISITORS = [
    {"country": "DE", "cart": {"items": 3, "updated_at": datetime(2026, 11, 20, 9)}},
    {},
    {"country": "FR", "cart": {"items": 1, "updated_at": datetime(2026, 11, 21, 10, 30)}},
]


def _write(folder: Path, kind: str) -> Path:
    path = folder / f"population.{kind}"
    if kind == "csv":
        lines = ["id,country,cart.items,cart.updated_at,ok"]
        lines += [
            ",".join("" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in r.values())
            for r in ROWS
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    else:
        csv = _write(folder, "csv")
        with duckdb.connect() as connection:
            connection.execute(f"COPY (SELECT * FROM read_csv('{csv}', types = {{'id': 'VARCHAR'}})) TO '{path}'")
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_every_format_gives_the_same_visitors(kind: str, tmp_path: Path) -> None:
    batches = list(read_population(_write(tmp_path, kind), consent_column="ok", rows=2))
    assert [len(b.ids) for b in batches] == [2, 1]
    assert [i for b in batches for i in b.ids] == ["00017", "00018", None]  # text ids keep their zeros
    assert [a for b in batches for a in b.attributes] == VISITORS  # dotted names nest; empty cells are missing
    assert [c for b in batches for c in b.consent] == [True, False, True]


@pytest.mark.parametrize(
    ("cells", "read"), [(["no", "yes"], ["no", "yes"]), (["f", "t"], ["f", "t"]), (["false", "True"], [False, True])]
)
def test_a_csv_column_is_true_false_only_when_it_says_true_or_false(
    cells: list[str], read: list[object], tmp_path: Path
) -> None:
    """DuckDB reads yes/no as booleans; a rule file (YAML 1.2) and a JSON body have them as text."""
    path = tmp_path / "p.csv"
    path.write_text("id,opt_in,x\n" + "".join(f"v{i},{cell},1\n" for i, cell in enumerate(cells)) + "v9,,1\n")
    [batch] = list(read_population(path))
    assert [row.get("opt_in") for row in batch.attributes] == [*read, None]


def test_nested_json_objects_stay_nested(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    path.write_text('{"id": "a", "views": {"electronics_7d": 4}}\n{"id": "b", "views": {"electronics_7d": 1}}\n')
    (batch,) = read_population(path)
    assert batch.attributes == [{"views": {"electronics_7d": 4}}, {"views": {"electronics_7d": 1}}]
    assert batch.consent == [True, True]  # no consent column: everyone consents


def test_times_with_a_zone_are_read_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "zoned.csv"
    path.write_text("id,last_purchase_at\na,2026-11-20T09:00:00+02:00\n")
    (batch,) = read_population(path)
    assert batch.attributes == [{"last_purchase_at": datetime(2026, 11, 20, 7)}]


@pytest.mark.parametrize(
    ("name", "text", "consent", "message"),
    [
        ("people.xlsx", "", None, "people.xlsx: a population is .csv, .jsonl (.ndjson, .json) or .parquet"),
        ("missing.csv", None, None, "missing.csv: no such file"),
        ("p.csv", "id,ok\na,true\n", "consent", "p.csv: no column 'consent' for consent (columns: id, ok)"),
        ("broken.jsonl", "{not json\n", None, "broken.jsonl: "),
        # consent is true or false, as in a request body: anything else was silently no
        ("yes.csv", "id,c\na,yes\nb,no\n", "c", "yes.csv: the consent column 'c' holds 'yes': it must be true or"),
        ("ones.jsonl", '{"id": "a", "c": 1}\n', "c", "ones.jsonl: the consent column 'c' holds 1: it must be true"),
        ("text.jsonl", '{"id": "a", "c": "true"}\n', "c", "text.jsonl: the consent column 'c' holds 'true': it must"),
    ],
)
def test_unreadable_populations_say_why(
    name: str, text: str | None, consent: str | None, message: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(PopulationError) as caught:
        list(read_population(path, consent))
    assert str(caught.value).startswith(f"{tmp_path}/{message}")


# Attribute paths a population may have: plain, and two sharing a parent (they nest together).
_PATHS = ("country", "orders_total", "cart.items", "cart.updated_by", "views.electronics_7d")
_VALUES = {
    "country": st.sampled_from(["DE", "FR", "US", "00", "true", "", "ü ñ"]),
    "orders_total": st.integers(-(2**40), 2**40),
    "cart.items": st.integers(0, 50),
    "cart.updated_by": st.text(max_size=8),
    "views.electronics_7d": st.integers(0, 9),
}
_ROW = st.fixed_dictionaries(
    {"id": st.one_of(st.none(), st.text(alphabet="0123456789abc-", min_size=1, max_size=8))},
    optional={path: _VALUES[path] for path in _PATHS},
)


def _expected(row: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for path, value in row.items():
        if path == "id":
            continue
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = cast(dict[str, object], node.setdefault(key, {}))  # only this loop puts values there: dicts
        node[leaf] = value
    return out


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=12))
def test_any_json_lines_population_reads_back_as_its_visitors(rows: list[dict[str, object]], tmp_path: Path) -> None:
    """Missing keys are missing attributes, dotted keys nest, text ids stay text, values keep their type."""
    path = tmp_path / "any.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    batches = list(read_population(path, rows=5))
    assert [i for b in batches for i in b.ids] == [r["id"] or None for r in rows]
    assert [a for b in batches for a in b.attributes] == [_expected(r) for r in rows]


def test_a_csv_column_is_numbers_only_when_every_cell_is_one(tmp_path: Path) -> None:
    """What the README says of CSV types: `4.10` in a column of numbers is 4.1; one text cell makes all text."""
    path = tmp_path / "p.csv"
    path.write_text("id,version,n\nv1,4.10,5\nv2,4.2,x\n")
    [batch] = list(read_population(path))
    assert batch.attributes == [{"version": 4.1, "n": "5"}, {"version": 4.2, "n": "x"}]


@pytest.mark.parametrize(
    ("text", "consent"),
    [
        ("id,c\na,true\nb,\nc,false\n", [True, False, False]),  # an empty cell is no
        ("id,c\na,\nb,\n", [False, False]),  # a column of empty cells (DuckDB reads it as text): no one
    ],
)
def test_consent_is_read_from_a_true_false_column(text: str, consent: list[bool], tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(text)
    (batch,) = read_population(tmp_path / "p.csv", "c")
    assert batch.consent == consent
