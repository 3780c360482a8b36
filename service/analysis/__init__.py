"""Offline experiment analysis (``tailor analyze``): events → sufficient statistics → results.

``events.sql`` aggregates decision and outcome events into sufficient statistics, ``source``
runs it in DuckDB over JSON-lines or Parquet logs, ``stats`` holds the statistics, ``results``
puts them together per experiment, arm, segment and metric, and ``report`` writes them as JSON,
text or HTML. Serving never imports this package (tests/test_architecture.py checks it).
"""
