-- Sufficient statistics of experiments, from exposures and outcomes: the whole aggregation.
--
-- Plain SQL over four tables, so that the same file runs in DuckDB (tailor analyze) and, with
-- the table names pointed at the event store, in Spark SQL (tests/analysis/test_spark.py) or a
-- warehouse (docs/ANALYSIS.md says how). Times are seconds since the epoch (UTC) as numbers,
-- which every engine compares the same way. Nothing engine-specific: no UNNEST / LATERAL VIEW
-- (spelled differently everywhere), no casts to sized or engine-only types; the one array function
-- is array_contains (DuckDB, Spark, Databricks; Trino calls it contains).
--
--   decisions(experiment, arm, visitor, segments ARRAY<VARCHAR>, reason, ts)
--       tailor.decision/1 events; only reason 'experiment' with a visitor counts as an exposure
--       (forced QA arms and events tied to nobody are not analysed)
--   outcomes(visitor, metric, value, ts)        tailor.outcome/1 events
--   params(window_seconds, as_of)               one row: the attribution window, and the time up
--                                               to which events are read (cumulative looks)
--   segment_names(segment)                      every segment name found in the decisions' segments
--                                               (the host unnests, in its own dialect, once)
--
-- A visitor belongs to the arm and segments of their first exposure to an experiment (later
-- exposures, a different arm included, do not move them). An outcome counts for a visitor when it
-- is at or after that exposure and within the window. The covariate (for CUPED) is the same metric
-- in the window before the exposure. Every exposed visitor counts, with zeros when they did
-- nothing. Each metric is read two ways: conversion (1 if any outcome of the metric) and value
-- (the sum of its values).
--
-- Two statements, each introduced by a "-- name:" line.

-- name: sufficient_statistics
WITH exposures AS (
    SELECT
        d.experiment, d.visitor, d.arm, d.segments, d.ts,
        ROW_NUMBER() OVER (PARTITION BY d.experiment, d.visitor ORDER BY d.ts, d.arm) AS nth
    FROM decisions AS d
    CROSS JOIN params AS p
    WHERE d.experiment IS NOT NULL AND d.visitor IS NOT NULL AND d.reason = 'experiment' AND d.ts <= p.as_of
),
firsts AS (
    SELECT experiment, visitor, arm, segments, ts FROM exposures WHERE nth = 1
),
metrics AS (
    SELECT DISTINCT o.metric FROM outcomes AS o CROSS JOIN params AS p WHERE o.ts <= p.as_of
),
per_visitor AS (
    SELECT
        f.experiment, f.visitor, o.metric,
        SUM(CASE WHEN o.ts >= f.ts AND o.ts < f.ts + p.window_seconds THEN o.value ELSE 0 END) AS post_value,
        MAX(CASE WHEN o.ts >= f.ts AND o.ts < f.ts + p.window_seconds THEN 1 ELSE 0 END) AS post_conversion,
        SUM(CASE WHEN o.ts < f.ts AND o.ts >= f.ts - p.window_seconds THEN o.value ELSE 0 END) AS pre_value,
        MAX(CASE WHEN o.ts < f.ts AND o.ts >= f.ts - p.window_seconds THEN 1 ELSE 0 END) AS pre_conversion
    FROM firsts AS f
    JOIN outcomes AS o ON o.visitor = f.visitor
    CROSS JOIN params AS p
    WHERE o.ts <= p.as_of
    GROUP BY f.experiment, f.visitor, o.metric
),
units AS (
    SELECT
        f.experiment, f.arm, f.segments, m.metric,
        COALESCE(v.post_value, 0) AS post_value,
        COALESCE(v.post_conversion, 0) AS post_conversion,
        COALESCE(v.pre_value, 0) AS pre_value,
        COALESCE(v.pre_conversion, 0) AS pre_conversion
    FROM firsts AS f
    CROSS JOIN metrics AS m
    LEFT JOIN per_visitor AS v ON v.experiment = f.experiment AND v.visitor = f.visitor AND v.metric = m.metric
),
segmented AS (
    SELECT experiment, arm, NULL AS segment, metric,
           post_value, post_conversion, pre_value, pre_conversion
    FROM units
    UNION ALL
    SELECT u.experiment, u.arm, s.segment, u.metric,
           u.post_value, u.post_conversion, u.pre_value, u.pre_conversion
    FROM units AS u
    JOIN segment_names AS s ON array_contains(u.segments, s.segment)
),
kinds AS (
    SELECT experiment, arm, segment, metric, 'conversion' AS kind,
           CAST(post_conversion AS DOUBLE) AS y, CAST(pre_conversion AS DOUBLE) AS x
    FROM segmented
    UNION ALL
    SELECT experiment, arm, segment, metric, 'value' AS kind,
           CAST(post_value AS DOUBLE) AS y, CAST(pre_value AS DOUBLE) AS x
    FROM segmented
)
SELECT
    experiment, arm, segment, metric, kind,
    COUNT(*) AS visitors,
    SUM(y) AS sum,
    SUM(y * y) AS sum_squares,
    SUM(x) AS pre_sum,
    SUM(x * x) AS pre_sum_squares,
    SUM(x * y) AS sum_products
FROM kinds
GROUP BY experiment, arm, segment, metric, kind
ORDER BY experiment, arm, segment NULLS FIRST, metric, kind;

-- name: arm_visitors
WITH exposures AS (
    SELECT
        d.experiment, d.visitor, d.arm, d.segments, d.ts,
        ROW_NUMBER() OVER (PARTITION BY d.experiment, d.visitor ORDER BY d.ts, d.arm) AS nth
    FROM decisions AS d
    CROSS JOIN params AS p
    WHERE d.experiment IS NOT NULL AND d.visitor IS NOT NULL AND d.reason = 'experiment' AND d.ts <= p.as_of
),
firsts AS (
    SELECT experiment, visitor, arm, segments, ts FROM exposures WHERE nth = 1
),
segmented AS (
    SELECT experiment, arm, NULL AS segment, ts FROM firsts
    UNION ALL
    SELECT f.experiment, f.arm, s.segment, f.ts
    FROM firsts AS f
    JOIN segment_names AS s ON array_contains(f.segments, s.segment)
)
SELECT experiment, arm, segment, COUNT(*) AS visitors, MIN(ts) AS first_ts, MAX(ts) AS last_ts
FROM segmented
GROUP BY experiment, arm, segment
ORDER BY experiment, arm, segment NULLS FIRST;
