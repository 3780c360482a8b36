"""POST /ofrep/v1/evaluate/flags next to POST /v1/decide on one Tailor server, under wrk.

The same 1,000 seeded page views (loadtests/pageview_mix.py) as both: /v1/decide bodies for
every placement, and the OFREP contexts of the same visitors (visitors without an id left out:
OFREP wants one). A third run sends one visitor's context with the ETag of its flags: the 304
path, which decides and hashes but sends no body.

    .venv/bin/python loadtests/ofrep_bench.py        # --duration 10 --connections 16 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.harness import HOST, ROOT, WrkResult, ensure_wrk, free_port, process_group, run_wrk, wait_ready
from loadtests.pageview_mix import page_views

SEED = 2026
LUA = ROOT / "loadtests" / "pageviews.lua"
BULK = "/ofrep/v1/evaluate/flags"


def ofrep_context(body: dict[str, Any]) -> dict[str, Any]:
    visitor = body["visitor"]
    context = {"targetingKey": visitor["id"], **visitor.get("attributes", {}), "consent": visitor.get("consent", {})}
    return {"context": context}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="tailor-ofrep-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for part in ("rules", "content", "models"):
            shutil.copytree(ROOT / part, tmp / "bundle" / part)
        views = [v.body for v in page_views(1000, SEED, datetime.now(UTC)) if v.body["visitor"].get("id")]
        decide = tmp / "decide.jsonl"
        decide.write_text("".join(json.dumps({"visitor": b["visitor"]}) + "\n" for b in views))
        ofrep = tmp / "ofrep.jsonl"
        ofrep.write_text("".join(json.dumps(ofrep_context(b)) + "\n" for b in views))
        one = tmp / "one.jsonl"
        one.write_text(ofrep.read_text().splitlines()[0] + "\n")
        port = free_port()
        base = f"http://{HOST}:{port}"
        command = [sys.executable, "-m", "service.cli", "serve", "--bundle", str(tmp / "bundle"),
                   "--host", HOST, "--port", str(port), "--workers", "1"]  # fmt: skip
        with process_group(command, log=tmp / "server.log", env={"TAILOR_RELOAD_INTERVAL": "0"}) as server:
            wait_ready(base, "/readyz", server, workers=1)
            etag = httpx.post(base + BULK, content=one.read_text(), headers={"content-type": "application/json"})
            runs = {
                f"POST /v1/decide, every placement ({len(views)} visitors)": (decide, "/v1/decide", None),
                f"POST {BULK}, every flag (the same visitors)": (ofrep, BULK, None),
                f"POST {BULK} with If-None-Match: 304": (one, BULK, f"If-None-Match: {etag.headers['etag']}"),
            }
            results = {}
            for name, (bodies, path, header) in runs.items():
                results[name] = _run(wrk, base, args, server.pgid, bodies, path, header)
    _print(results, args)
    return 0 if all(r.failed == 0 for r in results.values()) else 1


def _run(
    wrk: str, base: str, args: argparse.Namespace, pgid: int, bodies: Path, path: str, header: str | None
) -> WrkResult:
    """One wrk run of pageviews.lua; with ``header``, a one-line wrapper sets it on every request first."""
    script = LUA
    if header is not None:
        name, _, value = header.partition(": ")
        script = bodies.with_suffix(".lua")
        script.write_text(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\ndofile({json.dumps(str(LUA))})\n")
    return run_wrk(
        wrk, base, seconds=args.duration, connections=args.connections, threads=args.threads,
        server_pgid=pgid, script=script, script_args=[str(bodies), path],
    )  # fmt: skip


def _print(results: dict[str, WrkResult], args: argparse.Namespace) -> None:
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, one worker\n")
    print("| Request | req/s | p50 ms | p90 ms | p99 ms | failed | server CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        lat = r.latency_ms
        print(f"| {name} | {r.rps:,.0f} | {lat[50]:.2f} | {lat[90]:.2f} | {lat[99]:.2f} | {r.failed} "
              f"| {r.server_cpu_us_per_request:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
