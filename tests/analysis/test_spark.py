"""events.sql runs unchanged in Spark SQL (local mode) and gives DuckDB's sufficient statistics.

Spark reads the same JSON-lines files itself; the four views it needs are defined in Spark's own
dialect (``SPARK_VIEWS``, the recipe docs/ANALYSIS.md gives), then both statements of events.sql
run as they are. Needs a Java runtime (``make test`` installs one with apt-get when missing) and
pyspark from the dev extra.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.analysis.source import DAY_SECONDS, DEFAULT_WINDOW_DAYS, open_events, queries
from tests.analysis import logs
from tests.analysis.test_events_sql import LOG, write_jsonl

if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime: Spark needs one (apt-get install openjdk-17-jre-headless)", allow_module_level=True)
pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed (make spark installs it)")
# py4j leaves its gateway sockets to the garbage collector; that is its business, not a failure here
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

SPARK_VIEWS = """
CREATE OR REPLACE TEMP VIEW decisions AS
SELECT experiment, arm, visitor, COALESCE(segments, array()) AS segments, reason,
       CAST(to_timestamp(time) AS DOUBLE) AS ts
FROM events WHERE schema = 'tailor.decision/1';

CREATE OR REPLACE TEMP VIEW outcomes AS
SELECT visitor, metric, COALESCE(value, 1.0) AS value, CAST(to_timestamp(time) AS DOUBLE) AS ts
FROM events WHERE schema = 'tailor.outcome/1' AND visitor IS NOT NULL;

CREATE OR REPLACE TEMP VIEW segment_names AS
SELECT DISTINCT explode(segments) AS segment FROM decisions;

CREATE OR REPLACE TEMP VIEW params AS
SELECT CAST({window_seconds} AS DOUBLE) AS window_seconds, CAST('Infinity' AS DOUBLE) AS as_of
"""


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("events-sql")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")  # a few hundred rows: one partition, no waiting
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def in_spark(spark: Any, folder: Path, name: str) -> list[dict[str, Any]]:
    spark.read.option("recursiveFileLookup", "true").json(str(folder)).createOrReplaceTempView("events")
    for statement in SPARK_VIEWS.format(window_seconds=DEFAULT_WINDOW_DAYS * DAY_SECONDS).split(";"):
        spark.sql(statement)
    return [row.asDict() for row in spark.sql(queries()[name]).collect()]


def in_duckdb(folder: Path, name: str) -> list[dict[str, Any]]:
    return open_events([folder]).rows(name)


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal rows in the same order; sums to the last bits (the engines add in different orders)."""
    if len(a) != len(b) or [r.keys() for r in a] != [r.keys() for r in b]:
        return False
    return all(_close(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def _close(x: object, y: object) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        return math.isclose(float(x), float(y), rel_tol=1e-12, abs_tol=1e-9)  # type: ignore[arg-type]
    return x == y


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every attribution case by hand (experiment x), and a planted log spread over two workers' files."""
    root = tmp_path_factory.mktemp("spark")
    write_jsonl(root / "by_hand" / "decisions.jsonl", LOG)
    logs.write(root / "planted", logs.Plan(visitors=400, days=7, seed=11))
    return root


@pytest.mark.parametrize("statement", ["sufficient_statistics", "arm_visitors"])
def test_spark_sql_and_duckdb_agree(spark: Any, folder: Path, statement: str) -> None:
    duck = in_duckdb(folder, statement)
    assert {row["experiment"] for row in duck} == {"x", logs.EXPERIMENT}  # both sets, several arms and segments
    assert same(in_spark(spark, folder, statement), duck)
